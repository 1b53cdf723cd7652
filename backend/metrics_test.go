package backend_test

import (
	"context"
	"testing"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/internal/testutil/metricstest"
	"github.com/s3cache/s3cache/store"
)

// delta is what a metric moved by between two gatherings.
func delta(before, after metricstest.Families, name string, labels ...string) float64 {
	return after.Value(name, labels...) - before.Value(name, labels...)
}

// Exports count each blob by what it took and time themselves; imports
// count by outcome, with the records they loaded.
func TestMetricsOfExportsAndImports(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	ctx := context.Background()
	blobs := func(g0, g1 metricstest.Families) map[string]float64 {
		out := map[string]float64{}
		for _, r := range []string{"uploaded", "reused", "touched"} {
			out[r] = delta(g0, g1, "s3cache_export_blobs_total", "result", r)
		}
		return out
	}

	g0 := metricstest.Gather(t)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)
	g1 := metricstest.Gather(t)
	if got := blobs(g0, g1); got["uploaded"] != 3 || got["reused"] != 0 || got["touched"] != 0 {
		t.Errorf("cold export: blobs %v, want 3 uploaded", got)
	}
	if got := delta(g0, g1, "s3cache_s3_uploaded_bytes_total", "object", "blob"); got != 60 {
		t.Errorf("cold export: %v blob bytes uploaded, want 60", got)
	}
	if got := delta(g0, g1, "s3cache_export_duration_seconds", "outcome", "ok"); got != 1 {
		t.Errorf("cold export: %v export durations, want 1", got)
	}

	export(t, backend.Options{}, f.with("name", "main"), ls, provider)
	g2 := metricstest.Gather(t)
	if got := blobs(g1, g2); got["reused"] != 3 || got["uploaded"] != 0 || got["touched"] != 0 {
		t.Errorf("warm export: blobs %v, want 3 reused", got)
	}
	export(t, backend.Options{}, f.with("name", "main", "touch_refresh", "0s"), ls, provider)
	g3 := metricstest.Gather(t)
	if got := blobs(g2, g3); got["touched"] != 3 || got["uploaded"] != 0 || got["reused"] != 0 {
		t.Errorf("export with touch_refresh=0s: blobs %v, want 3 touched", got)
	}

	load(t, backend.Options{}, f.with("name", "main"))
	load(t, backend.Options{}, f.with("name", "nothing-here"))
	if err := f.Store.Put(ctx, "manifests/bad", store.BytesBody([]byte("{not json"))); err != nil {
		t.Fatal(err)
	}
	imp, _, err := backend.ResolveCacheImporterFunc(backend.Options{})(ctx, nil, f.with("name", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imp.(*backend.Importer).Load(ctx); err == nil {
		t.Fatal("import of a manifest that is not JSON: no error")
	}
	g4 := metricstest.Gather(t)
	for outcome, want := range map[string]float64{"used": 1, "absent": 1, "skipped": 1, "error": 0} {
		if got := delta(g3, g4, "s3cache_imports_total", "outcome", outcome); got != want {
			t.Errorf("imports %s: %v, want %v", outcome, got, want)
		}
		if got := delta(g3, g4, "s3cache_import_duration_seconds", "outcome", outcome); got != want {
			t.Errorf("import durations %s: %v, want %v", outcome, got, want)
		}
	}
	if got := delta(g3, g4, "s3cache_import_records_total"); got != 3 {
		t.Errorf("records loaded: %v, want the manifest's 3", got)
	}
	if got := delta(g3, g4, "s3cache_s3_downloaded_bytes_total", "object", "manifest"); got <= 0 {
		t.Errorf("manifest bytes downloaded: %v, want some", got)
	}

	// A bucket that does not exist fails both ways.
	gone := f.with("name", "main", "bucket", "no-such-bucket-for-metrics")
	imp, _, err = backend.ResolveCacheImporterFunc(backend.Options{})(ctx, nil, gone)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imp.(*backend.Importer).Load(ctx); err == nil {
		t.Fatal("import from a missing bucket: no error")
	}
	exp, err := backend.ResolveCacheExporterFunc(backend.Options{})(ctx, nil, gone)
	if err != nil {
		t.Fatal(err)
	}
	addChain(t, exp, ls, provider)
	if _, err := exp.Finalize(ctx); err == nil {
		t.Fatal("export to a missing bucket: no error")
	}
	g5 := metricstest.Gather(t)
	if got := delta(g4, g5, "s3cache_imports_total", "outcome", "error"); got != 1 {
		t.Errorf("imports error: %v, want 1", got)
	}
	if got := delta(g4, g5, "s3cache_export_duration_seconds", "outcome", "error"); got != 1 {
		t.Errorf("exports error: %v, want 1", got)
	}
}
