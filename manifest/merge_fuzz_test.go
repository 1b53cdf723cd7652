package manifest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// FuzzMerge merges two manifests as an export with merge=true merges its
// own cache config into one read from the bucket: any input may be
// refused, none may panic; what a merge returns parses with BuildKit's
// ParseConfig, is within the limits, and, for a plain union, holds
// exactly both sides. Each side is read as JSON and, since mutated JSON
// rarely stays a linked graph, also as a compact graph (graphOf).
func FuzzMerge(f *testing.F) {
	f.Add([]byte(`{}`), []byte(`{}`))
	f.Add([]byte(`{"layers":[{"blob":"sha256:0000000000000000000000000000000000000000000000000000000000000000","parent":-1}],"records":[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","layers":[{"layer":0,"createdAt":"2026-11-01T00:00:00Z"}]}]}`),
		[]byte(`{"layers":[{"blob":"sha256:0000000000000000000000000000000000000000000000000000000000000000","parent":-1}],"records":[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","layers":[{"layer":0,"createdAt":"2026-11-20T00:00:00Z"}]},{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","inputs":[[{"link":0}]]}]}`))
	f.Add([]byte{4, 1, 0, 2, 1, 3, 2, 4, 1, 1, 1, 0, 2, 0, 9}, []byte{3, 0, 0, 1, 0, 2, 1, 3, 2, 0, 1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var ja, jb cacheimporttypes.CacheConfig
		aOK := json.Unmarshal(a, &ja) == nil
		bOK := json.Unmarshal(b, &jb) == nil
		ga, gb := graphOf(a), graphOf(b)
		pairs := [][2]cacheimporttypes.CacheConfig{{ga, gb}, {gb, ga}}
		if aOK && bOK {
			pairs = append(pairs, [2]cacheimporttypes.CacheConfig{ja, jb})
		}
		if aOK {
			pairs = append(pairs, [2]cacheimporttypes.CacheConfig{ja, gb})
		}
		// What an export merges: this export's config and the sanitised
		// manifest read from the bucket. That merge must not fail.
		if aOK {
			if sa, _, err := Sanitize(ja); err == nil {
				if sb, _, err := Sanitize(gb); err == nil {
					for _, p := range [][2]cacheimporttypes.CacheConfig{{sa, sb}, {sb, sa}} {
						out, _, err := Merge(p[0], p[1], MergeOptions{Missing: map[digest.Digest]bool{digest.FromString("blob 1"): true}})
						if err != nil {
							t.Fatalf("merge of sanitised configs: %v", err)
						}
						requireParses(t, out, false)
						// What the exporter writes: the merge, sanitised,
						// which BuildKit indexes without looping.
						safe, _, err := Sanitize(out)
						if err != nil {
							t.Fatalf("sanitise a merge: %v", err)
						}
						requireParses(t, safe, true)
					}
				}
			}
		}
		for _, p := range pairs {
			out, rep, err := Merge(p[0], p[1], MergeOptions{})
			if err != nil {
				continue
			}
			requireParses(t, out, false)
			if dt, err := json.Marshal(out); err == nil && int64(len(dt)) > sizeBound(out) {
				t.Fatalf("size bound %d below the marshalled size %d", sizeBound(out), len(dt))
			}
			if rep.Dropped() {
				t.Fatalf("a plain union dropped something: %+v", rep)
			}
			if got, want := setsOf(out), setsOf(p[0]).union(setsOf(p[1])); !got.equal(want) {
				t.Fatalf("merge is not the union:\ngot:\n%v\nwant:\n%v", got, want)
			}
			lim := Limits{MaxLayers: 1 + len(out.Layers)/2, MaxRecords: 1 + len(out.Records)/2, MaxBytes: 600}
			out, _, err = Merge(p[0], p[1], MergeOptions{Keep: 24 * time.Hour, Now: time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC), Limits: lim})
			if err != nil {
				continue
			}
			requireParses(t, out, false)
			if fits, err := lim.fit(out); err != nil || !fits {
				t.Fatalf("merged config exceeds %+v: %d layers, %d records (%v)", lim, len(out.Layers), len(out.Records), err)
			}
			if len(p[1].Layers) > 0 {
				gone := p[1].Layers[len(p[1].Layers)/2].Blob
				out, _, err = Merge(p[0], p[1], MergeOptions{Missing: map[digest.Digest]bool{gone: true}})
				if err != nil {
					t.Fatalf("merge with a blob gone: %v", err)
				}
				requireParses(t, out, false)
				for _, rec := range out.Records {
					for _, res := range rec.Results {
						for l := res.LayerIndex; l != -1; l = out.Layers[l].ParentIndex {
							if out.Layers[l].Blob == gone {
								t.Fatalf("a result still names the gone blob %s", gone)
							}
						}
					}
				}
			}
		}
	})
}

// graphOf reads bytes as a small cache config: a layer count and each
// layer's blob and parent, then a record count and each record's key,
// input slots with links, and results with days. Parents and links mostly
// point back (valid), sometimes anywhere (loops, out of range).
func graphOf(dt []byte) cacheimporttypes.CacheConfig {
	next := func() int {
		if len(dt) == 0 {
			return 0
		}
		b := dt[0]
		dt = dt[1:]
		return int(b)
	}
	var cfg cacheimporttypes.CacheConfig
	nl := next() % 10
	for i := range nl {
		l := cacheimporttypes.CacheLayer{Blob: digest.FromString(fmt.Sprint("blob ", next()%4)), ParentIndex: next()%(i+1) - 1}
		if next()%16 == 15 {
			l.ParentIndex = next() - 2
		}
		cfg.Layers = append(cfg.Layers, l)
	}
	nr := next() % 10
	for i := range nr {
		rec := cacheimporttypes.CacheRecord{Digest: digest.FromString(fmt.Sprint("key ", next()%5))}
		if i > 0 {
			rec.Inputs = make([][]cacheimporttypes.CacheInput, next()%3)
			for j := range rec.Inputs {
				for range 1 + next()%2 {
					link := next() % i
					if next()%16 == 15 {
						link = next() - 2
					}
					rec.Inputs[j] = append(rec.Inputs[j], cacheimporttypes.CacheInput{LinkIndex: link, Selector: fmt.Sprint(next() % 2)})
				}
			}
		}
		for range next() % 3 {
			rec.Results = append(rec.Results, cacheimporttypes.CacheResult{LayerIndex: next() % (nl + 1), CreatedAt: time.Date(2026, 11, 1+next()%20, 0, 0, 0, 0, time.UTC)})
		}
		cfg.Records = append(cfg.Records, rec)
	}
	return cfg
}
