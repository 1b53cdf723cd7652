package backend

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// countingProvider holds every blob but lacks, and counts the Info calls
// for each.
type countingProvider struct {
	content.InfoReaderProvider
	lacks digest.Digest
	calls map[digest.Digest]int
}

func (p *countingProvider) Info(_ context.Context, dgst digest.Digest) (content.Info, error) {
	p.calls[dgst]++
	if dgst == p.lacks {
		return content.Info{}, fmt.Errorf("blob %s: %w", dgst, cerrdefs.ErrNotFound)
	}
	return content.Info{Digest: dgst}, nil
}

// addLinearChain adds a mode=max chain of the descriptors to target: a
// record a layer, on the previous one, with the chain up to it as its
// result, from provider(i).
func addLinearChain(t testing.TB, target solver.CacheExporterTarget, chain []ocispecs.Descriptor, provider func(i int) content.InfoReaderProvider) {
	t.Helper()
	var prev solver.CacheExporterRecord
	for i := range chain {
		var deps [][]solver.CacheLink
		if prev != nil {
			deps = [][]solver.CacheLink{{{Src: prev}}}
		}
		res := solver.CacheExportResult{CreatedAt: time.Date(2026, 11, 1, 0, 0, i, 0, time.UTC), Result: &solver.Remote{Descriptors: chain[: i+1 : i+1], Provider: provider(i)}}
		r, _, err := target.Add(digest.FromString(fmt.Sprintf("step %d", i)), deps, []solver.CacheExportResult{res})
		if err != nil {
			t.Fatal(err)
		}
		prev = r
	}
}

func layerChain(n, repeatEvery int) []ocispecs.Descriptor {
	chain := make([]ocispecs.Descriptor, n)
	for i := range chain {
		chain[i] = ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString(fmt.Sprintf("layer %d", i)), Size: int64(100 + i)}
		if repeatEvery > 0 && i > 0 && i%repeatEvery == 0 {
			chain[i] = chain[i-1]
		}
	}
	return chain
}

// Marshalling a deep mode=max chain asks each provider about each blob at
// most once, and looks each result's layer chain up once a descriptor:
// linear in the descriptors marshalled (BuildKit's CacheChains.Marshal
// asks about every blob of every prefix of every chain: n³/6 calls).
func TestMarshalCostIsLinear(t *testing.T) {
	ctx := context.Background()
	const n = 400
	chain := layerChain(n, 5)
	r := rand.New(rand.NewPCG(4, 18))

	// A provider a result, as BuildKit's remotes have; every seventh lacks
	// a blob of its chain, and its result is left out.
	providers := make([]*countingProvider, n)
	wantLookups := 0
	for i := range providers {
		providers[i] = &countingProvider{calls: map[digest.Digest]int{}}
		if i%7 == 6 {
			providers[i].lacks = chain[r.IntN(i+1)].Digest
		} else {
			wantLookups += i + 1
		}
	}
	cc := newCacheChains()
	addLinearChain(t, cc, chain, func(i int) content.InfoReaderProvider { return providers[i] })
	got, _, stats, err := cc.marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for i, p := range providers {
		for dgst, c := range p.calls {
			if c > 1 {
				t.Fatalf("result %d's provider asked about blob %s %d times", i, dgst, c)
			}
			calls += c
		}
	}
	if calls != stats.infoCalls {
		t.Fatalf("providers answered %d Info calls, the marshal counted %d", calls, stats.infoCalls)
	}
	if stats.layerLookups != wantLookups {
		t.Fatalf("%d layer lookups, want one a descriptor of the results marshalled: %d", stats.layerLookups, wantLookups)
	}
	if len(got.Layers) != n || len(got.Records) != n {
		t.Fatalf("%d layers and %d records, want %d of each", len(got.Layers), len(got.Records), n)
	}

	// One provider for every result: one call a blob in all.
	shared := &countingProvider{calls: map[digest.Digest]int{}}
	cc = newCacheChains()
	addLinearChain(t, cc, chain, func(int) content.InfoReaderProvider { return shared })
	if _, _, stats, err = cc.marshal(ctx); err != nil {
		t.Fatal(err)
	}
	if distinct := len(shared.calls); stats.infoCalls != distinct {
		t.Fatalf("%d Info calls for %d blobs of one provider", stats.infoCalls, distinct)
	}
}

// Bad adds are refused with an error, never a panic, as BuildKit refuses
// them; keys of uncacheable steps are ignored.
func TestCacheChainsAddRefuses(t *testing.T) {
	cc := newCacheChains()
	if r, ok, err := cc.Add("random:abc", nil, nil); r != nil || ok || err != nil {
		t.Fatalf("random key: %v %v %v, want it ignored", r, ok, err)
	}
	root, _, err := cc.Add(digest.FromString("root"), nil, []solver.CacheExportResult{{}, {Result: &solver.Remote{}}})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := v1.NewCacheChains().Add(digest.FromString("root"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := newCacheChains().Add(digest.FromString("root"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, deps := range map[string][][]solver.CacheLink{
		"empty input":         {{{Src: root}}, {}},
		"no record":           {{{Src: nil}}},
		"BuildKit's record":   {{{Src: foreign}}},
		"other chains' input": {{{Src: other}}},
	} {
		if _, _, err := cc.Add(digest.FromString("child"), deps, nil); err == nil {
			t.Errorf("%s: added", name)
		}
	}
	// Results without a remote or descriptors are no results.
	got, descs, err := cc.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 || len(got.Records[0].Results) != 0 || len(got.Layers) != 0 || len(descs) != 0 {
		t.Fatalf("marshalled %+v", got)
	}
}

// BenchmarkMarshalLinearChain is the export's part of a mode=max export of
// n layers: the adds (providers wrapped in the Info memo, as the exporter
// does) and the marshal, ours against BuildKit's CacheChains. BuildKit's
// is O(n³): it is skipped above 600 layers (minutes at 3,000).
func BenchmarkMarshalLinearChain(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{60, 600, 3000} {
		chain := layerChain(n, 0)
		store := &countingProvider{calls: map[digest.Digest]int{}}
		provider := func(int) content.InfoReaderProvider { return store }
		b.Run(fmt.Sprintf("ours/%d", n), func(b *testing.B) {
			for b.Loop() {
				e := &exporter{chains: newCacheChains(), info: &infoMemo{}}
				addLinearChain(b, e, chain, provider)
				if _, _, err := e.chains.Marshal(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/layer")
		})
		b.Run(fmt.Sprintf("buildkit/%d", n), func(b *testing.B) {
			if n > 600 {
				b.Skip("BuildKit's marshal is O(n³): minutes at this size")
			}
			for b.Loop() {
				cc := v1.NewCacheChains()
				memo := &infoMemo{}
				addLinearChain(b, memoTarget{cc, memo}, chain, provider)
				if _, _, err := cc.Marshal(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/layer")
		})
	}
}

// memoTarget wraps results' providers in the Info memo before adding them
// to BuildKit's chains, as the exporter did before it had its own.
type memoTarget struct {
	solver.CacheExporterTarget
	memo *infoMemo
}

func (m memoTarget) Add(dgst digest.Digest, deps [][]solver.CacheLink, results []solver.CacheExportResult) (solver.CacheExporterRecord, bool, error) {
	return m.CacheExporterTarget.Add(dgst, deps, m.memo.wrap(results))
}
