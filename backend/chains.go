package backend

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/compression"
	digest "github.com/opencontainers/go-digest"
)

// cacheChains is the exporter's solver.CacheExporterTarget. It builds the
// graph BuildKit's v1.CacheChains builds from the same adds, and marshals
// it to the same cache config (as sets: indexes and orders may differ
// before the final sort), but in time linear in the records, the layers
// and the descriptors of the results marshalled. BuildKit's
// CacheChains.Marshal marshals every prefix of every result's chain
// again, asking the provider about each of its blobs and naming it by the
// concatenation of its digests: O(n³) for a mode=max export of n layers.
//
// Where BuildKit's outcome depends on Go's map order (which of several
// matching records absorbs the others, which result's provider a blob is
// read from, which link of a cycle is dropped), this one is deterministic:
// records are visited in the order they were first added.
type cacheChains struct {
	roots     map[digest.Digest]*chainRecord
	rootOrder []*chainRecord // as first added: a deterministic walk
	added     int            // records created, for chainRecord.seq
}

func newCacheChains() *cacheChains {
	return &cacheChains{roots: map[digest.Digest]*chainRecord{}}
}

var _ solver.CacheExporterTarget = (*cacheChains)(nil)

// childKey is how a record finds its children: the input slot and
// selector of the link, and the child's digest.
type childKey struct {
	selector string
	index    int
	dgst     digest.Digest
}

// parentLink is one input of a record: the record it comes from.
type parentLink struct {
	src      *chainRecord
	selector string
}

// linkSet is one input slot's links, a set kept in the order the links
// were added so that marshalling visits them deterministically.
type linkSet struct {
	links []parentLink
	has   map[parentLink]struct{}
}

func (s *linkSet) add(l parentLink) {
	if _, ok := s.has[l]; ok {
		return
	}
	if s.has == nil {
		s.has = map[parentLink]struct{}{}
	}
	s.has[l] = struct{}{}
	s.links = append(s.links, l)
}

// repoint makes links from old come from to instead (a merged record),
// dropping any that then duplicates another.
func (s *linkSet) repoint(old, to *chainRecord) {
	if len(s.links) == 0 {
		return
	}
	links := s.links
	s.links, s.has = nil, nil
	for _, l := range links {
		if l.src == old {
			l.src = to
		}
		s.add(l)
	}
}

// chainRecord is a record of the chains: a cache key with its inputs and
// results. It is what Add returns, and what later adds link to.
type chainRecord struct {
	solver.CacheExporterRecordBase

	chains   *cacheChains
	seq      int // creation order
	dgst     digest.Digest
	children map[childKey]map[*chainRecord]struct{}
	parents  []*linkSet // by input slot
	results  []solver.CacheExportResult
}

func (c *cacheChains) newRecord(dgst digest.Digest, results []solver.CacheExportResult) *chainRecord {
	c.added++
	// A new record keeps its results as given, duplicates and all, as
	// BuildKit's does.
	return &chainRecord{chains: c, seq: c.added, dgst: dgst, results: slices.Clone(results)}
}

// Add records a cache key with the records it depends on and its results,
// matching BuildKit's CacheChains.Add: a record with the same digest
// already linked from every input slot's records (a root: the same
// digest) is added to rather than created.
func (c *cacheChains) Add(dgst digest.Digest, deps [][]solver.CacheLink, results []solver.CacheExportResult) (solver.CacheExporterRecord, bool, error) {
	if strings.HasPrefix(dgst.String(), "random:") {
		// Keys of steps that are never cached across builds.
		return nil, false, nil
	}
	if len(deps) == 0 {
		r, ok := c.roots[dgst]
		if !ok {
			r = c.newRecord(dgst, results)
			c.roots[dgst] = r
			c.rootOrder = append(c.rootOrder, r)
			return r, true, nil
		}
		for _, res := range results {
			r.addResult(res)
		}
		return r, true, nil
	}

	srcs := make([][]*chainRecord, len(deps))
	for i, dd := range deps {
		if len(dd) == 0 {
			return nil, false, fmt.Errorf("add cache record %s: input %d has no links", dgst, i)
		}
		srcs[i] = make([]*chainRecord, len(dd))
		for j, d := range dd {
			src, ok := d.Src.(*chainRecord)
			if !ok || src == nil {
				return nil, false, fmt.Errorf("add cache record %s: input %d links to a %T, not a record of these chains", dgst, i, d.Src)
			}
			if src.chains != c {
				return nil, false, fmt.Errorf("add cache record %s: input %d links to record %s of other chains", dgst, i, src.dgst)
			}
			srcs[i][j] = src
		}
	}

	// The records this one may be: children with this digest of a linked
	// record in every input slot.
	var candidates map[*chainRecord]struct{}
	for i, dd := range deps {
		slot := map[*chainRecord]struct{}{}
		for j, d := range dd {
			for ch := range srcs[i][j].children[childKey{selector: d.Selector, index: i, dgst: dgst}] {
				slot[ch] = struct{}{}
			}
		}
		if i == 0 {
			candidates = slot
		} else {
			for ch := range candidates {
				if _, ok := slot[ch]; !ok {
					delete(candidates, ch)
				}
			}
		}
		if len(candidates) == 0 {
			break
		}
	}

	var r *chainRecord
	var descendants map[*chainRecord]struct{}
	if len(candidates) == 0 {
		r = c.newRecord(dgst, results)
	} else {
		// Several are one record now: the first added absorbs the others.
		list := make([]*chainRecord, 0, len(candidates))
		for ch := range candidates {
			list = append(list, ch)
		}
		slices.SortFunc(list, func(a, b *chainRecord) int { return cmp.Compare(a.seq, b.seq) })
		r = list[0]
		for _, other := range list[1:] {
			r.absorb(other)
		}
		for _, res := range results {
			r.addResult(res)
		}
		// A dep that is r or follows from it would make a cycle: dropped.
		descendants = r.descendants()
	}
	for i, dd := range deps {
		for j, d := range dd {
			src := srcs[i][j]
			if _, ok := descendants[src]; ok {
				continue
			}
			src.addChild(r, i, d.Selector)
		}
	}
	return r, true, nil
}

// absorb merges other, a record with the same digest and links, into r as
// BuildKit does: r gains other's children (whose inputs now link to r) and
// results; other keeps its own inputs, children and results.
func (r *chainRecord) absorb(other *chainRecord) {
	for key, set := range other.children {
		m := r.childSet(key)
		for ch := range set {
			m[ch] = struct{}{}
			for _, ls := range ch.parents {
				ls.repoint(other, r)
			}
		}
	}
	for _, res := range other.results {
		r.addResult(res)
	}
}

// childSet is r's set of children by key, made if need be.
func (r *chainRecord) childSet(key childKey) map[*chainRecord]struct{} {
	if r.children == nil {
		r.children = map[childKey]map[*chainRecord]struct{}{}
	}
	m, ok := r.children[key]
	if !ok {
		m = map[*chainRecord]struct{}{}
		r.children[key] = m
	}
	return m
}

// addChild links ch's input slot index to r.
func (r *chainRecord) addChild(ch *chainRecord, index int, selector string) {
	m := r.childSet(childKey{selector: selector, index: index, dgst: ch.dgst})
	if _, ok := m[ch]; ok {
		return
	}
	m[ch] = struct{}{}
	for index >= len(ch.parents) {
		ch.parents = append(ch.parents, &linkSet{})
	}
	ch.parents[index].add(parentLink{src: r, selector: selector})
}

func descriptorCount(res solver.CacheExportResult) int {
	if res.Result == nil {
		return 0
	}
	return len(res.Result.Descriptors)
}

// addResult adds res unless r has a result created at the same time with
// as many descriptors. That is BuildKit's test: its comparison of the
// descriptors' digests has no effect (its continue is the inner loop's).
func (r *chainRecord) addResult(res solver.CacheExportResult) {
	for _, have := range r.results {
		if have.CreatedAt.Equal(res.CreatedAt) && descriptorCount(have) == descriptorCount(res) {
			return
		}
	}
	r.results = append(r.results, res)
}

// bestResult is the newest result. The results are sorted in place with
// BuildKit's (unstable) sort, so that results created at the same time
// are chosen between as BuildKit chooses.
func (r *chainRecord) bestResult() *solver.CacheExportResult {
	if len(r.results) == 0 {
		return nil
	}
	slices.SortFunc(r.results, func(a, b solver.CacheExportResult) int {
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	return &r.results[0]
}

// descendants is r and every record that follows from it through children.
func (r *chainRecord) descendants() map[*chainRecord]struct{} {
	seen := map[*chainRecord]struct{}{r: {}}
	stack := []*chainRecord{r}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, set := range it.children {
			for ch := range set {
				if _, ok := seen[ch]; !ok {
					seen[ch] = struct{}{}
					stack = append(stack, ch)
				}
			}
		}
	}
	return seen
}

// leaves are the records reachable from the roots that have no children,
// in the order they were created.
func (c *cacheChains) leaves() []*chainRecord {
	seen := map[*chainRecord]struct{}{}
	var leaves []*chainRecord
	stack := slices.Clone(c.rootOrder)
	for _, r := range stack {
		seen[r] = struct{}{}
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if len(it.children) == 0 {
			leaves = append(leaves, it)
		}
		for _, set := range it.children {
			for ch := range set {
				if _, ok := seen[ch]; !ok {
					seen[ch] = struct{}{}
					stack = append(stack, ch)
				}
			}
		}
	}
	slices.SortFunc(leaves, func(a, b *chainRecord) int { return cmp.Compare(a.seq, b.seq) })
	return leaves
}

// layerKey names a layer chain by its last blob and the index of the
// layer chain it extends (-1 for none): a prefix is looked up once per
// result, never rebuilt as a string.
type layerKey struct {
	parent int
	blob   digest.Digest
}

// infoKey is a provider's answer about one blob.
type infoKey struct {
	provider content.InfoProvider
	blob     digest.Digest
}

// descWrite is where a blob's descriptor comes from: position i of a
// marshalled result's chain.
type descWrite struct {
	remote *solver.Remote
	i      int
}

// marshalStats counts the work of one marshal, for tests: it must be
// linear in what was marshalled.
type marshalStats struct {
	infoCalls    int // provider Info calls
	layerLookups int // lookups of a layer chain by layerKey
}

type marshalState struct {
	ctx      context.Context
	layers   []cacheimporttypes.CacheLayer
	layerIdx map[layerKey]int
	records  []cacheimporttypes.CacheRecord
	// recordIdx is a record's index, or -1 while its inputs are marshalled.
	recordIdx map[*chainRecord]int
	held      map[infoKey]bool
	descs     map[digest.Digest]descWrite
	stats     marshalStats
}

// Marshal converts the chains into a cache config, and the descriptor and
// provider of each blob its layers name, as BuildKit's CacheChains.Marshal
// does (sorted the same way).
func (c *cacheChains) Marshal(ctx context.Context) (*cacheimporttypes.CacheConfig, v1.DescriptorProvider, error) {
	cc, descs, _, err := c.marshal(ctx)
	return cc, descs, err
}

func (c *cacheChains) marshal(ctx context.Context) (*cacheimporttypes.CacheConfig, v1.DescriptorProvider, marshalStats, error) {
	st := &marshalState{
		ctx:       ctx,
		layerIdx:  map[layerKey]int{},
		recordIdx: map[*chainRecord]int{},
		held:      map[infoKey]bool{},
		descs:     map[digest.Digest]descWrite{},
	}
	for _, leaf := range c.leaves() {
		if err := st.record(leaf); err != nil {
			return nil, nil, st.stats, err
		}
	}
	// A blob's descriptor is the last one marshalled, as in BuildKit
	// (which writes it at every prefix of every result), converted once.
	descs := make(v1.DescriptorProvider, len(st.descs))
	for dgst, w := range st.descs {
		desc := w.remote.Descriptors[w.i]
		if desc.MediaType != "" {
			desc = compression.ConvertAllLayerMediaTypes(ctx, true, desc)[0]
		}
		descs[dgst] = v1.DescriptorProviderPair{Descriptor: desc, Provider: w.remote.Provider}
	}
	cc := &cacheimporttypes.CacheConfig{Layers: st.layers, Records: st.records}
	sortCacheConfig(cc)
	return cc, descs, st.stats, nil
}

// record marshals it after the records its inputs link to. A link to a
// record still being marshalled (a cycle) is left out, as BuildKit does.
func (st *marshalState) record(it *chainRecord) error {
	if _, ok := st.recordIdx[it]; ok {
		return nil
	}
	st.recordIdx[it] = -1
	rec := cacheimporttypes.CacheRecord{
		Digest: it.dgst,
		Inputs: make([][]cacheimporttypes.CacheInput, len(it.parents)),
	}
	for i, ls := range it.parents {
		for _, l := range ls.links {
			if err := st.record(l.src); err != nil {
				return err
			}
			idx := st.recordIdx[l.src]
			if idx == -1 {
				continue
			}
			rec.Inputs[i] = append(rec.Inputs[i], cacheimporttypes.CacheInput{Selector: l.selector, LinkIndex: idx})
		}
	}
	if res := it.bestResult(); res != nil {
		if layer, ok := st.remote(res.Result); ok {
			rec.Results = append(rec.Results, cacheimporttypes.CacheResult{LayerIndex: layer, CreatedAt: res.CreatedAt})
		}
	}
	st.recordIdx[it] = len(st.records)
	st.records = append(st.records, rec)
	return nil
}

// remote adds the layers of r's chain, and returns the index of the last.
// A chain whose provider lacks any of its blobs adds none, as in BuildKit
// (a provider that cannot say, NotImplemented, is trusted).
func (st *marshalState) remote(r *solver.Remote) (int, bool) {
	if r == nil || len(r.Descriptors) == 0 {
		return -1, false
	}
	if r.Provider != nil {
		for _, d := range r.Descriptors {
			if !st.holds(r.Provider, d.Digest) {
				return -1, false
			}
		}
	}
	parent := -1
	for i, d := range r.Descriptors {
		st.descs[d.Digest] = descWrite{remote: r, i: i}
		key := layerKey{parent: parent, blob: d.Digest}
		st.stats.layerLookups++
		idx, ok := st.layerIdx[key]
		if !ok {
			idx = len(st.layers)
			st.layerIdx[key] = idx
			st.layers = append(st.layers, cacheimporttypes.CacheLayer{Blob: d.Digest, ParentIndex: parent})
		}
		parent = idx
	}
	return parent, true
}

// holds is whether p says it has blob, asked once per provider and blob.
// Only pointers are remembered: any other provider may not be comparable
// (a map key would panic), and is asked each time.
func (st *marshalState) holds(p content.InfoProvider, blob digest.Digest) bool {
	memo := reflect.TypeOf(p).Kind() == reflect.Pointer
	key := infoKey{provider: p, blob: blob}
	if memo {
		if ok, found := st.held[key]; found {
			return ok
		}
	}
	st.stats.infoCalls++
	_, err := p.Info(st.ctx, blob)
	ok := err == nil || cerrdefs.IsNotImplemented(err)
	if memo {
		st.held[key] = ok
	}
	return ok
}

// sortCacheConfig orders a marshalled config as BuildKit's (unexported)
// sortConfig does, so that the same chains give the same bytes: layers by
// blob then parent, records by digest then inputs, each input's links by
// record.
func sortCacheConfig(cc *cacheimporttypes.CacheConfig) {
	layerOrder := make([]int, len(cc.Layers)) // new position -> old index
	for i := range layerOrder {
		layerOrder[i] = i
	}
	slices.SortFunc(layerOrder, func(a, b int) int {
		la, lb := cc.Layers[a], cc.Layers[b]
		return cmp.Or(cmp.Compare(la.Blob, lb.Blob), cmp.Compare(la.ParentIndex, lb.ParentIndex))
	})
	newLayer := make([]int, len(cc.Layers)) // old index -> new
	for i, old := range layerOrder {
		newLayer[old] = i
	}
	layers := make([]cacheimporttypes.CacheLayer, len(cc.Layers))
	for i, old := range layerOrder {
		l := cc.Layers[old]
		if l.ParentIndex != -1 {
			l.ParentIndex = newLayer[l.ParentIndex]
		}
		layers[i] = l
	}

	recs := cc.Records
	recordOrder := make([]int, len(recs))
	for i := range recordOrder {
		recordOrder[i] = i
	}
	sort.Slice(recordOrder, func(x, y int) bool {
		ri, rj := recs[recordOrder[x]], recs[recordOrder[y]]
		if ri.Digest != rj.Digest {
			return ri.Digest < rj.Digest
		}
		if len(ri.Inputs) != len(rj.Inputs) {
			return len(ri.Inputs) < len(rj.Inputs)
		}
		for i, inputs := range ri.Inputs {
			if len(inputs) != len(rj.Inputs[i]) {
				return len(inputs) < len(rj.Inputs[i])
			}
			for j, in := range inputs {
				other := rj.Inputs[i][j]
				if in.Selector != other.Selector {
					return in.Selector < other.Selector
				}
				if di, dj := recs[in.LinkIndex].Digest, recs[other.LinkIndex].Digest; di != dj {
					return di < dj
				}
			}
		}
		return false
	})
	newRecord := make([]int, len(recs))
	for i, old := range recordOrder {
		newRecord[old] = i
	}
	records := make([]cacheimporttypes.CacheRecord, len(recs))
	for i, old := range recordOrder {
		r := recs[old]
		for j := range r.Results {
			r.Results[j].LayerIndex = newLayer[r.Results[j].LayerIndex]
		}
		for _, inputs := range r.Inputs {
			for k := range inputs {
				inputs[k].LinkIndex = newRecord[inputs[k].LinkIndex]
			}
			slices.SortFunc(inputs, func(a, b cacheimporttypes.CacheInput) int {
				return cmp.Compare(a.LinkIndex, b.LinkIndex)
			})
		}
		records[i] = r
	}
	cc.Layers, cc.Records = layers, records
}
