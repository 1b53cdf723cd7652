package backend

import (
	"os"
	"path/filepath"
	"testing"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// FuzzDecodeManifest feeds untrusted manifest bytes through decoding and
// chain parsing, as an import does after reading them from a bucket: any
// input may be refused, none may panic or loop.
func FuzzDecodeManifest(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/manifests/*.json")
	for _, p := range seeds {
		dt, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(dt)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"layers":[{"blob":"sha256:0000000000000000000000000000000000000000000000000000000000000000","parent":-1}],"records":[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","layers":[{"layer":5}]}]}`))
	f.Add([]byte(`{"records":[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","inputs":[[{"link":0}]]}]}`))
	f.Fuzz(func(t *testing.T, dt []byte) {
		var config cacheimporttypes.CacheConfig
		if err := DecodeManifest(dt, &config); err != nil {
			return
		}
		config, _, err := sanitize(config)
		if err != nil {
			return
		}
		present := map[string]bool{}
		for _, l := range config.Layers {
			present[l.Blob.String()] = true
		}
		imp := &Importer{}
		// Sanitized, any manifest must parse: damage costs steps, not the import.
		cc, err := imp.chainsOf(t.Context(), config, present)
		if err != nil {
			t.Fatalf("sanitized manifest does not parse: %v", err)
		}
		if _, _, err := cc.Marshal(t.Context()); err != nil {
			return
		}
	})
}
