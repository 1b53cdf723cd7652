package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// This file is the one way to ask which of a set of keys exist: one
// listing of their prefix where that is cheaper than a HEAD a key, a HEAD
// a key otherwise, with the answers behind one Index.

// listPageSize is the objects S3 (and MinIO, R2, GCS) return per LIST page.
const listPageSize = 1000

// listPageCost is what listing one more page of 1000 keys costs, in rounds
// of parallel HEADs: measured about 15 on MinIO (75ms a page, 5ms a HEAD)
// and 4 to 8 on S3, where HEADs are slower.
const listPageCost = 10

// errStopListing ends a listing that has become dearer than HEADs.
var errStopListing = errors.New("listing stopped: HEADs are cheaper for the rest")

// crowdedTTL is how long a Prober remembers that a prefix was too crowded
// to list: long enough for the exports of a CI run, short enough that a
// pruned prefix is soon listed again.
const crowdedTTL = 10 * time.Minute

// maxCrowded bounds the prefixes remembered.
const maxCrowded = 1024

// Prober answers which of a set of keys exist (see Probe). It remembers,
// per prefix, how many objects a listing that stopped early estimated the
// prefix holds: the next probe of that prefix that would stop early again
// (too few keys for that many objects) sends its HEADs at once instead of
// first paying for a page that would tell it the same. HEADs answer either
// way: what is remembered only chooses how to ask. It also remembers, for a
// while, blobs a check found (presence.go), for a merge's checks of other
// writers' blobs. Whoever opens stores
// owns one (the engine for every export and import, a bucket command for
// its run); it is safe for concurrent use, and the zero value is ready.
type Prober struct {
	mu      sync.Mutex
	crowded map[string]crowdedPrefix
	present map[presentKey]time.Time // see presence.go
}

type crowdedPrefix struct {
	objects float64
	at      time.Time
}

// NewProber returns a Prober that remembers nothing yet.
func NewProber() *Prober { return &Prober{} }

// objects is the remembered estimate for where, if any.
func (p *Prober) objects(where string, now time.Time) (float64, bool) {
	if p == nil || where == "" {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.crowded[where]
	if !ok || now.Sub(c.at) > crowdedTTL {
		return 0, false
	}
	return c.objects, true
}

// set remembers an estimate for where; objects <= 0 forgets it.
func (p *Prober) set(where string, objects float64, now time.Time) {
	if p == nil || where == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if objects <= 0 {
		delete(p.crowded, where)
		return
	}
	if p.crowded == nil {
		p.crowded = map[string]crowdedPrefix{}
	}
	if len(p.crowded) >= maxCrowded {
		for k, c := range p.crowded {
			if now.Sub(c.at) > crowdedTTL {
				delete(p.crowded, k)
			}
		}
		if len(p.crowded) >= maxCrowded {
			return
		}
	}
	p.crowded[where] = crowdedPrefix{objects: objects, at: now}
}

// Query is a question for Probe: which of Keys, all under Dir, exist.
type Query struct {
	// Dir is the prefix every key is under.
	Dir string
	// Keys are the keys asked about; duplicates are fine.
	Keys []string
	// Parallel is how many HEADs the caller sends at once: HEADs cost
	// rounds of this many.
	Parallel int
	// Where names Dir in its bucket across probes (endpoint, bucket and
	// prefix, say), for the crowded-prefix memory; "" remembers nothing.
	Where string
	// Warn, when set, hears of a listing that failed (a policy without
	// s3:ListBucket, say); HEADs answer instead.
	Warn func(error)
}

// Probe learns which of q.Keys exist (their sizes and modification times)
// with one LIST instead of a HEAD per key, for as long as listing stays
// cheaper: after each page it estimates, from how far into the key space
// the listing has come, the pages left, and stops when they would cost
// more than HEADs for the keys not yet covered. The first page is only a
// few times the number of keys: enough for a prefix that holds little
// else, and cheap to find out that a prefix is crowded. A listing that
// fails leaves every key to a HEAD. A nil Prober remembers nothing.
func (p *Prober) Probe(ctx context.Context, st Store, q Query) *Index {
	x := &Index{st: st, objs: map[string]Object{}}
	if len(q.Keys) == 0 {
		x.complete = true
		return x
	}
	sorted := slices.Clone(q.Keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	parallel := float64(max(q.Parallel, 1))
	// A prefix remembered as crowded: would listing it all cost more than
	// HEADs for every key?
	allHeadRounds := math.Ceil(float64(len(sorted)) / parallel)
	if objects, ok := p.objects(q.Where, time.Now()); ok && objects/listPageSize*listPageCost > allHeadRounds {
		return &Index{st: st}
	}
	want := make(map[string]bool, len(sorted))
	for _, k := range sorted {
		want[k] = true
	}
	// worthGoingOn says, at the end of a page, whether more listing beats
	// HEADs for the keys past o.Key.
	listed := 0
	estimate := 0.0 // objects in the prefix, by the last estimate
	worthGoingOn := func(o Object) bool {
		covered, _ := slices.BinarySearch(sorted, o.Key+"\x00")
		fraction := keyspaceFraction(strings.TrimPrefix(o.Key, q.Dir), covered, len(sorted))
		estimate = float64(listed) / fraction
		left := len(sorted) - covered
		if left == 0 {
			return false
		}
		pagesLeft := float64(listed) * (1 - fraction) / fraction / listPageSize
		headRounds := math.Ceil(float64(left) / parallel)
		return pagesLeft*listPageCost <= headRounds
	}
	record := func(o Object) {
		listed++
		if want[o.Key] {
			x.objs[o.Key] = o
		}
		x.through = o.Key
	}

	err := listPages(ctx, st, q.Dir, min(max(4*len(sorted), 100), listPageSize), record, worthGoingOn)
	switch {
	case err == nil:
		x.complete = true
		p.set(q.Where, 0, time.Now())
	case errors.Is(err, errStopListing):
		p.set(q.Where, estimate, time.Now())
	default:
		if q.Warn != nil && ctx.Err() == nil {
			q.Warn(err)
		}
		return &Index{st: st}
	}
	return x
}

// ProbeCounted answers which of keys, all under dir, exist, when the
// caller knows how many objects dir holds (as prune does from its plan):
// one listing of dir when that takes fewer requests than a HEAD a key,
// else a HEAD a key. A listing that fails is an error: a caller that knows
// the count decides with the answer (prune deletes on it).
func ProbeCounted(ctx context.Context, st Store, dir string, keys []string, objects int) (*Index, error) {
	if len(keys) <= ListRequests(objects) {
		return &Index{st: st}, nil
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	x := &Index{st: st, objs: map[string]Object{}, complete: true}
	err := st.List(ctx, dir, func(o Object) error {
		if want[o.Key] {
			x.objs[o.Key] = o
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// ListRequests is the number of LIST requests a listing of n objects takes.
func ListRequests(n int) int { return (n + listPageSize - 1) / listPageSize }

// Listed is an Index of a listing already made of everything under a
// prefix: objs are all there is.
func Listed(objs []Object) *Index {
	x := &Index{objs: make(map[string]Object, len(objs)), complete: true}
	for _, o := range objs {
		x.objs[o.Key] = o
	}
	return x
}

// Index is what a probe learned: the objects its listing covered, up to
// and including key through, or every one when complete. Keys it does not
// cover are looked up with a HEAD.
type Index struct {
	st       Store
	objs     map[string]Object
	through  string
	complete bool
}

// Stat answers from the listing when it covers key, else with a HEAD. A
// key the listing covered and did not find is ErrNotFound.
func (x *Index) Stat(ctx context.Context, key string) (Object, error) {
	if x.complete || (x.through != "" && key <= x.through) {
		if obj, ok := x.objs[key]; ok {
			return obj, nil
		}
		return Object{}, fmt.Errorf("%s: %w (not in the listing)", key, ErrNotFound)
	}
	if x.st == nil {
		return Object{}, fmt.Errorf("%s: %w (no listing covers it and no store to ask)", key, ErrNotFound)
	}
	return x.st.Stat(ctx, key)
}

// listPages lists dir a page at a time, the first of first objects, the
// rest full, while goOn says so after each; errStopListing when it stopped.
func listPages(ctx context.Context, st Store, dir string, first int, record func(Object), goOn func(last Object) bool) error {
	token, limit := "", first
	for {
		objs, next, err := st.ListPage(ctx, dir, token, limit)
		if err != nil {
			return err
		}
		for _, o := range objs {
			record(o)
		}
		if next == "" {
			return nil
		}
		if len(objs) == 0 || !goOn(objs[len(objs)-1]) {
			return errStopListing
		}
		token, limit = next, listPageSize
	}
}

// keyspaceFraction estimates how much of a prefix of digests a listing
// has covered when its last key is name: from the digest's leading hex
// digits, which are uniformly spread, or else from the share of the
// (equally spread) keys asked about already passed.
func keyspaceFraction(name string, covered, total int) float64 {
	if _, hexDigits, ok := strings.Cut(name, ":"); ok && len(hexDigits) >= 16 {
		if b, err := hex.DecodeString(hexDigits[:16]); err == nil {
			var v uint64
			for _, c := range b {
				v = v<<8 | uint64(c)
			}
			if f := float64(v) / math.Exp2(64); f > 0 {
				return min(f, 1)
			}
		}
	}
	// Half a key's share when none is passed yet, so the estimate is finite.
	return (float64(covered) + 0.5) / (float64(total) + 0.5)
}
