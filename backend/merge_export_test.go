package backend

import (
	"testing"
	"time"
)

// FastMergeBackoff makes a lost merge round wait d at most, for tests
// that lose many.
func FastMergeBackoff(t *testing.T, d time.Duration) {
	old, oldMax := mergeBackoff, mergeBackoffMax
	mergeBackoff, mergeBackoffMax = d, d
	t.Cleanup(func() { mergeBackoff, mergeBackoffMax = old, oldMax })
}

const MergeAttempts = mergeAttempts
