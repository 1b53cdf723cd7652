package manifest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// configSets is a cache config as sets: each layer as its chain of blobs,
// each record as its digest and, slot by slot, the records it links to,
// recursively, with the set of its results as chains and creation times.
// Indexes and array order don't matter.
type configSets struct {
	layers  map[string]bool
	records map[string]map[string]bool
}

func setsOf(cc cacheimporttypes.CacheConfig) configSets {
	s := configSets{layers: map[string]bool{}, records: map[string]map[string]bool{}}
	// A layer on parents that leave the list or loop is no chain: "!".
	chains := map[int]string{}
	var chain func(i, depth int) string
	chain = func(i, depth int) string {
		if i < 0 || i >= len(cc.Layers) || depth > len(cc.Layers) {
			return "!"
		}
		if c, ok := chains[i]; ok {
			return c
		}
		l := cc.Layers[i]
		c := l.Blob.String()
		if l.ParentIndex != -1 {
			p := chain(l.ParentIndex, depth+1)
			if p == "!" {
				return "!"
			}
			c = p + "/" + c
		}
		chains[i] = c
		return c
	}
	ids := map[int]string{}
	var id func(i int) string
	id = func(i int) string {
		if v, ok := ids[i]; ok {
			return v
		}
		r := cc.Records[i]
		var slots []string
		for _, slot := range r.Inputs {
			var links []string
			for _, in := range slot {
				links = append(links, id(in.LinkIndex)+"~"+in.Selector)
			}
			slices.Sort(links)
			links = slices.Compact(links)
			slots = append(slots, "("+strings.Join(links, " ")+")")
		}
		v := r.Digest.String() + "[" + strings.Join(slots, " ") + "]"
		ids[i] = v
		return v
	}
	for i := range cc.Layers {
		if c := chain(i, 0); c != "!" {
			s.layers[c] = true
		}
	}
	for i, r := range cc.Records {
		if strings.HasPrefix(r.Digest.String(), "random:") {
			continue
		}
		k := id(i)
		if s.records[k] == nil {
			s.records[k] = map[string]bool{}
		}
		for _, res := range r.Results {
			s.records[k][chain(res.LayerIndex, 0)+"@"+res.CreatedAt.UTC().String()] = true
		}
		for _, res := range r.ChainedResults {
			var cs []string
			for _, l := range res.LayerIndexes {
				cs = append(cs, chain(l, 0))
			}
			s.records[k]["chained:"+strings.Join(cs, ",")+"@"+res.CreatedAt.UTC().String()] = true
		}
	}
	return s
}

func (s configSets) union(o configSets) configSets {
	u := configSets{layers: maps.Clone(s.layers), records: map[string]map[string]bool{}}
	maps.Copy(u.layers, o.layers)
	for _, m := range []map[string]map[string]bool{s.records, o.records} {
		for k, res := range m {
			if u.records[k] == nil {
				u.records[k] = map[string]bool{}
			}
			maps.Copy(u.records[k], res)
		}
	}
	return u
}

func (s configSets) equal(o configSets) bool {
	return maps.Equal(s.layers, o.layers) && maps.EqualFunc(s.records, o.records, maps.Equal)
}

func (s configSets) String() string {
	var out []string
	for l := range s.layers {
		out = append(out, "layer "+l)
	}
	for k, res := range s.records {
		out = append(out, "record "+k+" {"+strings.Join(slices.Sorted(maps.Keys(res)), " ")+"}")
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// requireParses checks that BuildKit's ParseConfig accepts cc with every
// blob present; with index, that its key storage also indexes the chains,
// as an import does. Only for configs of real shapes: on some hand-made
// graphs (records of one digest linking each other through several links)
// BuildKit's indexing recurses without end, now and then, whether merged
// or not, and a stack overflow cannot be recovered.
func requireParses(t testing.TB, cc cacheimporttypes.CacheConfig, index bool) {
	t.Helper()
	provider := v1.DescriptorProvider{}
	for _, l := range cc.Layers {
		provider[l.Blob] = v1.DescriptorProviderPair{Descriptor: ocispecs.Descriptor{Digest: l.Blob, MediaType: ocispecs.MediaTypeImageLayerGzip, Size: 1}}
	}
	chains := v1.NewCacheChains()
	if err := v1.ParseConfig(cc, provider, chains); err != nil {
		dt, _ := json.Marshal(cc)
		t.Fatalf("BuildKit's ParseConfig refuses the merged config: %v\n%s", err, dt)
	}
	if !index {
		return
	}
	if _, _, err := v1.NewCacheKeyStorage(chains, nil); err != nil {
		dt, _ := json.Marshal(cc)
		t.Fatalf("BuildKit does not index the merged config: %v\n%s", err, dt)
	}
}

// genRecord is a step of a generated build graph: a cache key, links to
// earlier steps, and the results some export of it may hold.
type genRecord struct {
	dgst    digest.Digest
	deps    [][]genLink
	results []solver.CacheExportResult
}

type genLink struct {
	src      int
	selector string
}

// genGraph generates build steps whose keys and blobs recur (the same key
// on other inputs, the same blob on other parents), as real caches do.
func genGraph(r *rand.Rand) []genRecord {
	pool := make([]ocispecs.Descriptor, 2+r.IntN(5))
	for i := range pool {
		pool[i] = ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString(fmt.Sprintf("blob %d", i)), Size: int64(10 + i)}
	}
	n := 1 + r.IntN(14)
	g := make([]genRecord, n)
	for i := range g {
		rec := genRecord{dgst: digest.FromString(fmt.Sprintf("key %d", r.IntN(n/2+2)))}
		if i > 0 && r.IntN(4) > 0 {
			rec.deps = make([][]genLink, 1+r.IntN(2))
			for j := range rec.deps {
				for range 1 + r.IntN(2) {
					sel := ""
					if r.IntN(3) == 0 {
						sel = fmt.Sprintf("sel%d", r.IntN(2))
					}
					rec.deps[j] = append(rec.deps[j], genLink{src: r.IntN(i), selector: sel})
				}
			}
		}
		for range r.IntN(3) {
			var chain []ocispecs.Descriptor
			for range 1 + r.IntN(4) {
				chain = append(chain, pool[r.IntN(len(pool))])
			}
			rec.results = append(rec.results, solver.CacheExportResult{
				CreatedAt: time.Date(2026, 11, 1+r.IntN(20), r.IntN(24), 0, 0, 0, time.UTC),
				Result:    &solver.Remote{Descriptors: chain},
			})
		}
		g[i] = rec
	}
	return g
}

// export marshals, as BuildKit's CacheChains do, the steps of g one
// writer ran: about half of them, each with some of its results. Some
// records then get a chained result and layers annotations, which
// BuildKit's marshal never writes but other writers may.
func export(t testing.TB, r *rand.Rand, g []genRecord) cacheimporttypes.CacheConfig {
	t.Helper()
	cc := v1.NewCacheChains()
	added := make([]solver.CacheExporterRecord, len(g))
	for i, rec := range g {
		if r.IntN(2) == 0 {
			continue
		}
		var deps [][]solver.CacheLink
		ok := true
		for _, links := range rec.deps {
			var ls []solver.CacheLink
			for _, l := range links {
				if added[l.src] != nil {
					ls = append(ls, solver.CacheLink{Src: added[l.src], Selector: l.selector})
				}
			}
			if len(ls) == 0 {
				ok = false
				break
			}
			deps = append(deps, ls)
		}
		if !ok {
			continue
		}
		var results []solver.CacheExportResult
		for _, res := range rec.results {
			if r.IntN(3) > 0 {
				results = append(results, res)
			}
		}
		er, _, err := cc.Add(rec.dgst, deps, results)
		if err != nil {
			t.Fatal(err)
		}
		added[i] = er
	}
	cfg, _, err := cc.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Layers) > 0 && len(cfg.Records) > 0 && r.IntN(3) == 0 {
		rec := &cfg.Records[r.IntN(len(cfg.Records))]
		var idx []int
		for range 1 + r.IntN(3) {
			idx = append(idx, r.IntN(len(cfg.Layers)))
		}
		rec.ChainedResults = append(rec.ChainedResults, cacheimporttypes.ChainedResult{LayerIndexes: idx, CreatedAt: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	}
	for i := range cfg.Layers {
		if r.IntN(2) == 0 {
			cfg.Layers[i].Annotations = &cacheimporttypes.LayerAnnotations{MediaType: ocispecs.MediaTypeImageLayerGzip, Size: 10, CreatedAt: time.Date(2026, 10, 1+r.IntN(3), 0, 0, 0, 0, time.UTC)}
		}
	}
	return *cfg
}

func mustMerge(t testing.TB, own, existing cacheimporttypes.CacheConfig, opts MergeOptions) (cacheimporttypes.CacheConfig, MergeReport) {
	t.Helper()
	out, rep, err := Merge(own, existing, opts)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	requireParses(t, out, true)
	return out, rep
}

// For pairs of exports of generated build graphs (two writers running
// overlapping steps): the merge parses, holds exactly the union of both
// (so every record and result chain of each), merging a config with
// itself gives it back, and the order of the two doesn't matter.
func TestMergeProperties(t *testing.T) {
	joined := 0 // records both hold with results of both
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 18))
		g := genGraph(r)
		a, b := export(t, r, g), export(t, r, g)
		sa, sb := setsOf(a), setsOf(b)
		for k, res := range sa.records {
			if o, ok := sb.records[k]; ok && len(res) > 0 && len(o) > 0 && !maps.Equal(res, o) {
				joined++
			}
		}

		ab, rep := mustMerge(t, a, b, MergeOptions{})
		if dt, _ := json.Marshal(ab); int64(len(dt)) > sizeBound(ab) {
			t.Fatalf("seed %d: size bound %d below the marshalled size %d", seed, sizeBound(ab), len(dt))
		}
		if rep.Dropped() {
			t.Fatalf("seed %d: a plain union dropped something: %+v", seed, rep)
		}
		if got, want := setsOf(ab), sa.union(sb); !got.equal(want) {
			t.Fatalf("seed %d: merge(a, b) is not the union of a and b:\ngot:\n%v\nwant:\n%v", seed, got, want)
		}
		ba, _ := mustMerge(t, b, a, MergeOptions{})
		if !setsOf(ab).equal(setsOf(ba)) {
			t.Fatalf("seed %d: merge(a, b) and merge(b, a) differ:\n%v\n--\n%v", seed, setsOf(ab), setsOf(ba))
		}
		aa, _ := mustMerge(t, a, a, MergeOptions{})
		if !setsOf(aa).equal(sa) {
			t.Fatalf("seed %d: merge(a, a) is not a:\ngot:\n%v\nwant:\n%v", seed, setsOf(aa), sa)
		}
		if len(aa.Layers) > len(a.Layers) || len(aa.Records) > len(a.Records) {
			t.Fatalf("seed %d: merge(a, a) has %d layers and %d records, a has %d and %d", seed, len(aa.Layers), len(aa.Records), len(a.Layers), len(a.Records))
		}
		// A merged manifest is merged again by the next writer.
		c := export(t, r, g)
		abc, _ := mustMerge(t, c, ab, MergeOptions{})
		if got, want := setsOf(abc), sa.union(sb).union(setsOf(c)); !got.equal(want) {
			t.Fatalf("seed %d: merge(c, merge(a, b)) is not the union of the three", seed)
		}
	}
	if joined < 30 {
		t.Fatalf("only %d records held by both writers with different results: the generator no longer tests joining", joined)
	}
}

// Two writers ran one RUN (one digest) on different bases: the merge
// keeps two records, so neither base is offered the other's result.
func TestMergeKeepsRecordsOnOtherInputsApart(t *testing.T) {
	at := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	base := func(name string) cacheimporttypes.CacheConfig {
		return cacheimporttypes.CacheConfig{
			Layers: []cacheimporttypes.CacheLayer{
				{Blob: digest.FromString(name), ParentIndex: -1},
				{Blob: digest.FromString("run output on " + name), ParentIndex: 0},
			},
			Records: []cacheimporttypes.CacheRecord{
				{Digest: digest.FromString("base " + name), Results: []cacheimporttypes.CacheResult{{LayerIndex: 0, CreatedAt: at}}},
				{Digest: digest.FromString("RUN make"), Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 0}}}, Results: []cacheimporttypes.CacheResult{{LayerIndex: 1, CreatedAt: at}}},
			},
		}
	}
	out, _ := mustMerge(t, base("alpine"), base("debian"), MergeOptions{})
	var runs int
	for _, rec := range out.Records {
		if rec.Digest == digest.FromString("RUN make") {
			runs++
			if len(rec.Inputs) != 1 || len(rec.Inputs[0]) != 1 || len(rec.Results) != 1 {
				t.Errorf("RUN record joined other inputs or results: %+v", rec)
			}
		}
	}
	if runs != 2 {
		t.Fatalf("want 2 RUN records, one per base, got %d", runs)
	}
}

// merge_keep: results only the existing manifest holds that are older than
// the keep go, with the records and layers only they needed; the export's
// own results stay whatever their age, and younger merged-in ones stay.
func TestMergeKeepDropsOldMergedInResults(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old, young := now.Add(-200*time.Hour), now.Add(-time.Hour)
	blob := func(s string) digest.Digest { return digest.FromString(s) }
	key := func(s string) digest.Digest { return digest.FromString("key " + s) }
	own := cacheimporttypes.CacheConfig{
		Layers: []cacheimporttypes.CacheLayer{{Blob: blob("own"), ParentIndex: -1}},
		Records: []cacheimporttypes.CacheRecord{
			// Our own result is old too (reused from the cache): kept.
			{Digest: key("own"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 0, CreatedAt: old}}},
		},
	}
	existing := cacheimporttypes.CacheConfig{
		Layers: []cacheimporttypes.CacheLayer{
			{Blob: blob("base"), ParentIndex: -1},
			{Blob: blob("old step"), ParentIndex: 0},
			{Blob: blob("young step"), ParentIndex: 0},
		},
		Records: []cacheimporttypes.CacheRecord{
			{Digest: key("source")}, // no result: only a way to the steps
			{Digest: key("old"), Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 0}}}, Results: []cacheimporttypes.CacheResult{{LayerIndex: 1, CreatedAt: old}}},
			{Digest: key("gone"), Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 1}}}}, // reached only through "old"
			{Digest: key("young"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 2, CreatedAt: young}}},
			{Digest: key("both"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 2, CreatedAt: young}, {LayerIndex: 1, CreatedAt: old}}},
		},
	}
	out, rep := mustMerge(t, own, existing, MergeOptions{Keep: 168 * time.Hour, Now: now})
	s := setsOf(out)
	want := setsOf(cacheimporttypes.CacheConfig{
		Layers: []cacheimporttypes.CacheLayer{
			{Blob: blob("own"), ParentIndex: -1},
			{Blob: blob("base"), ParentIndex: -1},
			{Blob: blob("young step"), ParentIndex: 1},
		},
		Records: []cacheimporttypes.CacheRecord{
			{Digest: key("own"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 0, CreatedAt: old}}},
			{Digest: key("young"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 2, CreatedAt: young}}},
			{Digest: key("both"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 2, CreatedAt: young}}},
		},
	})
	if !s.equal(want) {
		t.Fatalf("got:\n%v\nwant:\n%v", s, want)
	}
	if rep.Expired != 2 || rep.Records != 3 || rep.Layers != 1 {
		t.Fatalf("report %+v, want 2 expired results, 3 records and 1 layer dropped", rep)
	}
	// Without a keep nothing is dropped.
	out, rep = mustMerge(t, own, existing, MergeOptions{Now: now})
	if rep.Dropped() || !setsOf(out).equal(setsOf(own).union(setsOf(existing))) {
		t.Fatalf("merge without a keep dropped something: %+v", rep)
	}
	// A blob gone from the bucket takes every layer on it, as blob or
	// ancestor, and every result naming one; then what only they needed.
	out, rep = mustMerge(t, own, existing, MergeOptions{Missing: map[digest.Digest]bool{blob("base"): true}})
	if !setsOf(out).equal(setsOf(own)) {
		t.Fatalf("with the base blob gone, got:\n%v\nwant this export's alone:\n%v", setsOf(out), setsOf(own))
	}
	if rep.Gone != 4 || rep.Records != 5 || rep.Layers != 3 {
		t.Fatalf("report %+v, want 4 results gone, 5 records and 3 layers dropped", rep)
	}
}

// A merge over the limits drops the oldest results first, then what only
// they needed, and fits.
func TestMergeLimitsDropOldestFirst(t *testing.T) {
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 19))
		g := genGraph(r)
		a, b := export(t, r, g), export(t, r, g)
		full, _ := mustMerge(t, a, b, MergeOptions{})
		fullBytes, err := json.Marshal(full)
		if err != nil {
			t.Fatal(err)
		}
		for _, lim := range []Limits{
			{MaxRecords: len(full.Records) / 2},
			{MaxLayers: len(full.Layers) / 2},
			{MaxBytes: int64(len(fullBytes)) * 2 / 3},
		} {
			out, rep, err := Merge(a, b, MergeOptions{Limits: lim})
			if err != nil {
				// Only when even the records without results don't fit.
				if !strings.Contains(err.Error(), "even without any result") {
					t.Fatalf("seed %d, %+v: %v", seed, lim, err)
				}
				continue
			}
			requireParses(t, out, true)
			if fits, _ := lim.fit(out); !fits {
				t.Fatalf("seed %d: %+v: merged config does not fit: %d layers, %d records", seed, lim, len(out.Layers), len(out.Records))
			}
			for _, rec := range out.Records {
				for _, res := range rec.Results {
					if res.CreatedAt.Before(rep.OversizeNewest) {
						t.Fatalf("seed %d: %+v: kept a result of %v, older than one dropped (%v)", seed, lim, res.CreatedAt, rep.OversizeNewest)
					}
				}
			}
			// Nothing the limits did not force out is lost: every kept
			// record's results are a subset of the full merge's.
			fs := setsOf(full)
			for k, res := range setsOf(out).records {
				for x := range res {
					if !fs.records[k][x] {
						t.Fatalf("seed %d: result %s of %s appeared from nowhere", seed, x, k)
					}
				}
			}
		}
	}
}

// Inputs BuildKit's parser would refuse are errors, not panics.
func TestMergeRefusesInvalidInput(t *testing.T) {
	d := digest.FromString("x")
	for name, cfg := range map[string]cacheimporttypes.CacheConfig{
		"result on a parent out of range": {
			Layers:  []cacheimporttypes.CacheLayer{{Blob: d, ParentIndex: 3}},
			Records: []cacheimporttypes.CacheRecord{{Digest: d, Results: []cacheimporttypes.CacheResult{{LayerIndex: 0}}}},
		},
		"result on a parent loop": {
			Layers:  []cacheimporttypes.CacheLayer{{Blob: d, ParentIndex: 1}, {Blob: d, ParentIndex: 0}},
			Records: []cacheimporttypes.CacheRecord{{Digest: d, ChainedResults: []cacheimporttypes.ChainedResult{{LayerIndexes: []int{1}}}}},
		},
		"empty digest":        {Records: []cacheimporttypes.CacheRecord{{}}},
		"result out of range": {Records: []cacheimporttypes.CacheRecord{{Digest: d, Results: []cacheimporttypes.CacheResult{{LayerIndex: 0}}}}},
		"link loop":           {Records: []cacheimporttypes.CacheRecord{{Digest: d, Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 0}}}}}},
		"empty slot":          {Records: []cacheimporttypes.CacheRecord{{Digest: d, Inputs: [][]cacheimporttypes.CacheInput{{}}}}},
		"link to random": {Records: []cacheimporttypes.CacheRecord{
			{Digest: "random:abc"},
			{Digest: d, Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 0}}}},
		}},
	} {
		if _, _, err := Merge(cfg, cacheimporttypes.CacheConfig{}, MergeOptions{}); err == nil {
			t.Errorf("%s: merged", name)
		}
		if _, _, err := Merge(cacheimporttypes.CacheConfig{}, cfg, MergeOptions{}); err == nil {
			t.Errorf("%s: merged as the existing config", name)
		}
	}
}
