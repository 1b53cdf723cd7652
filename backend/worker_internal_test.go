package backend

import (
	"bytes"
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/cache"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/leaseutil"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

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
