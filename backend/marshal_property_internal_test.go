package backend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// holdingProvider holds a set of blobs; Info of any other is not found.
type holdingProvider struct {
	content.InfoReaderProvider
	has map[digest.Digest]bool
}

func (p *holdingProvider) Info(_ context.Context, dgst digest.Digest) (content.Info, error) {
	if p.has[dgst] {
		return content.Info{Digest: dgst}, nil
	}
	return content.Info{}, errors.New("not found")
}

// chainGraph is a generated export: records added in order, each linking
// to earlier ones, each with results on layer chains from a small pool of
// blobs (so blobs recur on other parents), each result with a provider of
// its own that may lack some of its blobs.
type chainGraph struct {
	records []graphRecord
}

type graphRecord struct {
	dgst    digest.Digest
	deps    [][]graphLink
	results []graphResult
}

type graphLink struct {
	src      int
	selector string
}

type graphResult struct {
	chain   []ocispecs.Descriptor
	lacking map[digest.Digest]bool
	created time.Time
}

func genChainGraph(r *rand.Rand) chainGraph {
	pool := make([]ocispecs.Descriptor, 2+r.IntN(6))
	for i := range pool {
		pool[i] = ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString(fmt.Sprintf("blob %d", i)), Size: int64(10 + i)}
	}
	var g chainGraph
	n := 1 + r.IntN(12)
	for i := range n {
		rec := graphRecord{dgst: digest.FromString(fmt.Sprintf("key %d", r.IntN(n+3)))}
		if i > 0 && r.IntN(4) > 0 {
			rec.deps = make([][]graphLink, 1+r.IntN(2))
			for j := range rec.deps {
				for range 1 + r.IntN(2) {
					sel := ""
					if r.IntN(3) == 0 {
						sel = fmt.Sprintf("sel%d", r.IntN(2))
					}
					rec.deps[j] = append(rec.deps[j], graphLink{src: r.IntN(i), selector: sel})
				}
			}
		}
		for range r.IntN(3) {
			res := graphResult{created: time.Date(2026, 11, 1+r.IntN(3), 0, 0, 0, 0, time.UTC), lacking: map[digest.Digest]bool{}}
			for range 1 + r.IntN(5) {
				res.chain = append(res.chain, pool[r.IntN(len(pool))])
			}
			if r.IntN(4) == 0 {
				res.lacking[res.chain[r.IntN(len(res.chain))].Digest] = true
			}
			rec.results = append(rec.results, res)
		}
		g.records = append(g.records, rec)
	}
	return g
}

// addTo adds the graph to target as BuildKit's solver does, each result
// with a provider of its own.
func (g chainGraph) addTo(t *testing.T, target solver.CacheExporterTarget) {
	t.Helper()
	added := make([]solver.CacheExporterRecord, len(g.records))
	for i, rec := range g.records {
		var deps [][]solver.CacheLink
		for _, links := range rec.deps {
			var ls []solver.CacheLink
			for _, l := range links {
				if added[l.src] != nil {
					ls = append(ls, solver.CacheLink{Src: added[l.src], Selector: l.selector})
				}
			}
			deps = append(deps, ls)
		}
		var results []solver.CacheExportResult
		for _, res := range rec.results {
			p := &holdingProvider{has: map[digest.Digest]bool{}}
			for _, d := range res.chain {
				p.has[d.Digest] = !res.lacking[d.Digest]
			}
			results = append(results, solver.CacheExportResult{CreatedAt: res.created, Result: &solver.Remote{Descriptors: res.chain, Provider: p}})
		}
		r, _, err := target.Add(rec.dgst, deps, results)
		if err != nil {
			t.Fatal(err)
		}
		added[i] = r
	}
}

// canonical is a cache config as sets: each layer as its whole chain of
// blobs, each record as its digest, its results' chains and its inputs'
// records, whatever the order of the arrays and their indexes.
func canonical(cc *cacheimporttypes.CacheConfig) []string {
	var chain func(i int, depth int) string
	chain = func(i int, depth int) string {
		if i < 0 || i >= len(cc.Layers) || depth > len(cc.Layers) {
			return "!"
		}
		l := cc.Layers[i]
		if l.ParentIndex == -1 {
			return l.Blob.String()
		}
		return chain(l.ParentIndex, depth+1) + "/" + l.Blob.String()
	}
	var record func(i int, depth int) string
	record = func(i int, depth int) string {
		if i < 0 || i >= len(cc.Records) || depth > len(cc.Records) {
			return "!"
		}
		rec := cc.Records[i]
		var results []string
		for _, r := range rec.Results {
			results = append(results, chain(r.LayerIndex, 0)+"@"+r.CreatedAt.String())
		}
		for _, r := range rec.ChainedResults {
			var ls []string
			for _, li := range r.LayerIndexes {
				ls = append(ls, chain(li, 0))
			}
			results = append(results, "chained:"+strings.Join(ls, ",")+"@"+r.CreatedAt.String())
		}
		slices.Sort(results)
		var inputs []string
		for _, in := range rec.Inputs {
			var links []string
			for _, l := range in {
				links = append(links, record(l.LinkIndex, depth+1)+"~"+l.Selector)
			}
			slices.Sort(links)
			inputs = append(inputs, "("+strings.Join(links, " ")+")")
		}
		return rec.Digest.String() + "{" + strings.Join(results, " ") + "}[" + strings.Join(inputs, " ") + "]"
	}
	var out []string
	for i := range cc.Layers {
		out = append(out, "layer "+chain(i, 0))
	}
	for i := range cc.Records {
		out = append(out, "record "+record(i, 0))
	}
	slices.Sort(out)
	return out
}

// For generated chain graphs, the cache config s3cache's exporter
// marshals (its results' providers wrapped in the Info memo) equals, as
// sets, the one BuildKit's own CacheChains marshals from the same adds.
func TestExporterMarshalsAsBuildKit(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(500) {
		g := genChainGraph(rand.New(rand.NewPCG(seed, 15)))

		upstream := v1.NewCacheChains()
		g.addTo(t, upstream)
		want, _, err := upstream.Marshal(ctx)
		if err != nil {
			t.Fatalf("seed %d: BuildKit's marshal: %v", seed, err)
		}

		cc := v1.NewCacheChains()
		ours := &exporter{CacheExporterTarget: cc, chains: cc, info: &infoMemo{}}
		g.addTo(t, ours)
		got, _, err := ours.chains.Marshal(ctx)
		if err != nil {
			t.Fatalf("seed %d: our marshal: %v", seed, err)
		}
		if w, o := canonical(want), canonical(got); !slices.Equal(w, o) {
			t.Fatalf("seed %d: our exporter's cache config differs from BuildKit's:\nBuildKit's:\n%s\nours:\n%s", seed, strings.Join(w, "\n"), strings.Join(o, "\n"))
		}
	}
}
