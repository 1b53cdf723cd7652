package e2e

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// hostileSizes are layer sizes a bucket writer may put in a manifest for
// the final stage's layer; a negative one used to panic the import's fetch,
// taking down the process and every build on it (issue 16, finding 1).
var hostileSizes = []struct {
	name string
	size int64
}{
	{"negative", -5},
	{"huge", 1 << 62},
}

// withLayerSize is the cache's manifest with the final layer's size
// replaced, stored under name.
func (d *damagedCache) withLayerSize(t *testing.T, name string, size int64) cacheimporttypes.CacheLayer {
	t.Helper()
	final := d.finalLayer(t)
	m := d.manifest
	m.Layers = append([]cacheimporttypes.CacheLayer(nil), m.Layers...)
	for i, l := range m.Layers {
		if l.Blob == final.Blob {
			a := *l.Annotations
			a.Size = size
			m.Layers[i].Annotations = &a
		}
	}
	dt, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d.put(t, "manifests/"+name, dt)
	return final
}

// requireDamagedLayerMiss checks a build from a manifest whose final layer
// has a wrong size: it succeeded with the first build's output (its random
// bytes: the RUN steps came from the cache), and a warning named the
// layer's blob and the size.
func requireDamagedLayerMiss(t *testing.T, d *damagedCache, r result, out string, final cacheimporttypes.CacheLayer, size int64) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("the build failed on a manifest with a layer of size %d, it must run without that layer: %v", size, r)
	}
	requireConsistentOutput(t, out)
	requireSameFiles(t, d.out, out, "rand1", "rand2", "sum")
	requireWarning(t, r, final.Blob.String(), fmt.Sprintf("manifest says %d", size))
}

// The embedded engine imports a manifest whose final layer has a negative
// or absurd size as a cache miss for that layer.
func TestHostileLayerSizeEmbedded(t *testing.T) {
	d := newDamagedCache(t)
	for _, tc := range hostileSizes {
		t.Run(tc.name, func(t *testing.T) {
			final := d.withLayerSize(t, tc.name, tc.size)
			out := t.TempDir()
			r := s3cacheBuild(t, t.TempDir(), d.ctxDir, out, "--cache-from", d.b.spec("name="+tc.name))
			requireDamagedLayerMiss(t, d, r, out, final, tc.size)
			// buildctl's plain progress may show a cache load as DONE;
			// s3cache build's summary names each hit.
			requireRunHits(t, r.stderr, 3)
		})
	}
}

// A client of a shared daemon points its import at such manifests: each
// build succeeds, and the daemon goes on serving builds afterwards.
func TestHostileLayerSizeDaemonKeepsServing(t *testing.T) {
	d := newDamagedCache(t)
	daemon := ourDaemon(t)
	for _, tc := range hostileSizes {
		final := d.withLayerSize(t, tc.name, tc.size)
		out := t.TempDir()
		r := buildctlBuild(t, daemon, d.ctxDir, out, "--import-cache", d.b.spec("name="+tc.name))
		requireDamagedLayerMiss(t, d, r, out, final, tc.size)
	}
	// The same daemon, the intact cache: every step's result is there.
	out := t.TempDir()
	r := buildctlBuild(t, daemon, d.ctxDir, out, "--import-cache", d.b.spec("name=main"))
	if r.err != nil {
		t.Fatalf("the daemon did not serve a build after the hostile manifests: %v", r)
	}
	requireSameFiles(t, d.out, out, "rand1", "rand2", "sum")
	if err := daemon.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the daemon is gone: %v", err)
	}
}
