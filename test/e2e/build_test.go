package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// (a) An embedded build exports to the bucket; a new engine root imports it:
// every step is a hit and the output is byte-identical.
func TestEmbeddedExportThenImportFromFreshRoot(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	out1, out2 := t.TempDir(), t.TempDir()

	r := s3cacheBuild(t, t.TempDir(), ctxDir, out1, "--cache-to", b.spec("name=main,mode=max"))
	if r.err != nil {
		t.Fatalf("first build: %v", r)
	}
	if keys := b.keys(t, "manifests/"); len(keys) != 1 || keys[0] != "manifests/main" {
		t.Fatalf("manifests after export: %v, want [manifests/main]", keys)
	}
	if len(b.keys(t, "blobs/")) < 3 {
		t.Fatalf("blobs after a mode=max export: %v, want one per layer", b.keys(t, "blobs/"))
	}

	r = s3cacheBuild(t, t.TempDir(), ctxDir, out2, "--cache-from", b.spec("name=main"))
	if r.err != nil {
		t.Fatalf("rebuild: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
	if !strings.Contains(r.stderr, "steps cached") {
		t.Errorf("no cache summary in the output:\n%s", r.stderr)
	}
}

// (b) mode=min exports only the final stage's chain; mode=max every step.
func TestModeMinHoldsOnlyTheFinalStage(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	root := t.TempDir()
	if r := s3cacheBuild(t, root, ctxDir, t.TempDir(), "--cache-to", b.spec("name=min,mode=min,prefix=min/")); r.err != nil {
		t.Fatalf("min export: %v", r)
	}
	if r := s3cacheBuild(t, root, ctxDir, t.TempDir(), "--cache-to", b.spec("name=max,mode=max,prefix=max/")); r.err != nil {
		t.Fatalf("max export: %v", r)
	}
	minBlobs, maxBlobs := b.keys(t, "min/blobs/"), b.keys(t, "max/blobs/")
	// The final stage is FROM scratch plus one COPY: one layer.
	if len(minBlobs) != 1 {
		t.Errorf("mode=min exported %d blobs, want the final stage's single layer: %v", len(minBlobs), minBlobs)
	}
	if len(maxBlobs) < 4 {
		t.Errorf("mode=max exported %d blobs, want every step's layer (base, 2 RUNs, final): %v", len(maxBlobs), maxBlobs)
	}
	for _, k := range minBlobs {
		found := false
		for _, m := range maxBlobs {
			found = found || filepath.Base(m) == filepath.Base(k)
		}
		if !found {
			t.Errorf("mode=min blob %s is not among mode=max's", k)
		}
	}

	// From mode=max a fresh root gets every RUN from cache.
	r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-from", b.spec("name=max,prefix=max/"))
	if r.err != nil {
		t.Fatalf("import max: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
}

// (c) ignore-error=true keeps the build green when the bucket is unreachable.
func TestIgnoreErrorWithUnreachableEndpoint(t *testing.T) {
	requireRoot(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	bad := "type=s3,region=us-east-1,bucket=nowhere,endpoint_url=http://127.0.0.1:1,use_path_style=true,access_key_id=x,secret_access_key=y,retry_max_attempts=1"

	r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", bad+",ignore-error=true")
	if r.err != nil {
		t.Fatalf("build with ignore-error=true failed: %v", r)
	}
	if !strings.Contains(r.stderr, "127.0.0.1:1") && !strings.Contains(strings.ToLower(r.stderr), "error") {
		t.Errorf("no warning about the failed cache export:\n%s", r.stderr)
	}

	r = s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", bad)
	if r.err == nil {
		t.Fatalf("build without ignore-error succeeded although the cache export failed:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "build failed") || !strings.Contains(r.stderr, "nowhere") {
		t.Errorf("error does not say the cache export to the bucket failed:\n%s", r.stderr)
	}
}

// (g) Several names in one export; --cache-from name=branch;main falls back.
func TestSeveralNamesAndFallback(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	out1, out2 := t.TempDir(), t.TempDir()
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, out1, "--cache-to", b.spec(`"name=main;v1.2"`+",mode=max")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	if keys := b.keys(t, "manifests/"); strings.Join(keys, " ") != "manifests/main manifests/v1.2" {
		t.Fatalf("manifests: %v, want main and v1.2", keys)
	}
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out2, "--cache-from", b.spec(`"name=feature-x;main"`))
	if r.err != nil {
		t.Fatalf("import: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
}

// A bad type=s3 spec is refused before any work, naming the attribute.
func TestBadSpecRefusedBeforeBuilding(t *testing.T) {
	requireRoot(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	root := t.TempDir()
	r := s3cacheBuild(t, root, ctxDir, t.TempDir(), "--cache-to", "type=s3,region=r,bucket=b,upload_parallelism=zero")
	if r.err == nil || !strings.Contains(r.stderr, "upload_parallelism") {
		t.Fatalf("bad spec: want an error naming upload_parallelism: %v", r)
	}
	if strings.Contains(r.stderr, "#1 ") {
		t.Errorf("the build started before the spec was checked:\n%s", r.stderr)
	}
}

// compression=zstd is honoured as by BuildKit's registry cache (upstream's
// s3 backend ignores it), and a fresh engine imports the zstd layers.
func TestCompressionZstd(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	out1, out2 := t.TempDir(), t.TempDir()
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, out1, "--cache-to", b.spec("name=z,mode=max,compression=zstd,force-compression=true")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	d := &damagedCache{b: b}
	var m cacheimporttypes.CacheConfig
	if err := json.Unmarshal(d.get(t, "manifests/z"), &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if l.Annotations == nil || !strings.Contains(l.Annotations.MediaType, "zstd") {
			t.Errorf("layer %s media type %+v, want zstd", l.Blob, l.Annotations)
		}
	}
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out2, "--cache-from", b.spec("name=z"))
	if r.err != nil {
		t.Fatalf("import: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
}
