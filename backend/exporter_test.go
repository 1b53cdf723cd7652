package backend_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/store"
)

// An export uploads a blob from the engine's local file of it when there
// is one of the blob's size, and otherwise through the content provider:
// the bucket gets the blob's bytes either way.
func TestExportUploadsFromLocalBlobFiles(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 1000, 70000, 3)
	dir := t.TempDir()
	for i, l := range ls {
		data := l.Data
		if i == 1 {
			data = data[:len(data)-1] // not the blob: passed over
		}
		if i == 2 {
			continue // no file: the provider's bytes
		}
		if err := os.WriteFile(filepath.Join(dir, l.Desc.Digest.Encoded()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	asked := map[digest.Digest]bool{}
	opts := backend.Options{LocalBlob: func(dgst digest.Digest) (*os.File, error) {
		mu.Lock()
		asked[dgst] = true
		mu.Unlock()
		return os.Open(filepath.Join(dir, dgst.Encoded()))
	}}
	export(t, opts, f.with("name", "main"), ls, provider)

	for _, l := range ls {
		if !asked[l.Desc.Digest] {
			t.Errorf("the export did not look for a local file of blob %s", l.Desc.Digest)
		}
		got, err := store.ReadAll(context.Background(), f.Store, "blobs/"+l.Desc.Digest.String(), 1<<20)
		if err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("blob %s in the bucket: %d bytes, %v; want the %d bytes of the blob", l.Desc.Digest, len(got), err, len(l.Data))
		}
	}
}
