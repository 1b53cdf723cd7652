package backend_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/moby/buildkit/cache/remotecache"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/cachedigest"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }

// fixture is a bucket on the package's MinIO and the attributes that
// reach it, as the map BuildKit hands a cache backend.
type fixture struct {
	*cachetest.Bucket
	srv   *miniotest.Server
	attrs map[string]string
}

func newFixture(t *testing.T, extra map[string]string) *fixture {
	t.Helper()
	var kv []string
	for k, v := range extra {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	b := cachetest.NewBucket(t, strings.Join(kv, ","))
	return &fixture{Bucket: b, srv: miniotest.Shared(t), attrs: cachetest.Attrs(t, b.Spec)}
}

func (f *fixture) with(kv ...string) map[string]string {
	attrs := map[string]string{}
	for k, v := range f.attrs {
		attrs[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		attrs[kv[i]] = kv[i+1]
	}
	return attrs
}

// layer is a blob in a local content store, described as BuildKit describes
// a compressed layer.
type layer = cachetest.Layer

// newLayers makes a layer of random bytes per size, in a content store of
// their own.
func newLayers(t *testing.T, sizes ...int) ([]layer, content.InfoReaderProvider) {
	t.Helper()
	f := cachetest.New()
	return f.Layers(t, sizes...), f.Provider()
}

// addChain records a three-step build: base (layer 0), a step on it
// (layers 0+1) and a sibling from the base with another selector (0+2).
func addChain(t *testing.T, target solver.CacheExporterTarget, ls []layer, provider content.InfoReaderProvider) {
	t.Helper()
	created := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	remote := func(idx ...int) []solver.CacheExportResult {
		r := &solver.Remote{Provider: provider}
		for _, i := range idx {
			r.Descriptors = append(r.Descriptors, ls[i].Desc)
		}
		return []solver.CacheExportResult{{CreatedAt: created, Result: r}}
	}
	base, _, err := target.Add(rootRecordDigest(t, digest.FromString("base")), nil, remote(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := target.Add(digest.FromString("run-a"), [][]solver.CacheLink{{{Src: base}}}, remote(0, 1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := target.Add(digest.FromString("run-b"), [][]solver.CacheLink{{{Src: base, Selector: "sha256:sel"}}}, remote(0, 2)); err != nil {
		t.Fatal(err)
	}
}

// rootRecordDigest is the digest the solver gives the record of a step
// without inputs: what it later queries a cache manager for.
func rootRecordDigest(t *testing.T, dgst digest.Digest) digest.Digest {
	t.Helper()
	out, err := cachedigest.FromBytes(fmt.Appendf(nil, "%s@%d", dgst, 0), cachedigest.TypeString)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func export(t *testing.T, opts backend.Options, attrs map[string]string, ls []layer, provider content.InfoReaderProvider) remotecache.Exporter {
	t.Helper()
	ctx := context.Background()
	exp, err := backend.ResolveCacheExporterFunc(opts)(ctx, nil, attrs)
	if err != nil {
		t.Fatalf("resolve exporter: %v", err)
	}
	addChain(t, exp, ls, provider)
	if _, err := exp.Finalize(ctx); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	return exp
}

func load(t *testing.T, opts backend.Options, attrs map[string]string) (*cacheimporttypes.CacheConfig, v1.DescriptorProvider) {
	t.Helper()
	ctx := context.Background()
	imp, _, err := backend.ResolveCacheImporterFunc(opts)(ctx, nil, attrs)
	if err != nil {
		t.Fatalf("resolve importer: %v", err)
	}
	cc, err := imp.(*backend.Importer).Load(ctx)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	cfg, descs, err := cc.Marshal(ctx)
	if err != nil {
		t.Fatalf("marshal imported chains: %v", err)
	}
	return cfg, descs
}

func readManifest(t *testing.T, st store.Store, key string) cacheimporttypes.CacheConfig {
	t.Helper()
	dt, err := store.ReadAll(context.Background(), st, key, 1<<20)
	if err != nil {
		t.Fatalf("read manifest %s: %v", key, err)
	}
	var cfg cacheimporttypes.CacheConfig
	if err := manifest.Decode(dt, &cfg); err != nil {
		t.Fatalf("decode manifest %s: %v", key, err)
	}
	return cfg
}

// structure drops the layer annotations, which chains rebuilt from a
// manifest don't carry, leaving what the solver matches on.
func structure(cfg cacheimporttypes.CacheConfig) string {
	var b strings.Builder
	for _, l := range cfg.Layers {
		fmt.Fprintf(&b, "layer %s parent %d\n", l.Blob, l.ParentIndex)
	}
	for _, r := range cfg.Records {
		fmt.Fprintf(&b, "record %s inputs %v results %v chains %v\n", r.Digest, r.Inputs, r.Results, r.ChainedResults)
	}
	return b.String()
}

func readBlob(t *testing.T, descs v1.DescriptorProvider, dgst digest.Digest) ([]byte, error) {
	t.Helper()
	pair, ok := descs[dgst]
	if !ok {
		t.Fatalf("imported chains have no blob %s", dgst)
	}
	ra, err := pair.Provider.ReaderAt(context.Background(), pair.Descriptor)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	return io.ReadAll(content.NewReader(ra))
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 1000, 70000, 3)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)

	manifest := readManifest(t, f.Store, "manifests/main")
	if len(manifest.Layers) != 3 || len(manifest.Records) != 3 {
		t.Fatalf("manifest has %d layers and %d records, want 3 and 3", len(manifest.Layers), len(manifest.Records))
	}
	for _, l := range manifest.Layers {
		var src layer
		for _, x := range ls {
			if x.Desc.Digest == l.Blob {
				src = x
			}
		}
		a := l.Annotations
		if a == nil || a.Size != src.Desc.Size || a.MediaType != src.Desc.MediaType || a.DiffID.String() != src.Desc.Annotations[labels.LabelUncompressed] || a.CreatedAt.IsZero() {
			t.Errorf("layer %s annotations = %+v, want size, mediaType, diffID and createdAt of the descriptor", l.Blob, a)
		}
		obj, err := f.Store.Stat(context.Background(), "blobs/"+l.Blob.String())
		if err != nil || obj.Size != src.Desc.Size {
			t.Errorf("blob %s in bucket: %+v, %v", l.Blob, obj, err)
		}
	}

	imported, descs := load(t, backend.Options{}, f.with("name", "main"))
	if got, want := structure(*imported), structure(manifest); got != want {
		t.Fatalf("imported chains differ from the export:\n got: %s\nwant: %s", got, want)
	}
	for _, l := range ls {
		got, err := readBlob(t, descs, l.Desc.Digest)
		if err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("blob %s read back: %d bytes, %v; want the %d bytes exported", l.Desc.Digest, len(got), err, len(l.Data))
		}
	}
}

func TestCustomPrefixesAndSeveralNames(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	attrs := f.with("name", "branch;main", "prefix", "team/", "blobs_prefix", "b/", "manifests_prefix", "m/")
	export(t, backend.Options{}, attrs, ls, provider)
	a := readManifest(t, f.Store, "team/m/branch")
	b := readManifest(t, f.Store, "team/m/main")
	if structure(a) != structure(b) {
		t.Fatalf("the two names hold different manifests")
	}
	for _, l := range ls {
		if _, err := f.Store.Stat(context.Background(), "team/b/"+l.Desc.Digest.String()); err != nil {
			t.Errorf("blob under custom prefix: %v", err)
		}
	}
	imported, _ := load(t, backend.Options{}, attrs)
	if structure(*imported) != structure(a) {
		t.Fatalf("import under custom prefixes differs from export")
	}
}

func TestImportFallsBackToLaterName(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)
	imported, _ := load(t, backend.Options{}, f.with("name", "feature-x;main"))
	if len(imported.Records) != 3 {
		t.Fatalf("name=feature-x;main imported %d records, want main's 3", len(imported.Records))
	}
}

func TestImportMissingManifestIsEmptyCache(t *testing.T) {
	f := newFixture(t, nil)
	imported, _ := load(t, backend.Options{}, f.with("name", "nothing-here"))
	if len(imported.Records) != 0 || len(imported.Layers) != 0 {
		t.Fatalf("missing manifest imported %+v, want an empty cache", imported)
	}
}

// countingOptions open a store that counts the operations reaching the
// bucket.
func countingOptions(f *fixture) (backend.Options, *storetest.Spy) {
	cs := storetest.NewSpy(f.Store)
	return backend.Options{NewStore: func(context.Context, spec.Config) (store.Store, error) { return cs, nil }}, cs
}

func TestWarmExportUploadsOnlyTheManifest(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)

	opts, cs := countingOptions(f)
	export(t, opts, f.with("name", "main"), ls, provider)
	if cs.Count(storetest.OpPut) != 1 || cs.Count(storetest.OpTouch) != 0 {
		t.Fatalf("warm export made %d puts and %d touches, want 1 (the manifest) and 0", cs.Count(storetest.OpPut), cs.Count(storetest.OpTouch))
	}
}

func TestTouchRefresh(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)
	before, err := f.Store.Stat(context.Background(), "blobs/"+ls[1].Desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // S3 times have second resolution

	opts, cs := countingOptions(f)
	export(t, opts, f.with("name", "main", "touch_refresh", "0s"), ls, provider)
	if cs.Count(storetest.OpTouch) != 3 || cs.Count(storetest.OpPut) != 1 {
		t.Fatalf("touch_refresh=0s: %d touches and %d puts, want 3 and 1", cs.Count(storetest.OpTouch), cs.Count(storetest.OpPut))
	}
	after, err := f.Store.Stat(context.Background(), "blobs/"+ls[1].Desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if !after.LastModified.After(before.LastModified) {
		t.Fatalf("touched blob LastModified %v, not after %v", after.LastModified, before.LastModified)
	}
}

func TestMissingBlobCostsOnlyItsResults(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)
	if err := f.Store.Delete(context.Background(), []string{"blobs/" + ls[1].Desc.Digest.String()}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var warnings []string
	opts := backend.Options{Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, fmt.Sprintf(format, args...))
	}}
	imported, descs := load(t, opts, f.with("name", "main"))
	if _, ok := descs[ls[1].Desc.Digest]; ok {
		t.Errorf("imported chains still use the deleted blob")
	}
	for _, i := range []int{0, 2} {
		if _, ok := descs[ls[i].Desc.Digest]; !ok {
			t.Errorf("intact blob %d lost from the import", i)
		}
	}
	if len(imported.Records) == 0 {
		t.Errorf("every record was dropped; only run-a needed the deleted blob")
	}
	if !strings.Contains(strings.Join(warnings, "\n"), ls[1].Desc.Digest.String()) {
		t.Errorf("no warning names the missing blob; warnings: %q", warnings)
	}
}

func TestReadDetectsBlobWithWrongBytes(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 5000, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)
	other := bytes.Repeat([]byte{'x'}, 5000)
	if err := f.Store.Put(context.Background(), "blobs/"+ls[1].Desc.Digest.String(), store.BytesBody(other)); err != nil {
		t.Fatal(err)
	}
	_, descs := load(t, backend.Options{}, f.with("name", "main"))
	_, err := readBlob(t, descs, ls[1].Desc.Digest)
	if err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("reading a blob whose bytes were replaced: err = %v, want a digest mismatch", err)
	}
}

func TestExporterAttributes(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	exp, err := backend.ResolveCacheExporterFunc(backend.Options{})(ctx, nil, f.with("compression", "zstd", "compression-level", "3", "force-compression", "true", "mode", "max", "ignore-error", "true"))
	if err != nil {
		t.Fatal(err)
	}
	c := exp.Config().Compression
	if c.Type.String() != "zstd" || !c.Force || c.Level == nil || *c.Level != 3 {
		t.Errorf("compression config = %+v, want zstd level 3 forced", c)
	}
	for _, tc := range []struct{ attr, value string }{
		{"mode", "maximum"},
		{"ignore-error", "maybe"},
		{"compression", "brotli"},
		{"upload_parallelism", "0"},
	} {
		_, err := backend.ResolveCacheExporterFunc(backend.Options{})(ctx, nil, f.with(tc.attr, tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.attr) {
			t.Errorf("%s=%s: err = %v, want an error naming %s", tc.attr, tc.value, err, tc.attr)
		}
	}
}

func TestUploadParallelismIsHonoured(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30, 40, 50, 60, 70, 80)
	var uploads concurrency
	// Measures how many blob uploads run at once.
	gate := storetest.NewSpy(f.Store)
	gate.Before = func(_ context.Context, op storetest.Op, key string) error {
		if op == storetest.OpPut && strings.HasPrefix(key, "blobs/") {
			uploads.hold(50 * time.Millisecond)
		}
		return nil
	}
	opts := backend.Options{NewStore: func(context.Context, spec.Config) (store.Store, error) { return gate, nil }}
	exp, err := backend.ResolveCacheExporterFunc(opts)(context.Background(), nil, f.with("upload_parallelism", "2"))
	if err != nil {
		t.Fatal(err)
	}
	var prev solver.CacheExporterRecord
	for i := range ls {
		var deps [][]solver.CacheLink
		if prev != nil {
			deps = [][]solver.CacheLink{{{Src: prev}}}
		}
		rec, _, err := exp.Add(digest.FromString(fmt.Sprint("step", i)), deps, []solver.CacheExportResult{{CreatedAt: time.Now(), Result: &solver.Remote{Descriptors: []ocispecs.Descriptor{ls[i].Desc}, Provider: provider}}})
		if err != nil {
			t.Fatal(err)
		}
		prev = rec
	}
	if _, err := exp.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := uploads.most(); p < 1 || p > 2 {
		t.Fatalf("peak concurrent blob uploads = %d, want at most upload_parallelism=2", p)
	}
}

// concurrency records the most callers inside hold at once.
type concurrency struct{ cur, peak atomic.Int64 }

// hold counts the caller in for d, long enough for others to overlap.
func (c *concurrency) hold(d time.Duration) {
	n := c.cur.Add(1)
	defer c.cur.Add(-1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	time.Sleep(d)
}

func (c *concurrency) most() int64 { return c.peak.Load() }
