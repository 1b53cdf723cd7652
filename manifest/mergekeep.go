package manifest

// What a merge keeps: the keep, the missing blobs and the limits applied
// to the union, and the merged config built from what is left.

import (
	"fmt"
	"slices"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// finish applies the keep and the limits and builds the merged config.
func (m *merger) finish(opts MergeOptions) (cacheimporttypes.CacheConfig, MergeReport, error) {
	var rep MergeReport
	collect := false
	if len(opts.Missing) > 0 {
		// Parents come before their children.
		broken := make([]bool, len(m.layers))
		for i, l := range m.layers {
			broken[i] = opts.Missing[l.blob] || (l.parent != -1 && broken[l.parent])
		}
		for _, rec := range m.records {
			for _, r := range rec.results {
				if slices.ContainsFunc(r.layers, func(l int) bool { return broken[l] }) {
					r.gone = true
					rep.Gone++
					collect = true
				}
			}
		}
	}
	if opts.Keep > 0 {
		collect = true
		cutoff := opts.Now.Add(-opts.Keep)
		for _, rec := range m.records {
			for _, r := range rec.results {
				if !r.own && !r.dropped() && r.at.Before(cutoff) {
					r.expired = true
					rep.Expired++
				}
			}
		}
	}
	cfg, records, layers := m.build(collect)
	fits, err := opts.Limits.fit(cfg)
	if err != nil {
		return cacheimporttypes.CacheConfig{}, rep, err
	}
	if !fits {
		// Drop the oldest results until the config fits: the smallest
		// number that does, found by bisection over the results by age.
		var byAge []*mergedResult
		for _, rec := range m.records {
			for _, r := range rec.results {
				if !r.dropped() {
					byAge = append(byAge, r)
				}
			}
		}
		slices.SortStableFunc(byAge, func(a, b *mergedResult) int { return a.at.Compare(b.at) })
		cut := func(n int) {
			for i, r := range byAge {
				r.cut = i < n
			}
		}
		lo, hi := 0, len(byAge)
		cut(hi)
		cfg, _, _ = m.build(true)
		if fits, err := opts.Limits.fit(cfg); err != nil || !fits {
			return cacheimporttypes.CacheConfig{}, rep, fmt.Errorf("merge: the cache config exceeds the limits (%d layers, %d records, %d bytes) even without any result", opts.Limits.MaxLayers, opts.Limits.MaxRecords, opts.Limits.MaxBytes)
		}
		for lo < hi {
			mid := lo + (hi-lo)/2
			cut(mid)
			cfg, _, _ = m.build(true)
			if fits, err := opts.Limits.fit(cfg); err == nil && fits {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		cut(lo)
		cfg, records, layers = m.build(true)
		rep.Oversize = lo
		if lo > 0 {
			rep.OversizeNewest = byAge[lo-1].at
		}
	}
	rep.Records = len(m.records) - records
	rep.Layers = len(m.layers) - layers
	return cfg, rep, nil
}

// fit reports whether cfg is within the limits.
func (l Limits) fit(cfg cacheimporttypes.CacheConfig) (bool, error) {
	if (l.MaxLayers > 0 && len(cfg.Layers) > l.MaxLayers) || (l.MaxRecords > 0 && len(cfg.Records) > l.MaxRecords) {
		return false, nil
	}
	// Marshalling a large config costs as much as the rest of the merge:
	// only when a cheap bound does not settle it.
	if l.MaxBytes > 0 && sizeBound(cfg) > l.MaxBytes {
		dt, err := Encode(&cfg)
		if err != nil {
			return false, fmt.Errorf("merge: marshal the merged cache config: %w", err)
		}
		return int64(len(dt)) <= l.MaxBytes, nil
	}
	return true, nil
}

// sizeBound is at least the size of cfg marshalled as JSON: every string
// as if each byte were escaped (\u00XX), every number and time at its
// widest, generous room for the names and punctuation.
func sizeBound(cfg cacheimporttypes.CacheConfig) int64 {
	const num, ts = 20, 40
	str := func(s string) int64 { return int64(6*len(s) + 2) }
	n := int64(64)
	for _, l := range cfg.Layers {
		n += 64 + str(string(l.Blob)) + num
		if a := l.Annotations; a != nil {
			n += 96 + str(a.MediaType) + str(string(a.DiffID)) + num + ts
		}
	}
	for _, r := range cfg.Records {
		n += 64 + str(string(r.Digest)) + int64(len(r.Results))*(32+num+ts)
		for _, c := range r.ChainedResults {
			n += 48 + ts + int64(len(c.LayerIndexes))*(num+1)
		}
		for _, slot := range r.Inputs {
			n += 4
			for _, in := range slot {
				n += 32 + str(in.Selector) + num
			}
		}
	}
	return n
}

// build emits the merged config without the dropped results. With
// collect, it also leaves out the records nothing reaches any more: a
// record is kept when it holds a result, when it is this export's and
// never held one, or when a kept record links to it; and the layers no
// kept result names. It returns how many records and layers it kept.
func (m *merger) build(collect bool) (cacheimporttypes.CacheConfig, int, int) {
	liveRec := make([]bool, len(m.records))
	for i, rec := range m.records {
		liveRec[i] = !collect || (rec.own && !rec.hadResults)
		for _, r := range rec.results {
			if !r.dropped() {
				liveRec[i] = true
				break
			}
		}
	}
	// Inputs come before the records linking to them.
	for i := len(m.records) - 1; i >= 0; i-- {
		if !liveRec[i] {
			continue
		}
		for _, slot := range m.records[i].inputs {
			for _, in := range slot {
				liveRec[in.link] = true
			}
		}
	}
	liveLayer := make([]bool, len(m.layers))
	for i, rec := range m.records {
		if !liveRec[i] {
			continue
		}
		for _, r := range rec.results {
			if r.dropped() {
				continue
			}
			for _, l := range r.layers {
				liveLayer[l] = true
			}
		}
	}
	// Parents come before their children.
	for i := len(m.layers) - 1; i >= 0; i-- {
		if liveLayer[i] || !collect {
			liveLayer[i] = true
			if p := m.layers[i].parent; p != -1 {
				liveLayer[p] = true
			}
		}
	}

	layerNew := make([]int, len(m.layers))
	var cfg cacheimporttypes.CacheConfig
	for i, l := range m.layers {
		if !liveLayer[i] {
			continue
		}
		layerNew[i] = len(cfg.Layers)
		parent := -1
		if l.parent != -1 {
			parent = layerNew[l.parent]
		}
		var ann *cacheimporttypes.LayerAnnotations
		if l.ann != nil {
			a := *l.ann
			ann = &a
		}
		cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{Blob: l.blob, ParentIndex: parent, Annotations: ann})
	}
	recNew := make([]int, len(m.records))
	for i, rec := range m.records {
		if !liveRec[i] {
			continue
		}
		recNew[i] = len(cfg.Records)
		out := cacheimporttypes.CacheRecord{Digest: rec.dgst}
		for _, r := range rec.results {
			if r.dropped() {
				continue
			}
			if !r.chained {
				out.Results = append(out.Results, cacheimporttypes.CacheResult{LayerIndex: layerNew[r.layers[0]], CreatedAt: r.at})
				continue
			}
			idx := make([]int, len(r.layers))
			for k, l := range r.layers {
				idx[k] = layerNew[l]
			}
			out.ChainedResults = append(out.ChainedResults, cacheimporttypes.ChainedResult{LayerIndexes: idx, CreatedAt: r.at})
		}
		if len(rec.inputs) > 0 {
			out.Inputs = make([][]cacheimporttypes.CacheInput, len(rec.inputs))
			for j, slot := range rec.inputs {
				for _, in := range slot {
					out.Inputs[j] = append(out.Inputs[j], cacheimporttypes.CacheInput{Selector: in.selector, LinkIndex: recNew[in.link]})
				}
			}
		}
		cfg.Records = append(cfg.Records, out)
	}
	return cfg, len(cfg.Records), len(cfg.Layers)
}
