package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// Uploads from a file go out with sendfile over plain HTTP, parts of one
// file in parallel: each object read back is the file, whatever the
// caller's file position, in one PUT (which the server checks against the
// digest) or in parts (which it does not).
func TestPutFromFile(t *testing.T) {
	srv := miniotest.Shared(t)
	for _, viaProxy := range []bool{false, true} {
		endpoint := ""
		if viaProxy {
			endpoint = proxytest.New(t, srv.Endpoint).URL
		}
		opts := smallOptions()
		opts.PartConcurrency = 4
		st := newStore(t, testConfig(srv, srv.Bucket(t), endpoint), opts)
		ctx := testCtx(t)
		dir := t.TempDir()
		for i, size := range []int{0, 1000, 23*mib + 17} {
			data := storetest.Data(int64(size), byte(10+i))
			sum := sha256.Sum256(data)
			dgst := "sha256:" + hex.EncodeToString(sum[:])
			path := filepath.Join(dir, hex.EncodeToString(sum[:]))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			// Put reads at offsets: where the caller left the file changes nothing.
			if _, err := f.Seek(int64(size/3), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			put := store.FileBody(f, int64(size))
			put.Digest = dgst
			err = st.Put(ctx, "blobs/"+dgst, put)
			f.Close()
			if err != nil {
				t.Fatalf("put %d bytes from a file (proxy %v): %v", size, viaProxy, err)
			}
			body, err := st.Get(ctx, "blobs/"+dgst, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes put from a file (proxy %v): %v, got %d bytes, equal %v", size, viaProxy, err, len(got), bytes.Equal(got, data))
			}
		}
	}
}
