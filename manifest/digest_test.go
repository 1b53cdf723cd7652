package manifest_test

import (
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/manifest"
)

// ValidDigest agrees with go-digest's Validate on every input.
func FuzzValidDigest(f *testing.F) {
	for _, s := range []string{
		"sha256:" + strings.Repeat("a", 64),
		"sha256:" + strings.Repeat("A", 64),
		"sha256:" + strings.Repeat("0", 63),
		"sha256:" + strings.Repeat("0", 65),
		"sha256:" + strings.Repeat("g", 64),
		"sha512:" + strings.Repeat("b", 128),
		"sha256" + strings.Repeat("a", 65),
		"random:" + strings.Repeat("a", 64),
		"", ":", "sha256:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := digest.Digest(s).Validate() == nil
		if got := manifest.ValidDigest(digest.Digest(s)) == nil; got != want {
			t.Errorf("ValidDigest(%q) valid=%v, Validate says %v", s, got, want)
		}
	})
}
