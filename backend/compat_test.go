package backend_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/moby/buildkit/cache/remotecache"
	upstream "github.com/moby/buildkit/cache/remotecache/s3"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/store"
)

// The tests here run upstream BuildKit's own `type=s3` exporter and
// importer, at the version in go.mod, against the same MinIO bucket as ours.

func TestUpstreamExportReadsBack(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 1000, 70000, 3)
	ctx := context.Background()

	upExp, err := upstream.ResolveCacheExporterFunc()(ctx, nil, f.with("name", "upstream", "prefix", "up/"))
	if err != nil {
		t.Fatal(err)
	}
	addChain(t, upExp, ls, provider)
	if _, err := upExp.Finalize(ctx); err != nil {
		t.Fatalf("upstream finalize: %v", err)
	}

	theirs := readManifest(t, f.Store, "up/manifests/upstream")
	imported, descs := load(t, backend.Options{}, f.with("name", "upstream", "prefix", "up/"))
	if got, want := structure(*imported), structure(theirs); got != want {
		t.Fatalf("our import of upstream's export differs:\n got: %s\nwant: %s", got, want)
	}
	for _, l := range ls {
		got, err := readBlob(t, descs, l.Desc.Digest)
		if err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("upstream blob %s read back: %d bytes, %v", l.Desc.Digest, len(got), err)
		}
	}
}

func TestManifestBytesMatchUpstream(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 1000, 70000, 3)
	ctx := context.Background()

	upExp, err := upstream.ResolveCacheExporterFunc()(ctx, nil, f.with("name", "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	addChain(t, upExp, ls, provider)
	if _, err := upExp.Finalize(ctx); err != nil {
		t.Fatalf("upstream finalize: %v", err)
	}
	export(t, backend.Options{}, f.with("name", "ours"), ls, provider)

	theirs, err := store.ReadAll(ctx, f.Store, "manifests/upstream", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := store.ReadAll(ctx, f.Store, "manifests/ours", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(theirs, ours) {
		t.Fatalf("for the same cache chains our manifest differs from upstream's:\nours:   %s\ntheirs: %s", ours, theirs)
	}
}

// rootHits asks a cache manager for the records of the chain's base step,
// as the solver does for a step without inputs.
func rootHits(t *testing.T, imp remotecache.Importer) int {
	t.Helper()
	ctx := context.Background()
	cm, err := imp.Resolve(ctx, ocispecs.Descriptor{}, "test", nil)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	keys, err := cm.Query(nil, 0, digest.FromString("base"), 0)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	hits := 0
	for _, k := range keys {
		recs, err := cm.Records(ctx, k)
		if err != nil {
			t.Fatalf("records: %v", err)
		}
		hits += len(recs)
	}
	return hits
}

func TestUpstreamImporterAcceptsOurExport(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 1000, 70000, 3)
	export(t, backend.Options{}, f.with("name", "ours", "prefix", "p/"), ls, provider)

	upImp, _, err := upstream.ResolveCacheImporterFunc()(context.Background(), nil, f.with("name", "ours", "prefix", "p/"))
	if err != nil {
		t.Fatal(err)
	}
	if hits := rootHits(t, upImp); hits == 0 {
		t.Fatalf("upstream's importer found no cache record for the base step in our export")
	}

	ourImp, _, err := backend.ResolveCacheImporterFunc(backend.Options{})(context.Background(), nil, f.with("name", "ours", "prefix", "p/"))
	if err != nil {
		t.Fatal(err)
	}
	if hits := rootHits(t, ourImp); hits == 0 {
		t.Fatalf("our importer found no cache record for the base step in our export")
	}
}
