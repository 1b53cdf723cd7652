package backend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
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
		switch i % 3 {
		case 1:
			pool[i].MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip" // converted to OCI's
		case 2:
			pool[i].MediaType = "" // left as it is
		}
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

// canonical is a cache config as sets: each layer named by its whole
// chain of blobs, each record by its digest, its results' chains and its
// inputs' records, whatever the order of the arrays and their indexes. A
// chain or record deeper than a few levels is named by the digest of its
// name, so that deep chains cost linear time, not cubic.
func canonical(cc *cacheimporttypes.CacheConfig) []string {
	short := func(name string) string {
		if len(name) > 400 {
			return "#" + digest.FromString(name).Encoded()[:20]
		}
		return name
	}
	layerNames := make([]string, len(cc.Layers))
	var chain func(i int) string
	chain = func(i int) string {
		if i < 0 || i >= len(cc.Layers) || layerNames[i] == "!" {
			return "!"
		}
		if layerNames[i] != "" {
			return layerNames[i]
		}
		layerNames[i] = "!" // a cycle, while in progress
		l := cc.Layers[i]
		name := l.Blob.String()
		if l.ParentIndex != -1 {
			name = chain(l.ParentIndex) + "/" + name
		}
		layerNames[i] = short(name)
		return layerNames[i]
	}
	recordNames := make([]string, len(cc.Records))
	var record func(i int) string
	record = func(i int) string {
		if i < 0 || i >= len(cc.Records) || recordNames[i] == "!" {
			return "!"
		}
		if recordNames[i] != "" {
			return recordNames[i]
		}
		recordNames[i] = "!"
		rec := cc.Records[i]
		var results []string
		for _, r := range rec.Results {
			results = append(results, chain(r.LayerIndex)+"@"+r.CreatedAt.String())
		}
		for _, r := range rec.ChainedResults {
			var ls []string
			for _, li := range r.LayerIndexes {
				ls = append(ls, chain(li))
			}
			results = append(results, "chained:"+strings.Join(ls, ",")+"@"+r.CreatedAt.String())
		}
		slices.Sort(results)
		var inputs []string
		for _, in := range rec.Inputs {
			var links []string
			for _, l := range in {
				links = append(links, record(l.LinkIndex)+"~"+l.Selector)
			}
			slices.Sort(links)
			inputs = append(inputs, "("+strings.Join(links, " ")+")")
		}
		recordNames[i] = short(rec.Digest.String() + "{" + strings.Join(results, " ") + "}[" + strings.Join(inputs, " ") + "]")
		return recordNames[i]
	}
	var out []string
	for i := range cc.Layers {
		out = append(out, "layer "+chain(i))
	}
	for i := range cc.Records {
		out = append(out, "record "+record(i))
	}
	slices.Sort(out)
	return out
}

// marshalBuildKit is the cache config and descriptors BuildKit's own
// CacheChains marshals from g's adds.
func marshalBuildKit(t *testing.T, g chainGraph) (*cacheimporttypes.CacheConfig, v1.DescriptorProvider) {
	t.Helper()
	upstream := v1.NewCacheChains()
	g.addTo(t, upstream)
	cc, descs, err := upstream.Marshal(context.Background())
	if err != nil {
		t.Fatalf("BuildKit's marshal: %v", err)
	}
	return cc, descs
}

// checkAsBuildKit fails unless the cache config s3cache's exporter
// marshals from g's adds (its results' providers wrapped in the Info memo)
// equals, as sets, one BuildKit's CacheChains marshals from them, and each
// blob's descriptor is BuildKit's, read from a provider that holds it.
//
// Where several records match an add, BuildKit merges them into whichever
// its map iteration gives first, and its output then depends on that
// choice (about 1 seed in 1,000 here); ours takes the first added. So a
// difference is checked again against BuildKit's other outcomes.
func checkAsBuildKit(t *testing.T, name string, g chainGraph) {
	t.Helper()
	ctx := context.Background()
	ours := &exporter{chains: newCacheChains(), info: &infoMemo{}}
	g.addTo(t, ours)
	got, gotDescs, err := ours.chains.Marshal(ctx)
	if err != nil {
		t.Fatalf("%s: our marshal: %v", name, err)
	}
	o := canonical(got)
	want, wantDescs := marshalBuildKit(t, g)
	w := canonical(want)
	for try := 0; !slices.Equal(w, o); try++ {
		if try == 200 {
			t.Fatalf("%s: our exporter's cache config differs from BuildKit's:\nBuildKit's:\n%s\nours:\n%s", name, strings.Join(w, "\n"), strings.Join(o, "\n"))
		}
		want, wantDescs = marshalBuildKit(t, g)
		w = canonical(want)
	}
	if len(gotDescs) != len(wantDescs) {
		t.Fatalf("%s: %d descriptors, BuildKit %d", name, len(gotDescs), len(wantDescs))
	}
	for dgst, wp := range wantDescs {
		gp, ok := gotDescs[dgst]
		if !ok {
			t.Fatalf("%s: no descriptor for blob %s", name, dgst)
		}
		if !reflect.DeepEqual(gp.Descriptor, wp.Descriptor) {
			t.Fatalf("%s: blob %s: descriptor %+v, BuildKit's %+v", name, dgst, gp.Descriptor, wp.Descriptor)
		}
		// BuildKit's provider for a blob is whichever result its map order
		// marshals last; ours may be another's, but must hold the blob.
		ip, ok := gp.Provider.(content.InfoProvider)
		if !ok {
			t.Fatalf("%s: blob %s: provider %T cannot say what it holds", name, dgst, gp.Provider)
		}
		if _, err := ip.Info(ctx, dgst); err != nil {
			t.Fatalf("%s: blob %s: its provider lacks it: %v", name, dgst, err)
		}
	}
}

// For generated chain graphs, the cache config s3cache's exporter
// marshals equals, as sets, the one BuildKit's own CacheChains marshals
// from the same adds.
func TestExporterMarshalsAsBuildKit(t *testing.T) {
	for seed := range uint64(5000) {
		checkAsBuildKit(t, fmt.Sprintf("seed %d", seed), genChainGraph(rand.New(rand.NewPCG(seed, 15))))
	}
}

// linearChain is a mode=max export of n layers: one record a layer, on
// the previous one, with the chain up to its layer as its result. Every
// lackEvery-th result's provider (none if 0) lacks one of its blobs, and
// every repeatEvery-th layer (none if 0) repeats the blob below it.
func linearChain(r *rand.Rand, n, lackEvery, repeatEvery int) chainGraph {
	var g chainGraph
	var chain []ocispecs.Descriptor
	for i := range n {
		desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString(fmt.Sprintf("layer %d", i)), Size: int64(100 + i)}
		if i%2 == 1 {
			desc.MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip" // converted to OCI's
		}
		if repeatEvery > 0 && i > 0 && i%repeatEvery == 0 {
			desc = chain[i-1]
		}
		chain = append(chain, desc)
		rec := graphRecord{dgst: digest.FromString(fmt.Sprintf("step %d", i))}
		if i > 0 {
			rec.deps = [][]graphLink{{{src: i - 1}}}
		}
		res := graphResult{chain: chain[: i+1 : i+1], created: time.Date(2026, 11, 1, 0, 0, i, 0, time.UTC), lacking: map[digest.Digest]bool{}}
		if lackEvery > 0 && i%lackEvery == lackEvery-1 {
			res.lacking[chain[r.IntN(i+1)].Digest] = true
		}
		rec.results = []graphResult{res}
		g.records = append(g.records, rec)
	}
	return g
}

// Deep mode=max chains marshal as BuildKit's do, with and without results
// whose providers lack one of their blobs, and with blobs repeated.
func TestExporterMarshalsDeepChainsAsBuildKit(t *testing.T) {
	for _, c := range []struct{ n, lackEvery, repeatEvery int }{{300, 0, 0}, {300, 7, 0}, {120, 3, 5}, {200, 1, 0}} {
		name := fmt.Sprintf("%d layers, lacking every %d, repeated every %d", c.n, c.lackEvery, c.repeatEvery)
		checkAsBuildKit(t, name, linearChain(rand.New(rand.NewPCG(uint64(c.n), 18)), c.n, c.lackEvery, c.repeatEvery))
	}
}
