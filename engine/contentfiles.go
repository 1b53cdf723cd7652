package engine

import (
	"fmt"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
)

// contentFiles opens blobs of the worker's content store, which
// runc.NewWorkerOpt keeps under dir in containerd's local layout
// (blobs/<algorithm>/<encoded digest>), as files the cache export can send
// with sendfile.
func contentFiles(dir string) func(digest.Digest) (*os.File, error) {
	return func(dgst digest.Digest) (*os.File, error) {
		if err := dgst.Validate(); err != nil {
			return nil, fmt.Errorf("open local blob: %w", err)
		}
		f, err := os.Open(filepath.Join(dir, "blobs", dgst.Algorithm().String(), dgst.Encoded()))
		if err != nil {
			return nil, fmt.Errorf("open local blob: %w", err)
		}
		return f, nil
	}
}
