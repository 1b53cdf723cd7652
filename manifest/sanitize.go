package manifest

import (
	"fmt"
	"strings"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// Bounds on a manifest we import, checked by Sanitize: far above real caches (a large mode=max
// build has thousands of layers), low enough that a hostile manifest can't
// make us allocate or request without limit.
const (
	MaxLayers  = 50000
	MaxRecords = 100000
)

// Sanitize drops what BuildKit's parser would reject in an untrusted cache
// config: layers with out-of-range or looping parents, results naming such
// layers, links to missing or looping records, and records left without an
// input. What remains parses, so damage to one part of a manifest costs
// only the steps it touches. It returns the problems it found.
func Sanitize(cfg cacheimporttypes.CacheConfig) (cacheimporttypes.CacheConfig, []string, error) {
	if len(cfg.Layers) > MaxLayers || len(cfg.Records) > MaxRecords {
		return cacheimporttypes.CacheConfig{}, nil, fmt.Errorf("manifest has %d layers and %d records, more than the %d and %d accepted", len(cfg.Layers), len(cfg.Records), MaxLayers, MaxRecords)
	}
	var problems []string
	layerOK := validLayers(cfg.Layers)
	for i, ok := range layerOK {
		if !ok {
			problems = append(problems, fmt.Sprintf("layer %d has an invalid parent chain", i))
		}
	}
	validLayer := func(i int) bool { return i >= 0 && i < len(layerOK) && layerOK[i] }

	records := make([]cacheimporttypes.CacheRecord, len(cfg.Records))
	for i, r := range cfg.Records {
		var results []cacheimporttypes.CacheResult
		for _, res := range r.Results {
			if validLayer(res.LayerIndex) {
				results = append(results, res)
			} else {
				problems = append(problems, fmt.Sprintf("record %d names invalid layer %d", i, res.LayerIndex))
			}
		}
		var chains []cacheimporttypes.ChainedResult
	chained:
		for _, ch := range r.ChainedResults {
			for _, l := range ch.LayerIndexes {
				if !validLayer(l) {
					problems = append(problems, fmt.Sprintf("record %d names invalid layer %d", i, l))
					continue chained
				}
			}
			chains = append(chains, ch)
		}
		r.Results, r.ChainedResults = results, chains
		records[i] = r
	}

	// BuildKit merges records as it parses them, and a merge can close a
	// loop that its indexing then follows without end (see merging.go):
	// records that would merge are dropped, and what depended on them is
	// checked again, a bounded number of times.
	excluded := make([]bool, len(records))
	for round := 0; ; round++ {
		out, orig, dropped := keepValid(records, excluded)
		merging := mergingRecords(out)
		if len(merging) == 0 {
			return cacheimporttypes.CacheConfig{Layers: cfg.Layers, Records: out}, append(problems, dropped...), nil
		}
		if round == maxMergeRounds {
			problems = append(problems, fmt.Sprintf("records still merge in BuildKit's parse after %d rounds of dropping them; no record is used", round))
			return cacheimporttypes.CacheConfig{Layers: cfg.Layers}, problems, nil
		}
		for _, i := range merging {
			excluded[orig[i]] = true
			problems = append(problems, fmt.Sprintf("record %d would merge with another in BuildKit's parse", orig[i]))
		}
	}
}

// maxMergeRounds bounds the rounds of dropping records that would merge: a
// real manifest has none, and a hostile one must not cost rounds without end.
const maxMergeRounds = 4

// keepValid keeps the valid records that are not excluded, renumbering the
// links between them, and says what it dropped. orig is the index in
// records of each kept record.
func keepValid(records []cacheimporttypes.CacheRecord, excluded []bool) (out []cacheimporttypes.CacheRecord, orig []int, problems []string) {
	ok, finished := validRecords(records, excluded)
	for i, good := range ok {
		if !good && !excluded[i] {
			problems = append(problems, fmt.Sprintf("record %d has invalid links", i))
		}
	}
	newIndex := make([]int, len(records))
	for i, good := range ok {
		newIndex[i] = -1
		if good {
			newIndex[i] = len(out)
			out = append(out, records[i])
			orig = append(orig, i)
		}
	}
	for i := range out {
		inputs := make([][]cacheimporttypes.CacheInput, len(out[i].Inputs))
		for j, slot := range out[i].Inputs {
			for _, in := range slot {
				switch {
				case in.LinkIndex < 0 || in.LinkIndex >= len(ok) || !ok[in.LinkIndex]:
					problems = append(problems, fmt.Sprintf("a record links to invalid record %d", in.LinkIndex))
				case finished[in.LinkIndex] >= finished[orig[i]]:
					// Only links to records found valid before this one
					// stay: any other closes a loop (to itself, or back to
					// a record whose check was under way), however valid
					// both ends, and BuildKit refuses the whole manifest.
					problems = append(problems, fmt.Sprintf("record %d links to record %d in a loop", orig[i], in.LinkIndex))
				default:
					inputs[j] = append(inputs[j], cacheimporttypes.CacheInput{Selector: in.Selector, LinkIndex: newIndex[in.LinkIndex]})
				}
			}
		}
		out[i].Inputs = inputs
	}
	return out, orig, problems
}

// validLayers marks the layers whose parent chain ends at -1 without
// leaving the list or looping.
func validLayers(layers []cacheimporttypes.CacheLayer) []bool {
	const (
		unknown = iota
		visiting
		good
		bad
	)
	state := make([]int, len(layers))
	var visit func(i int) bool
	visit = func(i int) bool {
		// Iterative in effect: chains are walked once and memoised.
		path := []int{}
		for {
			if i == -1 {
				break
			}
			if i < 0 || i >= len(layers) || state[i] == visiting || state[i] == bad {
				for _, p := range path {
					state[p] = bad
				}
				return false
			}
			if state[i] == good {
				break
			}
			state[i] = visiting
			path = append(path, i)
			i = layers[i].ParentIndex
		}
		for _, p := range path {
			state[p] = good
		}
		return true
	}
	ok := make([]bool, len(layers))
	for i := range layers {
		if state[i] == unknown {
			visit(i)
		}
		ok[i] = state[i] == good
	}
	return ok
}

// validRecords marks the records whose every input slot keeps at least one
// link to a valid record, with no loops. Invalid records make the records
// that depend on them invalid in turn. finished numbers the records in the
// order their check ended: a valid record's links that count are those to
// valid records finished before it, which can't form a loop.
func validRecords(records []cacheimporttypes.CacheRecord, excluded []bool) (ok []bool, finished []int) {
	const (
		unknown = iota
		visiting
		good
		bad
	)
	state := make([]int, len(records))
	finished = make([]int, len(records))
	done := 0
	finish := func(rec, s int) {
		state[rec] = s
		finished[rec] = done
		done++
	}
	for i, r := range records {
		// BuildKit adds no record for a random: digest, so a link to one
		// fails its parse: such a record is invalid. A record whose digest
		// is not a digest (empty, above all) is too: BuildKit's cache key
		// storage takes an empty key for a record still being indexed and
		// refuses the whole manifest as a loop.
		if excluded[i] || strings.HasPrefix(r.Digest.String(), "random:") || ValidDigest(r.Digest) != nil {
			finish(i, bad)
		}
	}
	// An explicit stack: a hostile manifest may chain records very deep.
	type frame struct{ rec, slot, link int }
	for start := range records {
		if state[start] != unknown {
			continue
		}
		stack := []frame{{rec: start}}
		state[start] = visiting
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			r := records[f.rec]
			if f.slot >= len(r.Inputs) {
				finish(f.rec, good)
				stack = stack[:len(stack)-1]
				continue
			}
			slot := r.Inputs[f.slot]
			if f.link >= len(slot) {
				// Slot exhausted: valid if any link in it was good.
				anyGood := false
				for _, in := range slot {
					if in.LinkIndex >= 0 && in.LinkIndex < len(records) && state[in.LinkIndex] == good {
						anyGood = true
						break
					}
				}
				if !anyGood {
					finish(f.rec, bad)
					stack = stack[:len(stack)-1]
					continue
				}
				f.slot++
				f.link = 0
				continue
			}
			idx := slot[f.link].LinkIndex
			f.link++
			if idx >= 0 && idx < len(records) && state[idx] == unknown {
				state[idx] = visiting
				stack = append(stack, frame{rec: idx})
			}
			// A link to a record still being visited is a loop: it never
			// becomes good while this slot is checked, so it doesn't count.
		}
	}
	ok = make([]bool, len(records))
	for i, s := range state {
		ok[i] = s == good
	}
	return ok, finished
}
