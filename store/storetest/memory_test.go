package storetest

import (
	"testing"

	"github.com/s3cache/s3cache/store"
)

func TestMemory(t *testing.T) {
	Run(t, func(*testing.T) store.Store { return NewMemory() }, Config{})
}

// A Spy with no hooks is the store it forwards to.
func TestSpy(t *testing.T) {
	Run(t, func(*testing.T) store.Store { return NewSpy(NewMemory()) }, Config{})
}
