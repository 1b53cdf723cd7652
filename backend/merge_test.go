package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

var mergeLayout = store.Layout{BlobsPrefix: spec.DefaultBlobsPrefix, ManifestsPrefix: spec.DefaultManifestsPrefix}

// memOptions are exporter options on one in-memory bucket behind a spy.
func memOptions(spy *storetest.Spy, logs *logLines) backend.Options {
	return backend.Options{
		NewStore: func(context.Context, spec.Config) (store.Store, error) { return spy, nil },
		Logf:     logs.logf,
	}
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func mergeAttrs(t *testing.T, extra string) map[string]string {
	s := "region=us-east-1,bucket=b,name=main"
	if extra != "" {
		s += "," + extra
	}
	return cachetest.Attrs(t, s)
}

// importedSteps is stepsOf as the importer hands the manifest to BuildKit:
// the blobs that end a result chain of the imported cache chains.
func importedSteps(t *testing.T, opts backend.Options) map[digest.Digest]bool {
	t.Helper()
	imp, _, err := backend.ResolveCacheImporterFunc(opts)(t.Context(), nil, mergeAttrs(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := imp.(*backend.Importer).Load(t.Context())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	cfg, _, err := cc.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{}
	for _, r := range cfg.Records {
		for _, res := range r.Results {
			out[cfg.Layers[res.LayerIndex].Blob] = true
		}
	}
	return out
}

// readConfig reads the manifest under name and checks nothing in it is
// what an import would have to drop.
func readConfig(t *testing.T, st store.Store, name string) cacheimporttypes.CacheConfig {
	t.Helper()
	dt, err := store.ReadAll(context.Background(), st, mergeLayout.ManifestKey(name), manifest.DefaultMaxSize)
	if err != nil {
		t.Fatalf("read manifest %s: %v", name, err)
	}
	var cfg cacheimporttypes.CacheConfig
	if err := manifest.Decode(dt, &cfg); err != nil {
		t.Fatal(err)
	}
	if _, problems, err := manifest.Sanitize(cfg); err != nil || len(problems) > 0 {
		t.Fatalf("manifest %s is not clean: %v %v", name, err, problems)
	}
	return cfg
}

// stepsOf is the steps of cachetest exports a manifest holds a result
// for, by the blob of their last layer: the records whose chain ends on it.
func stepsOf(t *testing.T, st store.Store, name string) map[digest.Digest]bool {
	t.Helper()
	cfg := readConfig(t, st, name)
	out := map[digest.Digest]bool{}
	for _, r := range cfg.Records {
		for _, res := range r.Results {
			out[cfg.Layers[res.LayerIndex].Blob] = true
		}
	}
	return out
}

func requireSteps(t *testing.T, got map[digest.Digest]bool, want []cachetest.Layer, has bool) {
	t.Helper()
	for _, l := range want {
		if got[l.Desc.Digest] != has {
			t.Errorf("manifest has a result on %s: %t, want %t", l.Desc.Digest, got[l.Desc.Digest], has)
		}
	}
}

// Two exports racing to one name with merge=true: one's conditional write
// is held until the other has written, is refused (412), and the export
// reads again and merges: the manifest holds the steps of both.
func TestMergeRacingExportsKeepBothRecords(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	logs := &logLines{}
	f := cachetest.New()
	a, b := f.Layers(t, 100, 200), f.Layers(t, 300, 400, 500)

	second := make(chan struct{})
	var puts, done, refused atomic.Int32
	spy.Before = func(ctx context.Context, op storetest.Op, key string) error {
		if op == storetest.OpPutIf && puts.Add(1) == 1 {
			select {
			case <-second:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	spy.After = func(op storetest.Op, key string, err error) error {
		if op == storetest.OpPutIf {
			if errors.Is(err, store.ErrPreconditionFailed) {
				refused.Add(1)
			}
			if done.Add(1) == 1 {
				close(second)
			}
		}
		return err
	}
	opts := memOptions(spy, logs)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ls := range [][]cachetest.Layer{a, b} {
		wg.Go(func() { errs[i] = f.ExportE(t.Context(), opts, mergeAttrs(t, "merge=true"), ls...) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if refused.Load() != 1 || spy.Count(storetest.OpPutIf) != 3 {
		t.Fatalf("%d conditional writes, %d refused; want 3, 1 refused", spy.Count(storetest.OpPutIf), refused.Load())
	}
	if spy.Count(storetest.OpPut) != len(a)+len(b) {
		t.Errorf("%d plain PUTs, want one per blob (%d) and no manifest", spy.Count(storetest.OpPut), len(a)+len(b))
	}
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, a, true)
	requireSteps(t, steps, b, true)
	imported := importedSteps(t, opts)
	requireSteps(t, imported, a, true)
	requireSteps(t, imported, b, true)
	if lines := logs.matching(""); len(lines) > 0 {
		t.Errorf("warnings: %q", lines)
	}
}

// merge=false is upstream's behaviour: the last writer wins.
func TestMergeFalseLastWriterWins(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	f := cachetest.New()
	a, b := f.Layers(t, 100), f.Layers(t, 200)
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, ""), a...)
	f.Export(t, opts, mergeAttrs(t, ""), b...)
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, a, false)
	requireSteps(t, steps, b, true)
	if n := spy.Count(storetest.OpPutIf) + spy.Count(storetest.OpGetVersion); n != 0 {
		t.Errorf("merge=false made %d conditional requests", n)
	}
}

// Sequential exports merge too; an export of the same steps again adds
// nothing; other writers' steps survive.
func TestMergeSequentialExports(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	f := cachetest.New()
	a, b := f.Layers(t, 100, 101), f.Layers(t, 200)
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, "merge=true"), a...)
	f.Export(t, opts, mergeAttrs(t, "merge=true"), b...)
	f.Export(t, opts, mergeAttrs(t, "merge=true"), b...)
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, a, true)
	requireSteps(t, steps, b, true)
}

// A writer that keeps losing gives up after a bounded number of rounds,
// failing the export (ignore-error then applies).
func TestMergeGivesUp(t *testing.T) {
	backend.FastMergeBackoff(t, time.Millisecond)
	spy := storetest.NewSpy(storetest.NewMemory())
	spy.After = func(op storetest.Op, key string, err error) error {
		if op == storetest.OpPutIf {
			return fmt.Errorf("always changed: %w", store.ErrPreconditionFailed)
		}
		return err
	}
	f := cachetest.New()
	err := f.ExportE(t.Context(), memOptions(spy, &logLines{}), mergeAttrs(t, "merge=true"), f.Layers(t, 100)...)
	if err == nil || !strings.Contains(err.Error(), "times in a row") || !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("export: %v, want a failure after losing every round", err)
	}
	if n := spy.Count(storetest.OpPutIf); n != backend.MergeAttempts {
		t.Fatalf("%d conditional writes, want %d", n, backend.MergeAttempts)
	}
}

// A store that refuses conditional writes: one warning naming its
// answer, and the merged manifest written without a condition under
// every name.
func TestMergeFallsBackToOverwrite(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	logs := &logLines{}
	f := cachetest.New()
	a, b := f.Layers(t, 100), f.Layers(t, 200)
	opts := memOptions(spy, logs)
	f.Export(t, opts, cachetest.Attrs(t, "region=us-east-1,bucket=b,name=x;y"), a...)
	spy.After = func(op storetest.Op, key string, err error) error {
		if op == storetest.OpPutIf {
			return fmt.Errorf("s3 conditional put %s: %w: api error NotImplemented: A header you provided implies functionality that is not implemented", key, store.ErrConditionalNotSupported)
		}
		return err
	}
	f.Export(t, opts, cachetest.Attrs(t, "region=us-east-1,bucket=b,name=x;y,merge=true"), b...)
	warnings := logs.matching("refused a conditional write")
	if len(warnings) != 1 || !strings.Contains(warnings[0], "NotImplemented") {
		t.Fatalf("warnings %q, want one naming the store's answer", logs.matching(""))
	}
	for _, name := range []string{"x", "y"} {
		steps := stepsOf(t, spy, name)
		requireSteps(t, steps, a, true)
		requireSteps(t, steps, b, true)
	}
}

// Blobs only other writers' records name are checked: a record on a blob
// gone from the bucket is dropped, with the steps after it; those before
// it stay.
func TestMergeDropsWhatIsGone(t *testing.T) {
	mem := storetest.NewMemory()
	spy := storetest.NewSpy(mem)
	f := cachetest.New()
	a, b := f.Layers(t, 100, 101, 102), f.Layers(t, 200)
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, "merge=true"), a...)
	if err := mem.Delete(t.Context(), []string{mergeLayout.BlobKey(a[1].Digest())}); err != nil {
		t.Fatal(err)
	}
	f.Export(t, opts, mergeAttrs(t, "merge=true"), b...)
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, a[:1], true)
	requireSteps(t, steps, a[1:], false)
	requireSteps(t, steps, b, true)
}

// merge_keep, on the exporter's clock: other writers' results older than
// the keep go, with their layers; younger ones and the export's own stay.
func TestMergeKeep(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	f := cachetest.New()
	a, b := f.Layers(t, 100, 101), f.Layers(t, 200)
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, "merge=true"), a...)

	later := opts
	later.Now = func() time.Time { return time.Now().Add(100 * time.Hour) }
	f.Export(t, later, mergeAttrs(t, "merge=true,merge_keep=120h"), b...)
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, a, true)
	requireSteps(t, steps, b, true)

	later.Now = func() time.Time { return time.Now().Add(200 * time.Hour) }
	f.Export(t, later, mergeAttrs(t, "merge=true,merge_keep=120h"), b...)
	steps = stepsOf(t, spy, "main")
	requireSteps(t, steps, a, false)
	requireSteps(t, steps, b, true)
	if len(steps) != len(b) {
		t.Errorf("manifest has results on %d blobs, want %d", len(steps), len(b))
	}
}

// A blob other writers' records name as two layers (the same bytes on two
// parents, as a RUN's diff and a COPY of its files onto scratch are) is
// checked once and kept as both.
func TestMergeKeepsABlobOnTwoParents(t *testing.T) {
	mem := storetest.NewMemory()
	spy := storetest.NewSpy(mem)
	f := cachetest.New()
	other := f.Layers(t, 100, 200)
	for _, l := range other {
		if err := mem.Put(t.Context(), mergeLayout.BlobKey(l.Digest()), store.BytesBody(l.Data)); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now()
	existing := cacheimporttypes.CacheConfig{
		Layers: []cacheimporttypes.CacheLayer{
			{Blob: other[0].Desc.Digest, ParentIndex: -1},
			{Blob: other[1].Desc.Digest, ParentIndex: 0},
			{Blob: other[1].Desc.Digest, ParentIndex: -1},
		},
		Records: []cacheimporttypes.CacheRecord{
			{Digest: digest.FromString("run"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 1, CreatedAt: at}}},
			{Digest: digest.FromString("copy"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 2, CreatedAt: at}}},
		},
	}
	dt, err := json.Marshal(existing)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(t.Context(), mergeLayout.ManifestKey("main"), store.BytesBody(dt)); err != nil {
		t.Fatal(err)
	}
	f.Export(t, memOptions(spy, &logLines{}), mergeAttrs(t, "merge=true"), f.Layers(t, 300)...)
	cfg := readConfig(t, spy, "main")
	kept := 0
	for _, r := range cfg.Records {
		if r.Digest == digest.FromString("run") || r.Digest == digest.FromString("copy") {
			kept += len(r.Results)
		}
	}
	if kept != 2 {
		t.Fatalf("%d of the 2 results on the blob on two parents kept", kept)
	}
	if n := spy.Count(storetest.OpStat); n > 2 {
		t.Errorf("%d HEADs for 2 blobs", n)
	}
}

// A merge into a manifest naming many blobs of other writers checks them
// with one listing of the prefix, not a HEAD each, where the listing is
// cheaper (10,000 records took 20 s of HEADs against MinIO; issue 18's
// bench). The export's own few blobs in the crowded prefix still go by
// HEAD.
func TestMergeChecksManyBlobsWithAListing(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	f := cachetest.New()
	sizes := make([]int, 400)
	for i := range sizes {
		sizes[i] = 1
	}
	others := f.Layers(t, sizes...)
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, ""), others...)
	spy.Reset()
	own := f.Layers(t, 10)
	f.Export(t, opts, mergeAttrs(t, "merge=true"), own...)
	if n := spy.Count(storetest.OpStat); n > 20 {
		t.Errorf("the merge sent %d HEADs for %d blobs of other writers, want one listing", n, len(others))
	}
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, others[len(others)-1:], true)
	requireSteps(t, steps, own, true)
}

// merge=true reads the manifest and checks its blobs while the build
// runs (BuildKit resolves exporters as it starts): the read is done
// before Finalize. When another writer changes the manifest meanwhile,
// the conditional write finds it and the merge reads again: every
// writer's steps are kept.
func TestMergeReadsWhileTheBuildRuns(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	f := cachetest.New()
	a, b, x := f.Layers(t, 100), f.Layers(t, 200), f.Layers(t, 300, 301)
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, "merge=true"), a...)
	spy.Reset()

	exp, err := backend.ResolveCacheExporterFunc(opts)(t.Context(), nil, mergeAttrs(t, "merge=true"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); spy.Count(storetest.OpGetVersion) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the exporter did not read the manifest before Finalize")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Another writer, during the build.
	f.Export(t, opts, mergeAttrs(t, "merge=true"), b...)
	if err := f.Add(exp, x...); err != nil {
		t.Fatal(err)
	}
	if _, err := exp.Finalize(t.Context()); err != nil {
		t.Fatal(err)
	}
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, a, true)
	requireSteps(t, steps, b, true)
	requireSteps(t, steps, x, true)
	if n := spy.Count(storetest.OpPutIf); n != 3 {
		t.Errorf("%d conditional writes, want 3 (the other writer's, then ours refused and again)", n)
	}
}

// A daemon merging into a crowded name again soon checks only the blobs of
// other writers it has not seen lately (store.PresentTTL): the second
// merge asks the bucket nothing about the 400 it checked in the first.
// Past the TTL, or once an import found a blob gone, it checks again, and
// a record on a blob deleted meanwhile is dropped.
func TestMergeTrustsBlobsItSawLately(t *testing.T) {
	mem := storetest.NewMemory()
	spy := storetest.NewSpy(mem)
	f := cachetest.New()
	sizes := make([]int, 400)
	for i := range sizes {
		sizes[i] = 1000 + i
	}
	others := f.Layers(t, sizes...)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	opts := memOptions(spy, &logLines{})
	opts.Prober = store.NewProber()
	opts.Now = func() time.Time { return now }
	f.Export(t, opts, mergeAttrs(t, ""), others...)

	// Blobs asked about: one a HEAD, or one an object listed.
	asked := func() int { return spy.Count(storetest.OpStat) + spy.ObjectsListed() }
	spy.Reset()
	f.Export(t, opts, mergeAttrs(t, "merge=true"), f.Layers(t, 10)...)
	if n := asked(); n < len(others) {
		t.Fatalf("the first merge asked about %d blobs, want the %d of other writers at least", n, len(others))
	}

	spy.Reset()
	now = now.Add(store.PresentTTL / 2)
	f.Export(t, opts, mergeAttrs(t, "merge=true"), f.Layers(t, 11)...)
	// The export's own blob is checked (a first page of at most 100
	// objects, a HEAD or two); the 400 others are not.
	if n := asked(); n > 110 {
		t.Errorf("a merge %v after the first asked about %d blobs (%d HEADs, %d listed), want only its own", store.PresentTTL/2, n, spy.Count(storetest.OpStat), spy.ObjectsListed())
	}

	// Gone, and past the TTL: checked again, and its steps dropped.
	if err := mem.Delete(t.Context(), []string{mergeLayout.BlobKey(others[100].Digest())}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(store.PresentTTL)
	spy.Reset()
	own := f.Layers(t, 12)
	f.Export(t, opts, mergeAttrs(t, "merge=true"), own...)
	if n := asked(); n < len(others) {
		t.Errorf("a merge %v after the blobs were seen asked about %d blobs, want the %d of other writers again", store.PresentTTL, n, len(others))
	}
	steps := stepsOf(t, spy, "main")
	requireSteps(t, steps, others[:100], true)
	requireSteps(t, steps, others[100:], false)
	requireSteps(t, steps, own, true)
}

// merge=true merges while the export's blobs go up, but writes the merged
// manifest only once every one of them is in the bucket: a blob upload
// held back holds the manifest back too.
func TestMergeWritesAfterItsBlobs(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	f := cachetest.New()
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, "merge=true"), f.Layers(t, 100, 101)...)

	own := f.Layers(t, 200, 201, 202)
	var uploaded atomic.Int64
	release := make(chan struct{})
	spy.Before = func(ctx context.Context, op storetest.Op, key string) error {
		switch {
		case op == storetest.OpPut && strings.HasPrefix(key, mergeLayout.BlobsDir()):
			<-release
		case op == storetest.OpPutIf && uploaded.Load() != int64(len(own)):
			t.Errorf("manifest written with %d of the export's %d blobs uploaded", uploaded.Load(), len(own))
		}
		return nil
	}
	spy.After = func(op storetest.Op, key string, err error) error {
		if op == storetest.OpPut && strings.HasPrefix(key, mergeLayout.BlobsDir()) && err == nil {
			uploaded.Add(1)
		}
		return err
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		close(release)
	}()
	f.Export(t, opts, mergeAttrs(t, "merge=true"), own...)
	spy.Before, spy.After = nil, nil
	requireSteps(t, stepsOf(t, spy, "main"), own, true)
}

// An export whose blob upload fails writes no manifest, though its merge
// was under way meanwhile.
func TestMergeFailedUploadWritesNoManifest(t *testing.T) {
	spy := storetest.NewSpy(storetest.NewMemory())
	f := cachetest.New()
	opts := memOptions(spy, &logLines{})
	f.Export(t, opts, mergeAttrs(t, "merge=true"), f.Layers(t, 100)...)
	spy.Reset()
	spy.Before = func(ctx context.Context, op storetest.Op, key string) error {
		if op == storetest.OpPut && strings.HasPrefix(key, mergeLayout.BlobsDir()) {
			return errors.New("injected: upload refused")
		}
		return nil
	}
	exp, err := backend.ResolveCacheExporterFunc(opts)(t.Context(), nil, mergeAttrs(t, "merge=true"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Add(exp, f.Layers(t, 200)...); err != nil {
		t.Fatal(err)
	}
	if _, err := exp.Finalize(t.Context()); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Finalize: %v, want the upload's error", err)
	}
	time.Sleep(50 * time.Millisecond) // a stray premerge would write by now
	if n := spy.Count(storetest.OpPutIf); n != 0 {
		t.Errorf("%d manifest writes after a failed upload", n)
	}
}
