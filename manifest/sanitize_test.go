package manifest

import (
	"fmt"
	"os"
	"testing"

	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

func TestSanitize(t *testing.T) {
	blob := func(i int) digest.Digest { return digest.FromString(string(rune('a' + i))) }
	layer := func(i, parent int) cacheimporttypes.CacheLayer {
		return cacheimporttypes.CacheLayer{Blob: blob(i), ParentIndex: parent}
	}
	rec := func(name string, layer int, links ...int) cacheimporttypes.CacheRecord {
		r := cacheimporttypes.CacheRecord{Digest: digest.FromString(name)}
		if layer >= -1 {
			r.Results = []cacheimporttypes.CacheResult{{LayerIndex: layer}}
		}
		if len(links) > 0 {
			var slot []cacheimporttypes.CacheInput
			for _, l := range links {
				slot = append(slot, cacheimporttypes.CacheInput{LinkIndex: l})
			}
			r.Inputs = [][]cacheimporttypes.CacheInput{slot}
		}
		return r
	}
	const noResult = -2
	tests := []struct {
		name        string
		cfg         cacheimporttypes.CacheConfig
		wantRecords []string // digests of the records kept, in order
		wantResults int      // results kept over all records
		problems    bool
	}{
		{
			name:        "intact chain",
			cfg:         cacheimporttypes.CacheConfig{Layers: []cacheimporttypes.CacheLayer{layer(0, -1), layer(1, 0)}, Records: []cacheimporttypes.CacheRecord{rec("base", 0), rec("run", 1, 0)}},
			wantRecords: []string{"base", "run"},
			wantResults: 2,
		},
		{
			name:        "result names a layer out of range",
			cfg:         cacheimporttypes.CacheConfig{Layers: []cacheimporttypes.CacheLayer{layer(0, -1)}, Records: []cacheimporttypes.CacheRecord{rec("base", 0), rec("run", 7, 0)}},
			wantRecords: []string{"base", "run"},
			wantResults: 1,
			problems:    true,
		},
		{
			name:        "layer parent out of range and layer parent loop",
			cfg:         cacheimporttypes.CacheConfig{Layers: []cacheimporttypes.CacheLayer{layer(0, 9), layer(1, 2), layer(2, 1), layer(3, -1)}, Records: []cacheimporttypes.CacheRecord{rec("a", 0), rec("b", 1), rec("c", 3)}},
			wantRecords: []string{"a", "b", "c"},
			wantResults: 1,
			problems:    true,
		},
		{
			name:        "link out of range drops the record and its dependents",
			cfg:         cacheimporttypes.CacheConfig{Layers: []cacheimporttypes.CacheLayer{layer(0, -1)}, Records: []cacheimporttypes.CacheRecord{rec("base", 0), rec("bad", noResult, 42), rec("child", noResult, 1), rec("ok", noResult, 0)}},
			wantRecords: []string{"base", "ok"},
			problems:    true,
			wantResults: 1,
		},
		{
			name:        "records in a loop",
			cfg:         cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{rec("x", noResult, 1), rec("y", noResult, 0), rec("root", noResult)}},
			wantRecords: []string{"root"},
			problems:    true,
		},
		{
			// A->B, B->{A, C}: B's slot holds through C, and its link back
			// to A must go, or BuildKit refuses the whole manifest.
			name:        "loop next to a good link",
			cfg:         cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{rec("x", noResult, 1), rec("y", noResult, 0, 2), rec("root", noResult)}},
			wantRecords: []string{"x", "y", "root"},
			problems:    true,
		},
		{
			name:        "link to itself next to a good link",
			cfg:         cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{rec("root", noResult), rec("r", noResult, 1, 0)}},
			wantRecords: []string{"root", "r"},
			problems:    true,
		},
		{
			// BuildKit adds no record for a random: digest; a link to one
			// fails its parse.
			name: "link to a random: record",
			cfg: cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{
				{Digest: digest.Digest("random:" + digest.FromString("x").Encoded())}, rec("r", noResult, 0), rec("root", noResult), rec("ok", noResult, 0, 2)}},
			wantRecords: []string{"root", "ok"},
			problems:    true,
		},
		{
			// Found by FuzzDecodeManifest: BuildKit's key storage takes an
			// empty digest for a record being indexed and refuses the
			// manifest as a loop.
			name: "records without a digest",
			cfg: cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{
				{}, {Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 0}}}}, {Digest: "9"}, rec("root", noResult), rec("r", noResult, 0, 3)}},
			wantRecords: []string{"root", "r"},
			problems:    true,
		},
		{
			name:        "one good link of two keeps the slot",
			cfg:         cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{rec("root", noResult), rec("r", noResult, -5, 0)}},
			wantRecords: []string{"root", "r"},
			problems:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, problems, err := Sanitize(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if (len(problems) > 0) != tc.problems {
				t.Errorf("problems = %q, want some: %v", problems, tc.problems)
			}
			var names []string
			results := 0
			for _, r := range got.Records {
				for _, n := range []string{"base", "run", "a", "b", "c", "bad", "child", "ok", "x", "y", "root", "r"} {
					if r.Digest == digest.FromString(n) {
						names = append(names, n)
					}
				}
				results += len(r.Results)
				for _, slot := range r.Inputs {
					for _, in := range slot {
						if in.LinkIndex < 0 || in.LinkIndex >= len(got.Records) {
							t.Errorf("kept link %d out of range", in.LinkIndex)
						}
					}
				}
			}
			if len(names) != len(tc.wantRecords) {
				t.Fatalf("kept records %v, want %v", names, tc.wantRecords)
			}
			for i := range names {
				if names[i] != tc.wantRecords[i] {
					t.Fatalf("kept records %v, want %v", names, tc.wantRecords)
				}
			}
			if results != tc.wantResults {
				t.Errorf("kept %d results, want %d", results, tc.wantResults)
			}
			if _, err := parse(got); err != nil {
				t.Fatalf("sanitized config does not parse: %v", err)
			}
		})
	}
}

func TestSanitizeRefusesHugeManifest(t *testing.T) {
	cfg := cacheimporttypes.CacheConfig{Layers: make([]cacheimporttypes.CacheLayer, MaxLayers+1)}
	if _, _, err := Sanitize(cfg); err == nil {
		t.Fatal("a manifest over the layer bound was accepted")
	}
}

func TestRecordedManifestParses(t *testing.T) {
	dt, err := os.ReadFile("testdata/manifests/two-stage-max.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg cacheimporttypes.CacheConfig
	if err := Decode(dt, &cfg); err != nil {
		t.Fatal(err)
	}
	got, problems, err := Sanitize(cfg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("a manifest written by a real build: problems %q, err %v", problems, err)
	}
	if len(got.Records) != len(cfg.Records) || len(cfg.Layers) < 4 {
		t.Fatalf("records %d -> %d, layers %d", len(cfg.Records), len(got.Records), len(cfg.Layers))
	}
}

// parse hands config to BuildKit's parser as the importer does when every
// blob is present: a layer without a usable descriptor is left out, a
// cache miss.
func parse(config cacheimporttypes.CacheConfig) (*v1.CacheChains, error) {
	provider := v1.DescriptorProvider{}
	for _, l := range config.Layers {
		desc, err := Descriptor(l)
		if err != nil {
			continue
		}
		provider[l.Blob] = v1.DescriptorProviderPair{Descriptor: desc}
	}
	cc := v1.NewCacheChains()
	if err := v1.ParseConfig(config, provider, cc); err != nil {
		return nil, fmt.Errorf("parse cache config: %w", err)
	}
	// The importer's next step: BuildKit indexes the chains by cache key.
	if _, _, err := v1.NewCacheKeyStorage(cc, nil); err != nil {
		return nil, fmt.Errorf("index cache records: %w", err)
	}
	return cc, nil
}

// A manifest whose records BuildKit's parse would merge into a loop:
// NewCacheKeyStorage then recursed without end and overflowed the stack,
// a crash of the whole engine, in about one parse in twelve (the merge
// keeps a record picked from a map). Found by FuzzMerge. The record that
// would merge is dropped, and the parse never loops.
func TestSanitizeDropsRecordsThatWouldMerge(t *testing.T) {
	d := digest.FromString("step")
	link := func(sel string, idx int) cacheimporttypes.CacheInput {
		return cacheimporttypes.CacheInput{Selector: sel, LinkIndex: idx}
	}
	cfg := cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{
		{Digest: d},
		{Digest: d, Inputs: [][]cacheimporttypes.CacheInput{{link("1", 0)}}},
		{Digest: d, Inputs: [][]cacheimporttypes.CacheInput{{link("1", 1)}}},
		{Digest: d, Inputs: [][]cacheimporttypes.CacheInput{{link("0", 1), link("0", 2)}}},
		// Matches record 1 (through record 0) and record 3 (through record
		// 2), which descends from record 1.
		{Digest: d, Inputs: [][]cacheimporttypes.CacheInput{{link("1", 0), link("0", 2)}}},
	}}
	got, problems, err := Sanitize(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 4 || len(problems) == 0 {
		t.Fatalf("kept %d records with problems %q; want 4, the merging one dropped", len(got.Records), problems)
	}
	for range 100 {
		if _, err := parse(got); err != nil {
			t.Fatal(err)
		}
	}
	// The fuzzer's input, read as its graph.
	got, _, err = Sanitize(graphOf([]byte("{\"lay111111111111111111111111111111111111111\",\"layers\":[{\"ayer\":0,\"createdAt\":\"2026-11-01T00:00:00Z\"}]}],")))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := parse(got); err != nil {
			t.Fatal(err)
		}
	}
}
