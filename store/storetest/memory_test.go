package storetest

import (
	"testing"

	"github.com/s3cache/s3cache/store"
)

func TestMemory(t *testing.T) {
	Run(t, func(*testing.T) store.Store { return NewMemory() }, Config{})
}
