package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// Limits bound a merged cache config as the importer bounds what it
// accepts; a zero field is no bound.
type Limits struct {
	MaxLayers  int
	MaxRecords int
	MaxBytes   int64 // of the config marshalled as JSON
}

// MergeOptions tune Merge. The zero value is a plain union.
type MergeOptions struct {
	// Keep drops results only existing holds whose createdAt is older than
	// Now-Keep, then the records and layers nothing reaches any more. Zero
	// keeps every result.
	Keep time.Duration
	Now  time.Time
	// Limits, when exceeded, drop the oldest results (of either side)
	// until the config fits.
	Limits Limits
	// Missing are blobs no longer in the bucket: the layers on them, and
	// on them as an ancestor, are dropped with the results that name them,
	// so a merged manifest names no blob that is gone. Only existing's
	// layers should be listed: this export has just uploaded its own.
	Missing map[digest.Digest]bool
}

// MergeReport says what Merge dropped.
type MergeReport struct {
	Gone     int // results on a blob in Missing
	Expired  int // results of existing older than the keep
	Oversize int // results dropped, oldest first, to fit the limits
	Records  int // records dropped because nothing reaches them any more
	Layers   int // layers dropped because no kept result names them
	// OversizeNewest is the createdAt of the newest result dropped to fit.
	OversizeNewest time.Time
}

// Dropped reports whether the merge dropped anything.
func (r MergeReport) Dropped() bool {
	return r.Gone+r.Expired+r.Oversize+r.Records+r.Layers > 0
}

// Merge returns the union of two cache configs: own (what this export
// marshalled) and existing (the manifest already under the name, written
// by other writers). Both must be valid as BuildKit's ParseConfig reads
// them (sanitise an untrusted one first); the result is too.
//
// Layers are the same when they are the same blob on the same parent
// chain, whatever their indexes. Records are the same when they have the
// same digest and, slot by slot, links (with selectors) to the same
// records: the identity BuildKit's CacheChains gives an item. Keying
// records on the digest alone would be wrong: one RUN on two different
// bases has one digest, and joining their inputs would offer one base's
// result to the other. The same record in both keeps the results of both;
// duplicates collapse.
func Merge(own, existing cacheimporttypes.CacheConfig, opts MergeOptions) (cacheimporttypes.CacheConfig, MergeReport, error) {
	return PrepareMerge(existing).Merge(own, opts)
}

// PreparedMerge is an existing config indexed for one Merge: interning
// its records and layers is most of a merge's work on a large manifest,
// and an export does it while the build runs, before its own config is
// known.
type PreparedMerge struct {
	m    *merger
	err  error
	used atomic.Bool
}

// PrepareMerge indexes existing for a Merge into it.
func PrepareMerge(existing cacheimporttypes.CacheConfig) *PreparedMerge {
	p := &PreparedMerge{m: &merger{layerIdx: map[layerKey]int{}, recordIdx: map[string]int{}}}
	if err := p.m.add(existing, false); err != nil {
		p.err = fmt.Errorf("merge: the existing cache config: %w", err)
	}
	return p
}

// Merge is Merge(own, existing, opts) for the existing config p was
// prepared from. A PreparedMerge serves one Merge: a second is an error.
func (p *PreparedMerge) Merge(own cacheimporttypes.CacheConfig, opts MergeOptions) (cacheimporttypes.CacheConfig, MergeReport, error) {
	if p.used.Swap(true) {
		return cacheimporttypes.CacheConfig{}, MergeReport{}, errors.New("merge: a prepared merge was used twice")
	}
	if p.err != nil {
		return cacheimporttypes.CacheConfig{}, MergeReport{}, p.err
	}
	if err := p.m.add(own, true); err != nil {
		return cacheimporttypes.CacheConfig{}, MergeReport{}, fmt.Errorf("merge: this export's cache config: %w", err)
	}
	return p.m.finish(opts)
}

type layerKey struct {
	blob   digest.Digest
	parent int // merged index, -1 for a base layer
}

type mergedLayer struct {
	layerKey
	ann *cacheimporttypes.LayerAnnotations
}

type mergedInput struct {
	link     int
	selector string
}

type mergedResult struct {
	layers  []int // one for a plain result; a chained result's in order
	chained bool
	at      time.Time
	own     bool
	gone    bool // on a missing blob
	expired bool // by the keep
	cut     bool // by the limits
}

func (r *mergedResult) dropped() bool { return r.gone || r.expired || r.cut }

type mergedRecord struct {
	dgst       digest.Digest
	inputs     [][]mergedInput
	results    []*mergedResult
	resultIdx  map[string]int
	own        bool
	hadResults bool
}

// merger interns layers and records as they are added: a layer's parent
// and a record's inputs always come before it, so indexes only point back.
type merger struct {
	layers    []mergedLayer
	layerIdx  map[layerKey]int
	records   []*mergedRecord
	recordIdx map[string]int
}

func (m *merger) add(cfg cacheimporttypes.CacheConfig, own bool) error {
	lmap := m.addLayers(cfg.Layers)
	order, err := recordOrder(cfg.Records)
	if err != nil {
		return err
	}
	rmap := make([]int, len(cfg.Records))
	for _, i := range order {
		r := cfg.Records[i]
		if strings.HasPrefix(r.Digest.String(), "random:") {
			// BuildKit neither exports nor imports these.
			rmap[i] = -1
			continue
		}
		if err := ValidDigest(r.Digest); err != nil {
			// BuildKit's key storage refuses the whole config over one.
			return fmt.Errorf("record %d: digest %q: %w", i, r.Digest, err)
		}
		inputs := make([][]mergedInput, len(r.Inputs))
		for j, slot := range r.Inputs {
			for _, in := range slot {
				l := rmap[in.LinkIndex]
				if l < 0 {
					return fmt.Errorf("record %d links to record %d, a random: digest BuildKit cannot link to", i, in.LinkIndex)
				}
				inputs[j] = append(inputs[j], mergedInput{link: l, selector: in.Selector})
			}
			slices.SortFunc(inputs[j], func(a, b mergedInput) int {
				return cmp.Or(cmp.Compare(a.link, b.link), strings.Compare(a.selector, b.selector))
			})
			inputs[j] = slices.Compact(inputs[j])
		}
		key := recordKey(r.Digest, inputs)
		idx, ok := m.recordIdx[key]
		if !ok {
			idx = len(m.records)
			m.recordIdx[key] = idx
			m.records = append(m.records, &mergedRecord{dgst: r.Digest, inputs: inputs, resultIdx: map[string]int{}})
		}
		rmap[i] = idx
		rec := m.records[idx]
		rec.own = rec.own || own
		for _, res := range r.Results {
			if res.LayerIndex < 0 || res.LayerIndex >= len(lmap) || lmap[res.LayerIndex] == brokenLayer {
				return fmt.Errorf("record %d names layer %d of %d, out of range or on broken parents", i, res.LayerIndex, len(lmap))
			}
			rec.addResult(&mergedResult{layers: []int{lmap[res.LayerIndex]}, at: res.CreatedAt, own: own})
		}
		for _, res := range r.ChainedResults {
			layers := make([]int, len(res.LayerIndexes))
			for k, li := range res.LayerIndexes {
				if li < 0 || li >= len(lmap) || lmap[li] == brokenLayer {
					return fmt.Errorf("record %d names layer %d of %d, out of range or on broken parents", i, li, len(lmap))
				}
				layers[k] = lmap[li]
			}
			rec.addResult(&mergedResult{layers: layers, chained: true, at: res.CreatedAt, own: own})
		}
	}
	return nil
}

func (rec *mergedRecord) addResult(r *mergedResult) {
	rec.hadResults = true
	key := resultKey(r)
	if i, ok := rec.resultIdx[key]; ok {
		rec.results[i].own = rec.results[i].own || r.own
		return
	}
	rec.resultIdx[key] = len(rec.results)
	rec.results = append(rec.results, r)
}

// recordKey is a record's identity: its digest and, slot by slot, the
// sorted set of merged records it links to with their selectors. Lengths
// prefix the strings so no selector can forge another key.
func recordKey(dgst digest.Digest, inputs [][]mergedInput) string {
	var b []byte
	b = strconv.AppendInt(b, int64(len(dgst)), 10)
	b = append(b, ':')
	b = append(b, dgst...)
	for _, slot := range inputs {
		b = append(b, '[')
		for _, in := range slot {
			b = strconv.AppendInt(b, int64(in.link), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(len(in.selector)), 10)
			b = append(b, ':')
			b = append(b, in.selector...)
		}
		b = append(b, ']')
	}
	return string(b)
}

// resultKey identifies a result as BuildKit's addResult does: the same
// layers created at the same instant.
func resultKey(r *mergedResult) string {
	var b []byte
	if r.chained {
		b = append(b, 'c')
	}
	for _, l := range r.layers {
		b = strconv.AppendInt(b, int64(l), 10)
		b = append(b, ',')
	}
	b = append(b, '@')
	b = strconv.AppendInt(b, r.at.Unix(), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(r.at.Nanosecond()), 10)
	return string(b)
}

// brokenLayer marks a layer whose parents leave the list or loop.
const brokenLayer = -4

// addLayers interns cfg's layers as chains and returns each one's merged
// index, or brokenLayer for a layer whose parents leave the list or loop:
// BuildKit's parser ignores such a layer unless a result names it
// (Sanitize leaves them in place), so only naming one is an error.
func (m *merger) addLayers(layers []cacheimporttypes.CacheLayer) []int {
	const unknown, visiting = -2, -3
	lmap := make([]int, len(layers))
	for i := range lmap {
		lmap[i] = unknown
	}
	var path []int
	for start := range layers {
		// Walk up to a known layer or the base, then intern top down:
		// iteratively, since a chain may be thousands of layers deep.
		path = path[:0]
		broken := false
		for i := start; i != -1 && lmap[i] < 0; {
			if lmap[i] == visiting || lmap[i] == brokenLayer {
				broken = true
				break
			}
			lmap[i] = visiting
			path = append(path, i)
			p := layers[i].ParentIndex
			if p != -1 && (p < 0 || p >= len(layers)) {
				broken = true
				break
			}
			i = p
		}
		if broken {
			for _, i := range path {
				lmap[i] = brokenLayer
			}
			continue
		}
		for k := len(path) - 1; k >= 0; k-- {
			i := path[k]
			parent := -1
			if p := layers[i].ParentIndex; p != -1 {
				parent = lmap[p]
			}
			lmap[i] = m.internLayer(layerKey{blob: layers[i].Blob, parent: parent}, layers[i].Annotations)
		}
	}
	return lmap
}

func (m *merger) internLayer(key layerKey, ann *cacheimporttypes.LayerAnnotations) int {
	if ann != nil {
		a := *ann
		ann = &a
	}
	if i, ok := m.layerIdx[key]; ok {
		// One blob's annotations should agree; when they don't, keep the
		// earliest creation so the choice doesn't depend on the order.
		if old := m.layers[i].ann; old == nil || (ann != nil && ann.CreatedAt.Before(old.CreatedAt)) {
			if ann != nil {
				m.layers[i].ann = ann
			}
		}
		return i
	}
	m.layers = append(m.layers, mergedLayer{layerKey: key, ann: ann})
	m.layerIdx[key] = len(m.layers) - 1
	return len(m.layers) - 1
}

// recordOrder orders records so that every record comes after those it
// links to. A link out of range, an empty input slot or a loop is an error,
// as in BuildKit's ParseConfig.
func recordOrder(records []cacheimporttypes.CacheRecord) ([]int, error) {
	const (
		unknown = iota
		visiting
		done
	)
	state := make([]int, len(records))
	order := make([]int, 0, len(records))
	type frame struct{ rec, slot, link int }
	for start := range records {
		if state[start] != unknown {
			continue
		}
		// An explicit stack: links may chain records very deep.
		stack := []frame{{rec: start}}
		state[start] = visiting
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			r := records[f.rec]
			if f.slot >= len(r.Inputs) {
				state[f.rec] = done
				order = append(order, f.rec)
				stack = stack[:len(stack)-1]
				continue
			}
			slot := r.Inputs[f.slot]
			if len(slot) == 0 {
				return nil, fmt.Errorf("record %d has an empty input %d", f.rec, f.slot)
			}
			if f.link >= len(slot) {
				f.slot++
				f.link = 0
				continue
			}
			idx := slot[f.link].LinkIndex
			f.link++
			switch {
			case idx < 0 || idx >= len(records):
				return nil, fmt.Errorf("record %d links to record %d of %d", f.rec, idx, len(records))
			case state[idx] == visiting:
				return nil, fmt.Errorf("record %d links to record %d in a loop", f.rec, idx)
			case state[idx] == unknown:
				state[idx] = visiting
				stack = append(stack, frame{rec: idx})
			}
		}
	}
	return order, nil
}
