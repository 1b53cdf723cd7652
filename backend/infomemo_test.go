package backend_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// infoCounter counts the content-store lookups made through a provider.
type infoCounter struct {
	content.InfoReaderProvider
	calls *atomic.Int64
}

func (c infoCounter) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	c.calls.Add(1)
	return c.InfoReaderProvider.Info(ctx, dgst)
}

// A linear mode=max chain of n steps, each with its own provider as
// BuildKit gives them: marshalling it asks each provider about each of its
// blobs once, not once per ancestor chain (about n³/6 lookups in all).
func TestExportAsksContentStoreOncePerBlob(t *testing.T) {
	const n = 30
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = 100 + i
	}
	ls, provider := newLayers(t, sizes...)
	mem := storetest.NewMemory()
	opts := backend.Options{NewStore: func(context.Context, spec.Config) (store.Store, error) { return mem, nil }}
	ctx := context.Background()
	exp, err := backend.ResolveCacheExporterFunc(opts)(ctx, nil, map[string]string{"region": "r", "bucket": "b", "mode": "max"})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	created := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var prev solver.CacheExporterRecord
	for i := range n {
		r := &solver.Remote{Provider: infoCounter{provider, &calls}}
		for _, l := range ls[:i+1] {
			r.Descriptors = append(r.Descriptors, l.Desc)
		}
		results := []solver.CacheExportResult{{CreatedAt: created, Result: r}}
		var deps [][]solver.CacheLink
		dgst := rootRecordDigest(t, digest.FromString("base"))
		if prev != nil {
			deps = [][]solver.CacheLink{{{Src: prev}}}
			dgst = digest.FromString(ls[i].Desc.Digest.String())
		}
		rec, _, err := exp.Add(dgst, deps, results)
		if err != nil {
			t.Fatal(err)
		}
		prev = rec
	}
	if _, err := exp.Finalize(ctx); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	if want := int64(n * (n + 1) / 2); calls.Load() > want {
		t.Fatalf("%d Info lookups for %d steps, want at most %d (one per provider and blob)", calls.Load(), n, want)
	}
	cfg := readManifest(t, mem, "manifests/buildkit")
	if len(cfg.Layers) != n || len(cfg.Records) != n {
		t.Fatalf("manifest has %d layers and %d records, want %d of each", len(cfg.Layers), len(cfg.Records), n)
	}
}

// Exports learn what the bucket holds from one listing of the blobs: a
// cold export uploads without a HEAD per blob, a warm one finds them all.
func TestExportsListInsteadOfHEADs(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	hc := storetest.NewSpy(f.Store)
	opts := backend.Options{NewStore: func(context.Context, spec.Config) (store.Store, error) { return hc, nil }}
	for _, run := range []string{"cold", "warm"} {
		hc.Reset()
		export(t, opts, f.with("name", "main"), ls, provider)
		if hc.Count(storetest.OpStat) != 0 || hc.Lists() != 1 {
			t.Fatalf("%s export: %d HEADs and %d listings, want 0 and 1", run, hc.Count(storetest.OpStat), hc.Lists())
		}
	}
	cfg, descs := load(t, backend.Options{}, f.with("name", "main"))
	if len(cfg.Layers) != 3 {
		t.Fatalf("manifest has %d layers, want 3", len(cfg.Layers))
	}
	for _, l := range ls {
		if _, err := readBlob(t, descs, l.Desc.Digest); err != nil {
			t.Fatalf("blob %s: %v", l.Desc.Digest, err)
		}
	}
}

// requests counts the listing requests (and their max-keys) and HEADs the
// proxy saw.
func requests(p *proxytest.Proxy) (listings []string, heads int) {
	for _, r := range p.Requests() {
		switch {
		case r.Method == http.MethodHead:
			heads++
		case r.Method == http.MethodGet && r.Query.Get("list-type") == "2":
			listings = append(listings, r.Query.Get("max-keys"))
		}
	}
	return listings, heads
}

// On S3, exports list the blobs a page at a time: a cold or warm export of
// a prefix holding little else takes one small page and no HEAD; a prefix
// crowded with other blobs takes one small page, then HEADs.
func TestExportsListingOnTheWire(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	for _, run := range []string{"cold", "warm"} {
		p, attrs := viaProxy(t, f, "name", "main")
		export(t, backend.Options{}, attrs, ls, provider)
		if listings, heads := requests(p); len(listings) != 1 || listings[0] != "100" || heads != 0 {
			t.Fatalf("%s export: listings with max-keys %v and %d HEADs, want one of 100 and none", run, listings, heads)
		}
	}
	ctx := context.Background()
	for i := range 300 {
		key := fmt.Sprintf("blobs/sha256:%064x", i)
		if err := f.Store.Put(ctx, key, store.BytesBody([]byte("other"))); err != nil {
			t.Fatal(err)
		}
	}
	p, attrs := viaProxy(t, f, "name", "main")
	export(t, backend.Options{}, attrs, ls, provider)
	if listings, heads := requests(p); len(listings) != 1 || heads > len(ls) {
		t.Fatalf("export to a crowded prefix: listings with max-keys %v and %d HEADs, want one page and at most %d HEADs", listings, heads, len(ls))
	}
}
