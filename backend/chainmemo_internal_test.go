package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
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
	id, blobChainID string
	chain           []*fakeRecord // its layers, root first; for a layer, itself last
	released        *int
}

func (r *fakeRecord) ID() string { return r.id }
func (r *fakeRecord) GetString(k string) string {
	return map[string]string{recordBlobChainIDKey: r.blobChainID}[k]
}
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
	merged   map[string]bool // blob chain IDs for which BuildKit finds a merged record
	loads    int
	gets     int
	released int
	gone     map[string]bool
}

func (w *chainWorker) CacheManager() cache.Manager { return chainManager{w: w} }

func (w *chainWorker) FromRemote(_ context.Context, remote *solver.Remote) (cache.ImmutableRef, error) {
	w.loads++
	keys := blobChainIDs(remote.Descriptors)
	top := keys[len(keys)-1].String()
	if w.merged[top] {
		// As BuildKit's GetByBlob can: an existing merged record with the
		// same blob chain, whose layers are its inputs' own, each alone.
		m := &fakeRecord{id: "merge-" + top[7:15], blobChainID: top, released: &w.released}
		for _, d := range remote.Descriptors {
			lone := blobChainIDs([]ocispecs.Descriptor{d})[0].String()
			m.chain = append(m.chain, &fakeRecord{id: "lone-" + lone[7:15], blobChainID: lone, released: &w.released})
		}
		for _, r := range append([]*fakeRecord{m}, m.chain...) {
			w.records[r.id] = r
		}
		return m, nil
	}
	var chain []*fakeRecord
	for i := range remote.Descriptors {
		r := &fakeRecord{id: fmt.Sprintf("rec-%d-%s", i, keys[i].Encoded()[:8]), blobChainID: keys[i].String(), released: &w.released}
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
	store := testContentStore(t)
	descs := storedLayers(t, store, 5)
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

// testContentStore is a content store in a temporary directory.
func testContentStore(t *testing.T) *containerdsnapshot.Store {
	t.Helper()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return containerdsnapshot.NewContentStore(cs, "test")
}

// storedLayers writes n layer blobs to store and describes them as an
// import does, with their uncompressed digests.
func storedLayers(t *testing.T, store *containerdsnapshot.Store, n int) []ocispecs.Descriptor {
	t.Helper()
	var descs []ocispecs.Descriptor
	for i := range n {
		data := []byte(fmt.Sprintf("layer %d", i))
		desc := ocispecs.Descriptor{
			MediaType:   ocispecs.MediaTypeImageLayerGzip,
			Digest:      digest.FromBytes(data),
			Size:        int64(len(data)),
			Annotations: map[string]string{labels.LabelUncompressed: digest.FromString(fmt.Sprintf("diff %d", i)).String()},
		}
		if err := content.WriteBlob(context.Background(), store, "test", bytes.NewReader(data), desc); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
	}
	return descs
}

// A chain BuildKit answers with a merged record (COPY --link: the same
// blobs, each layer on its own parents) is that record, and its layers are
// not taken for the chain's prefixes: the prefix [a, b] of [a, b, c] is
// loaded in full, never answered with the lone layer b, which would lose a.
func TestMergedRecordIsNotTakenForItsPrefixes(t *testing.T) {
	ctx := context.Background()
	store := testContentStore(t)
	descs := storedLayers(t, store, 3)
	keys := blobChainIDs(descs)
	w := &chainWorker{contentWorker: contentWorker{cs: store}, records: map[string]*fakeRecord{}, gone: map[string]bool{},
		merged: map[string]bool{keys[2].String(): true}}
	vw := &verifyingWorker{Worker: w, warnf: func(context.Context, string, ...any) {}}
	p := &flakyProvider{}

	top, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: descs, Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	again, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: descs, Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != top.ID() {
		t.Fatalf("the same chain again: record %s, want the merged record %s", again.ID(), top.ID())
	}
	for k := 2; k >= 1; k-- {
		ref, err := vw.FromRemote(ctx, &solver.Remote{Descriptors: descs[:k], Provider: p})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ref.GetString(recordBlobChainIDKey), keys[k-1].String(); got != want {
			t.Fatalf("prefix of %d layers: a record of blob chain %s, want %s", k, got, want)
		}
	}
}
