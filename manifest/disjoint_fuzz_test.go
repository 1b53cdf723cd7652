package manifest

import (
	"encoding/json"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// rekey gives every record of cfg a digest of its own side.
func rekey(cfg cacheimporttypes.CacheConfig, side string) cacheimporttypes.CacheConfig {
	out := cfg
	out.Records = make([]cacheimporttypes.CacheRecord, len(cfg.Records))
	for i, r := range cfg.Records {
		r.Digest = digest.FromString(side + string(r.Digest))
		out.Records[i] = r
	}
	return out
}

func FuzzMergeDisjointIsClean(f *testing.F) {
	f.Add([]byte{4, 1, 0, 2, 1, 3, 2, 4, 1, 1, 1, 0, 2, 0, 9}, []byte{3, 0, 0, 1, 0, 2, 1, 3, 2, 0, 1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var ja cacheimporttypes.CacheConfig
		sides := []cacheimporttypes.CacheConfig{graphOf(a), graphOf(b)}
		if json.Unmarshal(a, &ja) == nil {
			sides = append(sides, ja)
		}
		for i := range sides {
			for j := range sides {
				own, _, err := Sanitize(rekey(sides[i], "own"))
				if err != nil {
					continue
				}
				if _, problems, _ := Sanitize(own); len(problems) > 0 {
					continue
				}
				existing, _, err := Sanitize(rekey(sides[j], "existing"))
				if err != nil {
					continue
				}
				for _, opts := range []MergeOptions{
					{},
					{Missing: map[digest.Digest]bool{digest.FromString("blob 1"): true}},
					{Keep: 24 * time.Hour, Now: time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)},
					{Limits: Limits{MaxLayers: 1 + (len(own.Layers)+len(existing.Layers))/2, MaxRecords: 1 + (len(own.Records)+len(existing.Records))/2}},
				} {
					merged, _, err := Merge(own, existing, opts)
					if err != nil {
						continue
					}
					safe, problems, err := Sanitize(merged)
					if err != nil || len(problems) > 0 {
						t.Fatalf("merge of disjoint keys needed sanitising: %v %v", err, problems)
					}
					if !setsOf(safe).equal(setsOf(merged)) {
						t.Fatalf("sanitising a merge of disjoint keys changed it")
					}
				}
			}
		}
	})
}
