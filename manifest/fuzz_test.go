package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// FuzzDecodeManifest feeds untrusted manifest bytes through decoding and
// chain parsing, as an import does after reading them from a bucket: any
// input may be refused, none may panic or loop. The property: whatever
// sanitising keeps, BuildKit parses and indexes, so damage costs steps,
// not the import.
//
// The same bytes are also read as a compact graph of layers and records
// (graphConfig): mutated JSON rarely stays a manifest with links between
// records, and loops next to good links were never reached that way.
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
		if err := Decode(dt, &config); err == nil {
			requireSanitizedParses(t, config)
		}
		requireSanitizedParses(t, graphConfig(dt))
	})
}

// requireSanitizedParses checks that what sanitising keeps of config
// parses into chains that BuildKit indexes.
func requireSanitizedParses(t *testing.T, config cacheimporttypes.CacheConfig) {
	t.Helper()
	config, _, err := Sanitize(config)
	if err != nil {
		return
	}
	cc, err := parse(config)
	if err != nil {
		t.Fatalf("sanitized manifest does not parse: %v", err)
	}
	if _, _, err := v1.NewCacheKeyStorage(cc, nil); err != nil {
		t.Fatalf("sanitized manifest not indexed: %v", err)
	}
	if _, _, err := cc.Marshal(t.Context()); err != nil {
		return
	}
}

// graphConfig reads bytes as a small cache config: layers with parents,
// records with results and input slots of links, every index drawn from a
// narrow range around the valid ones, digests from a few (so that records
// and blobs repeat), and a random: record now and then.
func graphConfig(dt []byte) cacheimporttypes.CacheConfig {
	next := func() int {
		if len(dt) == 0 {
			return 0
		}
		b := dt[0]
		dt = dt[1:]
		return int(b)
	}
	index := func() int { return next()%10 - 2 } // -2..7
	var cfg cacheimporttypes.CacheConfig
	for range next() % 8 {
		cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{
			Blob:        digest.FromString(fmt.Sprint("blob", next()%4)),
			ParentIndex: index(),
			Annotations: &cacheimporttypes.LayerAnnotations{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", DiffID: digest.FromString("diff"), Size: 1},
		})
	}
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for range next() % 8 {
		var r cacheimporttypes.CacheRecord
		if k := next() % 8; k == 7 {
			r.Digest = digest.Digest("random:" + digest.FromString("r").Encoded())
		} else {
			r.Digest = digest.FromString(fmt.Sprint("record", k%5))
		}
		for range next() % 3 {
			r.Results = append(r.Results, cacheimporttypes.CacheResult{LayerIndex: index(), CreatedAt: created})
		}
		for range next() % 2 {
			var ch cacheimporttypes.ChainedResult
			for range next() % 3 {
				ch.LayerIndexes = append(ch.LayerIndexes, index())
			}
			r.ChainedResults = append(r.ChainedResults, ch)
		}
		for range next() % 3 {
			var slot []cacheimporttypes.CacheInput
			for range next() % 3 {
				k := next()
				slot = append(slot, cacheimporttypes.CacheInput{LinkIndex: k%10 - 2, Selector: []string{"", "sel"}[k/128]})
			}
			r.Inputs = append(r.Inputs, slot)
		}
		cfg.Records = append(cfg.Records, r)
	}
	return cfg
}
