package manifest

import (
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// BuildKit's v1.ParseConfig adds each record to a CacheChains, whose Add
// merges the existing records a new one matches when there are several.
// A merge moves one record's children to another and can make a record
// its own ancestor; NewCacheKeyStorage then computes the records' IDs by
// recursion without a loop check, and overflows the stack: a crash no
// recover catches. Without merges, Add never closes a loop (it drops any
// input that descends from the record it returns). mergingRecords replays
// the parse as Add would do it and finds the records that would merge, so
// Sanitize can drop them. A manifest BuildKit wrote has none: its own
// export merged such records before marshalling them.

// simItem is a record as CacheChains holds it: its children, by the
// input slot, selector and digest they link with.
type simItem struct {
	children map[simLink]map[int]bool
}

type simLink struct {
	selector string
	index    int
	dgst     digest.Digest
}

// mergingRecords are the indexes of the records whose Add, in
// v1.ParseConfig's order, would match more than one existing record.
// records must be what keepValid returns: links in range and loop-free.
func mergingRecords(records []cacheimporttypes.CacheRecord) []int {
	var (
		items   []simItem
		roots   = map[digest.Digest]int{}
		itemOf  = make([]int, len(records)) // record -> item, -1 until added
		merging []int
	)
	for i := range itemOf {
		itemOf[i] = -1
	}
	newItem := func() int {
		items = append(items, simItem{}) // children made on the first
		return len(items) - 1
	}
	// descendants are it and every item below it.
	descendants := func(it int) map[int]bool {
		seen := map[int]bool{it: true}
		if len(items[it].children) == 0 {
			return seen
		}
		stack := []int{it}
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, set := range items[top].children {
				for ch := range set {
					if !seen[ch] {
						seen[ch] = true
						stack = append(stack, ch)
					}
				}
			}
		}
		return seen
	}
	add := func(idx int) {
		r := records[idx]
		if len(r.Inputs) == 0 {
			if it, ok := roots[r.Digest]; ok {
				itemOf[idx] = it
				return
			}
			it := newItem()
			roots[r.Digest] = it
			itemOf[idx] = it
			return
		}
		// The records matching every input slot, as CacheChains.Add
		// intersects them.
		var matches map[int]bool
		if len(r.Inputs) == 1 && len(r.Inputs[0]) == 1 && itemOf[r.Inputs[0][0].LinkIndex] >= 0 {
			// The usual record, one input: its candidates are that
			// input's children by the link, read only below.
			in := r.Inputs[0][0]
			matches = items[itemOf[in.LinkIndex]].children[simLink{in.Selector, 0, r.Digest}]
		}
		for slot, links := range r.Inputs {
			if matches != nil && len(r.Inputs) == 1 && len(links) == 1 {
				break
			}
			cands := map[int]bool{}
			for _, in := range links {
				if itemOf[in.LinkIndex] < 0 {
					continue // not added: cannot happen for keepValid's records
				}
				for it := range items[itemOf[in.LinkIndex]].children[simLink{in.Selector, slot, r.Digest}] {
					cands[it] = true
				}
			}
			if slot == 0 {
				matches = cands
			} else {
				for it := range matches {
					if !cands[it] {
						delete(matches, it)
					}
				}
			}
			if len(matches) == 0 {
				break
			}
		}
		if len(matches) > 1 {
			merging = append(merging, idx)
			// Leave it out, as Sanitize will; the records after it are
			// replayed as they will be parsed then, bar those depending on
			// it, which Sanitize checks again.
			itemOf[idx] = newItem()
			return
		}
		it := -1
		for m := range matches {
			it = m
		}
		if it < 0 {
			it = newItem()
		}
		below := descendants(it)
		for slot, links := range r.Inputs {
			for _, in := range links {
				src := itemOf[in.LinkIndex]
				if src < 0 || below[src] {
					continue // Add drops an input below the record itself
				}
				l := simLink{in.Selector, slot, r.Digest}
				if items[src].children == nil {
					items[src].children = map[simLink]map[int]bool{}
				}
				if items[src].children[l] == nil {
					items[src].children[l] = map[int]bool{}
				}
				items[src].children[l][it] = true
			}
		}
		itemOf[idx] = it
	}
	// v1.ParseConfig's order: each record in turn, its inputs first.
	type frame struct{ rec, slot, link int }
	onStack := make([]bool, len(records))
	for start := range records {
		if itemOf[start] >= 0 {
			continue
		}
		stack := []frame{{rec: start}}
		onStack[start] = true
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			r := records[f.rec]
			if f.slot >= len(r.Inputs) {
				add(f.rec)
				onStack[f.rec] = false
				stack = stack[:len(stack)-1]
				continue
			}
			if f.link >= len(r.Inputs[f.slot]) {
				f.slot++
				f.link = 0
				continue
			}
			next := r.Inputs[f.slot][f.link].LinkIndex
			f.link++
			if itemOf[next] < 0 && !onStack[next] {
				onStack[next] = true
				stack = append(stack, frame{rec: next})
			}
		}
	}
	return merging
}
