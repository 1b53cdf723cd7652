package backend

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

	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// listPageSize is the objects S3 (and MinIO, R2, GCS) return per LIST page.
const listPageSize = 1000

// listPageCost is what listing one more page of 1000 keys costs, in rounds
// of parallel HEADs: measured about 15 on MinIO (75ms a page, 5ms a HEAD)
// and 4 to 8 on S3, where HEADs are slower.
const listPageCost = 10

// errStopListing ends a listing that has become dearer than HEADs.
var errStopListing = errors.New("listing stopped: HEADs are cheaper for the rest")

// crowdedTTL is how long a process remembers that a blobs prefix was too
// crowded to list: long enough for the exports of a CI run, short enough
// that a pruned prefix is soon listed again.
const crowdedTTL = 10 * time.Minute

// maxCrowded bounds the prefixes remembered.
const maxCrowded = 1024

// crowdedPrefixes remembers, per bucket and blobs prefix, how many objects
// a listing that stopped early estimated the prefix holds. The next lookup
// in that prefix that would stop early again (too few keys for that many
// objects) sends its HEADs at once instead of first paying for a page that
// would tell it the same. HEADs answer either way: what is remembered only
// chooses how to ask.
type crowdedPrefixes struct {
	mu sync.Mutex
	m  map[string]crowdedPrefix
}

type crowdedPrefix struct {
	objects float64
	at      time.Time
}

var crowded = &crowdedPrefixes{m: map[string]crowdedPrefix{}}

// objects is the remembered estimate for where, if any.
func (c *crowdedPrefixes) objects(where string, now time.Time) (float64, bool) {
	if where == "" {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[where]
	if !ok || now.Sub(p.at) > crowdedTTL {
		return 0, false
	}
	return p.objects, true
}

// set remembers an estimate for where; objects <= 0 forgets it.
func (c *crowdedPrefixes) set(where string, objects float64, now time.Time) {
	if where == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if objects <= 0 {
		delete(c.m, where)
		return
	}
	if len(c.m) >= maxCrowded {
		for k, p := range c.m {
			if now.Sub(p.at) > crowdedTTL {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCrowded {
			return
		}
	}
	c.m[where] = crowdedPrefix{objects: objects, at: now}
}

// prefixID names a blobs prefix of a bucket for crowdedPrefixes.
func prefixID(cfg spec.Config, dir string) string {
	return strings.Join([]string{cfg.EndpointURL, cfg.Region, cfg.Bucket, dir}, "\x00")
}

// blobIndex is what one listing of the blobs prefix learned: the objects
// under it up to and including key through, or every one when complete.
// Keys it does not cover are looked up with a HEAD.
type blobIndex struct {
	st       store.Store
	objs     map[string]store.Object
	through  string
	complete bool
}

// stat answers from the listing when it covers key, else with a HEAD.
func (x *blobIndex) stat(ctx context.Context, key string) (store.Object, error) {
	if x.complete || (x.through != "" && key <= x.through) {
		if obj, ok := x.objs[key]; ok {
			return obj, nil
		}
		return store.Object{}, fmt.Errorf("blob %s: %w (not in the listing)", key, store.ErrNotFound)
	}
	return x.st.Stat(ctx, key)
}

// indexBlobs learns which of keys exist under dir (their sizes and
// modification times) with one LIST instead of a HEAD per key, for as long
// as listing stays cheaper: after each page it estimates, from how far into
// the key space the listing has come, the pages left, and stops when they
// would cost more than HEADs for the keys not yet covered, sent parallel
// at a time. Where the store lists a page of a chosen size, the first page
// is only a few times the number of keys: enough for a prefix that holds
// little else, and cheap to find out that a prefix is crowded with other
// blobs. A listing that fails (a policy without s3:ListBucket, say) leaves
// every key to a HEAD; warn reports it. where names the prefix for
// crowdedPrefixes ("" remembers nothing): a prefix a listing found crowded
// a moment ago is not listed again for a few keys.
func indexBlobs(ctx context.Context, st store.Store, where, dir string, keys []string, parallel int, warn func(error)) *blobIndex {
	x := &blobIndex{st: st, objs: map[string]store.Object{}}
	if len(keys) == 0 {
		x.complete = true
		return x
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	// A prefix remembered as crowded: would listing it all cost more than
	// HEADs for every key?
	allHeadRounds := math.Ceil(float64(len(sorted)) / float64(max(parallel, 1)))
	if objects, ok := crowded.objects(where, time.Now()); ok && objects/listPageSize*listPageCost > allHeadRounds {
		return &blobIndex{st: st}
	}
	want := make(map[string]bool, len(sorted))
	for _, k := range sorted {
		want[k] = true
	}
	// worthGoingOn says, at the end of a page, whether more listing beats
	// HEADs for the keys past o.Key.
	listed := 0
	estimate := 0.0 // objects in the prefix, by the last estimate
	worthGoingOn := func(o store.Object) bool {
		covered, _ := slices.BinarySearch(sorted, o.Key+"\x00")
		fraction := keyspaceFraction(strings.TrimPrefix(o.Key, dir), covered, len(sorted))
		estimate = float64(listed) / fraction
		left := len(sorted) - covered
		if left == 0 {
			return false
		}
		pagesLeft := float64(listed) * (1 - fraction) / fraction / listPageSize
		headRounds := math.Ceil(float64(left) / float64(max(parallel, 1)))
		return pagesLeft*listPageCost <= headRounds
	}
	record := func(o store.Object) {
		listed++
		if want[o.Key] {
			x.objs[o.Key] = o
		}
		x.through = o.Key
	}

	err := listPages(ctx, st, dir, min(max(4*len(sorted), 100), listPageSize), record, worthGoingOn)
	switch {
	case err == nil:
		x.complete = true
		crowded.set(where, 0, time.Now())
	case errors.Is(err, errStopListing):
		crowded.set(where, estimate, time.Now())
	default:
		if warn != nil && ctx.Err() == nil {
			warn(err)
		}
		return &blobIndex{st: st}
	}
	return x
}

// listPages lists dir a page at a time, the first of first objects, the
// rest full, while goOn says so after each; errStopListing when it stopped.
func listPages(ctx context.Context, pl store.Store, dir string, first int, record func(store.Object), goOn func(last store.Object) bool) error {
	token, limit := "", first
	for {
		objs, next, err := pl.ListPage(ctx, dir, token, limit)
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

// keyspaceFraction estimates how much of the blobs prefix a listing has
// covered when its last key is name: from the digest's leading hex digits,
// which are uniformly spread, or else from the share of our own (equally
// spread) keys already passed.
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
