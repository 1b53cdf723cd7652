package backend_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/cache/remotecache"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// builder is one concurrent exporter: its chain is layers shared by every
// builder (0 and 1) and one of its own (2).
type builder struct {
	name     string
	ls       []layer
	provider content.InfoReaderProvider
}

// newBuilders makes n builders sharing two layers, the first of sharedSize
// bytes, each with a layer of its own; names gives each its name.
func newBuilders(t *testing.T, n, sharedSize int, names func(i int) string) []builder {
	t.Helper()
	shared, sharedProvider := newLayers(t, sharedSize, 20000)
	out := make([]builder, n)
	for i := range out {
		own, ownProvider := newLayers(t, 1000+i)
		ls := []layer{shared[0], shared[1], own[0]}
		out[i] = builder{name: names(i), ls: ls, provider: mergedProvider{sharedProvider, ownProvider}}
	}
	return out
}

// mergedProvider serves blobs from the first provider that has them.
type mergedProvider []content.InfoReaderProvider

func (m mergedProvider) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	var err error
	for _, p := range m {
		var info content.Info
		if info, err = p.Info(ctx, dgst); err == nil {
			return info, nil
		}
	}
	return content.Info{}, err
}

func (m mergedProvider) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	var err error
	for _, p := range m {
		var ra content.ReaderAt
		if ra, err = p.ReaderAt(ctx, desc); err == nil {
			return ra, nil
		}
	}
	return nil, err
}

// runConcurrently finalizes every builder's export at once.
func runConcurrently(t *testing.T, opts backend.Options, f *fixture, bs []builder, kv ...string) {
	t.Helper()
	exps := make([]remotecache.Exporter, len(bs))
	for i, b := range bs {
		attrs := f.with(append([]string{"name", b.name}, kv...)...)
		exp, err := backend.ResolveCacheExporterFunc(opts)(context.Background(), nil, attrs)
		if err != nil {
			t.Fatalf("resolve exporter: %v", err)
		}
		addChain(t, exp, b.ls, b.provider)
		exps[i] = exp
	}
	start := make(chan struct{})
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, exp := range exps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = exp.Finalize(context.Background())
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("builder %d (%s): %v", i, bs[i].name, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// manifestBlobs is the set of blobs a manifest names.
func manifestBlobs(t *testing.T, f *fixture, name string) map[digest.Digest]bool {
	t.Helper()
	m := readManifest(t, f.Store, "manifests/"+name)
	out := map[digest.Digest]bool{}
	for _, l := range m.Layers {
		out[l.Blob] = true
	}
	return out
}

// chainOf says which builder's chain the blobs are, or -1.
func chainOf(bs []builder, blobs map[digest.Digest]bool) int {
	for i, b := range bs {
		if len(blobs) != len(b.ls) {
			continue
		}
		all := true
		for _, l := range b.ls {
			all = all && blobs[l.Desc.Digest]
		}
		if all {
			return i
		}
	}
	return -1
}

// concurrencyOptions make the shared big blob a multipart upload and its
// touch a multipart copy, so concurrent writers of one key interleave
// parts; the store counts the touches.
func concurrencyOptions() (backend.Options, *storetest.Spy) {
	cs := &storetest.Spy{}
	var once sync.Once
	var openErr error
	return backend.Options{NewStore: func(ctx context.Context, cfg spec.Config) (store.Store, error) {
		once.Do(func() {
			cs.Store, openErr = store.New(ctx, cfg, store.Options{
				MultipartThreshold: 5 << 20, PartSize: 5 << 20,
				CopyThreshold: 5 << 20, CopyPartSize: 5 << 20,
			})
		})
		return cs, openErr
	}}, cs
}

// Eight builders exporting to one name at once, three rounds (the later
// ones touching every blob, touch_refresh=0s): the manifest is one
// builder's whole chain, and every blob any manifest names is in the
// bucket with its size and digest.
func TestConcurrentExportsToOneName(t *testing.T) {
	f := newFixture(t, nil)
	bs := newBuilders(t, 8, 6<<20, func(int) string { return "main" })
	for round := range 3 {
		opts, cs := concurrencyOptions()
		runConcurrently(t, opts, f, bs, "touch_refresh", "0s")
		if round > 0 && cs.Count(storetest.OpTouch) == 0 {
			t.Fatalf("round %d touched no blob; touch_refresh=0s should touch every one found", round)
		}
		if i := chainOf(bs, manifestBlobs(t, f, "main")); i < 0 {
			t.Fatalf("round %d: manifests/main is no builder's chain", round)
		}
		requireBucketConsistent(t, f)
		imported, descs := load(t, backend.Options{}, f.with("name", "main"))
		if len(imported.Records) != 3 {
			t.Fatalf("round %d: imported %d records, want 3", round, len(imported.Records))
		}
		for dgst := range descs {
			if _, err := readBlob(t, descs, dgst); err != nil {
				t.Fatalf("round %d: blob %s: %v", round, dgst, err)
			}
		}
	}
}

// Builders with names of their own that share blobs, exporting at once and
// touching the shared blobs every time (touch_refresh=0s), never delete or
// damage each other's: after every round each name holds its own chain,
// whole.
func TestConcurrentNamesSharingBlobs(t *testing.T) {
	f := newFixture(t, nil)
	bs := newBuilders(t, 6, 6<<20, func(i int) string { return fmt.Sprintf("branch-%d", i) })
	for round := range 3 {
		opts, cs := concurrencyOptions()
		runConcurrently(t, opts, f, bs, "touch_refresh", "0s")
		if round > 0 && cs.Count(storetest.OpTouch) == 0 {
			t.Fatalf("round %d touched no blob; touch_refresh=0s should touch every one found", round)
		}
		for i, b := range bs {
			if got := chainOf(bs, manifestBlobs(t, f, b.name)); got != i {
				t.Fatalf("round %d: manifests/%s holds builder %d's chain, want its own (%d)", round, b.name, got, i)
			}
		}
		requireBucketConsistent(t, f)
	}
	// The shared layers kept their annotations in every manifest.
	for _, b := range bs {
		m := readManifest(t, f.Store, "manifests/"+b.name)
		for _, l := range m.Layers {
			if l.Annotations == nil || l.Annotations.DiffID.String() == "" {
				t.Fatalf("manifests/%s: layer %s lost its annotations", b.name, l.Blob)
			}
		}
	}
}

// exclusiveProvider counts ReadAt calls that overlap on one reader: what
// a reader that seeks a shared position (as contentutil's do) cannot take.
type exclusiveProvider struct {
	content.InfoReaderProvider
	overlaps atomic.Int64
}

func (p *exclusiveProvider) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	ra, err := p.InfoReaderProvider.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &exclusiveReaderAt{ReaderAt: ra, p: p}, nil
}

type exclusiveReaderAt struct {
	content.ReaderAt
	p    *exclusiveProvider
	busy atomic.Bool
}

func (r *exclusiveReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if r.busy.Swap(true) {
		r.p.overlaps.Add(1)
	} else {
		defer r.busy.Store(false)
	}
	time.Sleep(100 * time.Microsecond) // widen the window
	return r.ReaderAt.ReadAt(b, off)
}

// The parts of a multipart upload are read one at a time from the content
// store's reader, so a reader with a shared seek position is not mixed up.
func TestMultipartUploadReadsProviderSerially(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 16<<20, 10, 20)
	ep := &exclusiveProvider{InfoReaderProvider: provider}
	opts := backend.Options{StoreOptions: store.Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20, PartConcurrency: 4}}
	export(t, opts, f.with("name", "main"), ls, ep)
	if n := ep.overlaps.Load(); n > 0 {
		t.Fatalf("%d reads of the blob overlapped another on the same reader", n)
	}
	requireBucketConsistent(t, f)
}
