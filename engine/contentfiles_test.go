package engine

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/util/leaseutil"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The cache export finds the worker's blobs as files where BuildKit's runc
// worker writes them: if a BuildKit upgrade moves its content store, this
// fails rather than every upload quietly copying through the process again.
func TestContentFilesFindTheWorkersBlobs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the runc worker needs root")
	}
	ctx := context.Background()
	w, dir, err := newWorker(ctx, t.TempDir(), Options{Snapshotter: "native"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if dir == "" {
		t.Fatal("no content store directory found for the runc worker")
	}

	data := []byte("a layer's bytes")
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
	ctx, done, err := leaseutil.WithLease(ctx, w.LeaseManager(), leaseutil.MakeTemporary)
	if err != nil {
		t.Fatal(err)
	}
	defer done(context.WithoutCancel(ctx))
	if err := content.WriteBlob(ctx, w.ContentStore(), desc.Digest.String(), bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}

	f, err := contentFiles(dir)(desc.Digest)
	if err != nil {
		t.Fatalf("open the blob the worker stored: %v", err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("local blob file holds %q, %v; want %q", got, err, data)
	}
	if _, err := contentFiles(dir)("sha256:nothex"); err == nil {
		t.Fatal("an invalid digest opened a file")
	}
}
