package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/cache"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/progress"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRecord is a cache record of one layer, as much of a BuildKit ref as
// the chain memo touches.
type fakeRecord struct {
	cache.ImmutableRef
	id, blob string
	chain    []*fakeRecord // root first, itself last
	released *int
}

func (r *fakeRecord) ID() string                { return r.id }
func (r *fakeRecord) GetString(k string) string { return map[string]string{recordBlobKey: r.blob}[k] }
func (r *fakeRecord) Release(context.Context) error {
	*r.released++
	return nil
}

func (r *fakeRecord) LayerChain() cache.RefList {
	l := make(cache.RefList, len(r.chain))
	for i, c := range r.chain {
		l[i] = c
	}
	return l
}

// chainWorker loads remotes into fakeRecords and counts its full loads and
// its record lookups.
type chainWorker struct {
	contentWorker
	records  map[string]*fakeRecord
	loads    int
	gets     int
	released int
	gone     map[string]bool
}

func (w *chainWorker) CacheManager() cache.Manager { return chainManager{w: w} }

func (w *chainWorker) FromRemote(_ context.Context, remote *solver.Remote) (cache.ImmutableRef, error) {
	w.loads++
	var chain []*fakeRecord
	for i, d := range remote.Descriptors {
		r := &fakeRecord{id: fmt.Sprintf("rec-%d-%s", i, d.Digest.Encoded()[:8]), blob: d.Digest.String(), released: &w.released}
		chain = append(chain, r)
		r.chain = append([]*fakeRecord(nil), chain...)
		w.records[r.id] = r
	}
	return chain[len(chain)-1], nil
}

// chainManager is the part of BuildKit's cache manager the memo uses; the
// rest panics if called.
type chainManager struct {
	cache.Manager
	w *chainWorker
}

func (m chainManager) Get(_ context.Context, id string, _ progress.Controller, _ ...cache.RefOption) (cache.ImmutableRef, error) {
	m.w.gets++
	if r, ok := m.w.records[id]; ok && !m.w.gone[id] {
		return r, nil
	}
	return nil, errors.New("not found")
}

// BuildKit loads a result, then each of its ancestors: the ancestors are
// looked up by the records the first load made, not loaded again layer by
// layer; a record gone meanwhile is loaded again as usual.
func TestAncestorLoadsReuseTheChainsRecords(t *testing.T) {
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := containerdsnapshot.NewContentStore(cs, "test")
	var descs []ocispecs.Descriptor
	for i := range 5 {
		data := []byte(fmt.Sprintf("layer %d", i))
		desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := content.WriteBlob(ctx, store, "test", bytes.NewReader(data), desc); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
	}
	w := &chainWorker{contentWorker: contentWorker{cs: store}, records: map[string]*fakeRecord{}, gone: map[string]bool{}}
	vw := &verifyingWorker{Worker: w, warnf: func(context.Context, string, ...any) {}}
	p := &flakyProvider{}

	top, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: descs, Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	for k := len(descs) - 1; k >= 1; k-- {
		ref, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: descs[:k], Provider: p})
		if err != nil {
			t.Fatal(err)
		}
		if want := top.LayerChain()[k-1].ID(); ref.ID() != want {
			t.Fatalf("ancestor of %d layers: record %s, want %s", k, ref.ID(), want)
		}
	}
	if w.loads != 1 || w.gets != len(descs)-1 {
		t.Fatalf("%d full loads and %d record lookups for a result and its %d ancestors; want 1 and %d", w.loads, w.gets, len(descs)-1, len(descs)-1)
	}

	// A chain that diverges from the remembered one is loaded in full.
	other := append(append([]ocispecs.Descriptor(nil), descs[:2]...), descs[3])
	if _, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: other, Provider: p}); err != nil {
		t.Fatal(err)
	}
	if w.loads != 2 {
		t.Fatalf("a chain never loaded before: %d full loads, want 2", w.loads)
	}

	// A record pruned meanwhile: loaded as usual.
	w.gone[top.LayerChain()[1].ID()] = true
	if _, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: descs[:2], Provider: p}); err != nil {
		t.Fatal(err)
	}
	if w.loads != 3 {
		t.Fatalf("a remembered record that is gone: %d full loads, want 3", w.loads)
	}
}
