package backend

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/cache"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/leaseutil"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// The blob reader checks a blob read whole against its digest, unless its
// consumer says it checks it itself (a content store commit does).
func TestBlobReaderDigestCheck(t *testing.T) {
	ctx := context.Background()
	want := []byte("the blob's own bytes")
	wrong := []byte("other bytes, as long")
	desc := ocispecs.Descriptor{Digest: digest.FromBytes(want), Size: int64(len(wrong))}
	m := storetest.NewMemory()
	layout := store.Layout{BlobsPrefix: "blobs/"}
	if err := m.Put(ctx, layout.BlobKey(desc.Digest.String()), store.BytesBody(wrong)); err != nil {
		t.Fatal(err)
	}
	p := &blobProvider{store: m, layout: layout}
	read := func(ctx context.Context) ([]byte, error) {
		ra, err := p.ReaderAt(ctx, desc)
		if err != nil {
			return nil, err
		}
		defer ra.Close()
		return io.ReadAll(content.NewReader(ra))
	}
	if _, err := read(ctx); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("read of wrong bytes: %v, want a digest mismatch", err)
	}
	got, err := read(withDigestCheckedByConsumer(ctx))
	if err != nil || !bytes.Equal(got, wrong) {
		t.Fatalf("read for a consumer that checks the digest: %q, %v; want the bytes as stored", got, err)
	}
}

// leaselessWorker fails the test if a lease is taken and counts loads.
type leaselessWorker struct {
	contentWorker
	t     *testing.T
	loads int
}

func (w *leaselessWorker) LeaseManager() *leaseutil.Manager {
	w.t.Fatal("a lease was taken for blobs the content store already holds")
	return nil
}

func (w *leaselessWorker) FromRemote(context.Context, *solver.Remote) (cache.ImmutableRef, error) {
	w.loads++
	return nil, nil
}

// BuildKit loads a result with each of its ancestors: once the blobs are
// in the content store, a load neither fetches nor takes a lease.
func TestFromRemoteWithBlobsPresentTakesNoLease(t *testing.T) {
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a blob already fetched")
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
	store := containerdsnapshot.NewContentStore(cs, "test")
	if err := content.WriteBlob(ctx, store, "test", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	p := &flakyProvider{data: data}
	w := &leaselessWorker{contentWorker: contentWorker{cs: store}, t: t}
	vw := &verifyingWorker{Worker: w, warnf: func(context.Context, string, ...any) {}}
	if _, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: []ocispecs.Descriptor{desc}, Provider: p}); err != nil {
		t.Fatal(err)
	}
	if w.loads != 1 || p.opened.Load() != 0 {
		t.Fatalf("%d loads and %d blob reads, want 1 and 0", w.loads, p.opened.Load())
	}
}
