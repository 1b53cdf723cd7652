// Package gc is prune's mark and sweep over a `type=s3` cache bucket: a
// Plan (which caches to drop, which blobs to delete) that a dry run prints
// and a real run executes.
//
// Prune and exports may run at once. The protocol that keeps a blob an
// export reuses from being deleted under it (docs/operations.md, "Prune
// while builds run"):
//
//   - prune deletes only blobs no manifest names and last modified more
//     than the grace (default 1h) before the plan;
//   - for each batch of deletions it (1) re-reads the candidates' last
//     modified times (an export that touched or re-uploaded one made it
//     young), (2) re-lists the manifests and marks the blobs of any new or
//     rewritten one, then (3) deletes what is still garbage; afterwards it
//     re-lists once more and reports any manifest naming a blob it deleted;
//   - the exporter (backend/exporter.go), after writing its manifest,
//     re-checks every blob it touched and every other blob the manifest
//     names, reused or uploaded, that was last modified (or whose upload
//     started) more than 30 minutes before, and uploads again any that is
//     gone.
package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
)

const (
	// DefaultGrace protects the blobs of exports in flight: an export
	// uploads its blobs before its manifest, and may reuse an old blob.
	DefaultGrace = time.Hour
	// DefaultBatchSize is the number of blobs re-checked and deleted
	// together: one DeleteObjects request.
	DefaultBatchSize = 1000
	// NoLimit disables KeepStorage.
	NoLimit = -1
	// listPage is how many keys one LIST request returns.
	listPage = 1000
	// maxShardPages bounds the LIST requests that re-check one shard.
	maxShardPages = 4
	// maxShardDigits bounds the shard prefix: 16^8 shards are plenty.
	maxShardDigits = 8
)

// Options tune prune.
type Options struct {
	// Grace: blobs last modified within it before the plan are kept.
	Grace time.Duration
	// KeepDuration > 0 drops caches whose manifest was not written within it.
	KeepDuration time.Duration
	// KeepStorage >= 0 drops the least recently written caches until the
	// blobs the others name hold at most this many bytes; NoLimit disables it.
	KeepStorage int64
	// Force sweeps even when some manifests cannot be read, whose blobs are
	// then taken for garbage.
	Force bool
	// BatchSize is the number of blobs deleted per request (0: DefaultBatchSize).
	BatchSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Inventory tunes the reading of the bucket, progress included.
	Inventory inventory.Options
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) batchSize() int {
	if o.BatchSize > 0 {
		return min(o.BatchSize, 1000)
	}
	return DefaultBatchSize
}

func (o Options) parallelism() int {
	if o.Inventory.Parallelism > 0 {
		return o.Inventory.Parallelism
	}
	return inventory.DefaultParallelism
}

func (o Options) progressf(format string, args ...any) {
	if o.Inventory.Progress != nil {
		o.Inventory.Progress(fmt.Sprintf(format, args...))
	}
}

// Pruner plans and runs prune on one bucket layout.
type Pruner struct {
	st     store.Store
	layout store.Layout
	opts   Options
}

// New returns a Pruner.
func New(st store.Store, l store.Layout, opts Options) *Pruner {
	return &Pruner{st: st, layout: l, opts: opts}
}

// Drop is a cache the plan drops: its manifest is deleted.
type Drop struct {
	Name        string    `json:"name"`
	Key         string    `json:"key"`
	LastWritten time.Time `json:"last_written"`
	Reason      string    `json:"reason"`
}

// BrokenManifest is a manifest prune cannot read.
type BrokenManifest struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// Blob is a blob the plan deletes.
type Blob struct {
	Digest       string    `json:"digest"`
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"last_modified"`
}

// Plan is what a prune would do, computed from one listing of the bucket.
type Plan struct {
	Time         time.Time `json:"time"`
	Grace        string    `json:"grace"`
	KeepDuration string    `json:"keep_duration,omitempty"`
	KeepStorage  *int64    `json:"keep_storage,omitempty"`
	Force        bool      `json:"force"`

	Caches int              `json:"caches"`
	Drop   []Drop           `json:"drop"`
	Broken []BrokenManifest `json:"broken"`

	// Blobs counts every blob; Referenced those the kept caches name;
	// Young the unreferenced ones within the grace, which stay; Sweep the
	// ones to delete, listed in SweepBlobs.
	Blobs      inventory.Count `json:"blobs"`
	Referenced inventory.Count `json:"referenced"`
	Young      inventory.Count `json:"young"`
	Sweep      inventory.Count `json:"sweep"`
	SweepBlobs []Blob          `json:"sweep_blobs"`
	// Missing counts blobs kept caches name that the bucket lacks.
	Missing  int      `json:"missing"`
	Warnings []string `json:"warnings"`

	cutoff     time.Time
	known      map[string]time.Time // manifest key -> LastModified accounted for
	referenced map[string]bool
	shards     map[string]int // shard prefix -> blobs listed in it
	digits     int            // hex digits in a shard prefix
}

// Refused reports whether the plan must not be executed: some manifests
// cannot be read and Force is off.
func (p *Plan) Refused() bool { return len(p.Broken) > 0 && !p.Force }

// RefusedError is returned when manifests that cannot be read stop a sweep.
type RefusedError struct{ Manifests []string }

func (e *RefusedError) Error() string {
	names := make([]string, len(e.Manifests))
	for i, n := range e.Manifests {
		names[i] = inventory.Safe(n)
	}
	return fmt.Sprintf("refusing to sweep: %d manifests cannot be read (%s), and something may still read them; "+
		"fix or delete them, or pass --force to treat their blobs as garbage",
		len(e.Manifests), strings.Join(names, ", "))
}

func (p *Plan) refusedError() error {
	names := make([]string, len(p.Broken))
	for i, b := range p.Broken {
		names[i] = b.Name
	}
	return &RefusedError{Manifests: names}
}

// Plan lists the bucket, reads every manifest, chooses the caches to drop
// and marks the blobs the others name; the unmarked blobs older than the
// grace are the sweep.
func (pr *Pruner) Plan(ctx context.Context) (*Plan, error) {
	now := pr.opts.now()
	inv, err := inventory.Load(ctx, pr.st, pr.layout, true, pr.opts.Inventory)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	plan := &Plan{
		Time:       now.UTC(),
		Grace:      inventory.FormatDuration(pr.opts.Grace),
		Force:      pr.opts.Force,
		Caches:     len(inv.Manifests),
		Drop:       []Drop{},
		Broken:     []BrokenManifest{},
		SweepBlobs: []Blob{},
		Warnings:   []string{},
		cutoff:     now.Add(-pr.opts.Grace),
		known:      map[string]time.Time{},
		referenced: map[string]bool{},
	}
	if pr.opts.KeepDuration > 0 {
		plan.KeepDuration = inventory.FormatDuration(pr.opts.KeepDuration)
	}
	if pr.opts.KeepStorage >= 0 {
		plan.KeepStorage = &pr.opts.KeepStorage
	}

	var readable []*inventory.Manifest
	for _, m := range inv.Manifests {
		if m.Broken() {
			plan.Broken = append(plan.Broken, BrokenManifest{Name: m.Name, Error: m.Err.Error()})
			plan.known[m.Key] = m.LastModified
			continue
		}
		readable = append(readable, m)
	}
	dropped := pr.chooseDrops(inv, readable, now, plan)
	for _, m := range readable {
		if dropped[m.Name] {
			// Left out of known: should the drop be skipped because the
			// manifest was rewritten, the sweep's re-listing reads it again.
			continue
		}
		plan.known[m.Key] = m.LastModified
		for _, d := range m.Digests() {
			plan.referenced[d] = true
		}
	}
	for d := range plan.referenced {
		if !inv.Present(d) {
			plan.Missing++
		}
	}

	digests := make([]string, 0, len(inv.Blobs))
	for d, obj := range inv.Blobs {
		digests = append(digests, d)
		plan.Blobs.Add(obj.Size)
		switch {
		case plan.referenced[d]:
			plan.Referenced.Add(obj.Size)
		case !obj.LastModified.Before(plan.cutoff):
			plan.Young.Add(obj.Size)
		default:
			plan.Sweep.Add(obj.Size)
			plan.SweepBlobs = append(plan.SweepBlobs, Blob{Digest: d, Key: obj.Key, Size: obj.Size, LastModified: obj.LastModified.UTC()})
		}
	}
	sort.Slice(plan.SweepBlobs, func(i, j int) bool { return plan.SweepBlobs[i].Key < plan.SweepBlobs[j].Key })
	plan.digits, plan.shards = shardBlobs(digests, plan.SweepBlobs, pr.opts.batchSize())
	plan.Warnings = append(plan.Warnings, skewWarnings(inv, now)...)
	return plan, nil
}

// chooseDrops picks the caches keep-duration and keep-storage drop.
func (pr *Pruner) chooseDrops(inv *inventory.Inventory, readable []*inventory.Manifest, now time.Time, plan *Plan) map[string]bool {
	dropped := map[string]bool{}
	drop := func(m *inventory.Manifest, reason string) {
		dropped[m.Name] = true
		plan.Drop = append(plan.Drop, Drop{Name: m.Name, Key: m.Key, LastWritten: m.LastModified.UTC(), Reason: reason})
	}
	if d := pr.opts.KeepDuration; d > 0 {
		for _, m := range readable {
			if now.Sub(m.LastModified) > d {
				drop(m, "not written in the last "+inventory.FormatDuration(d))
			}
		}
	}
	if limit := pr.opts.KeepStorage; limit >= 0 {
		var kept []*inventory.Manifest
		for _, m := range readable {
			if !dropped[m.Name] {
				kept = append(kept, m)
			}
		}
		// Newest first: the caches kept are the longest run of the most
		// recently written whose blobs fit, which is what dropping the
		// least recently written until they fit leaves.
		sort.SliceStable(kept, func(i, j int) bool {
			if !kept[i].LastModified.Equal(kept[j].LastModified) {
				return kept[i].LastModified.After(kept[j].LastModified)
			}
			return kept[i].Name < kept[j].Name
		})
		counted := map[string]bool{}
		var total int64
		over := false
		for _, m := range kept {
			if !over {
				var add int64
				var fresh []string
				for _, d := range m.Digests() {
					if !counted[d] && inv.Present(d) {
						add += inv.Size(d)
						fresh = append(fresh, d)
					}
				}
				if total+add <= limit {
					total += add
					for _, d := range fresh {
						counted[d] = true
					}
					continue
				}
				over = true
			}
			drop(m, "over keep-storage")
		}
	}
	sort.Slice(plan.Drop, func(i, j int) bool { return plan.Drop[i].Name < plan.Drop[j].Name })
	return dropped
}

// skewWarnings notes objects modified "in the future": the local clock is
// behind the store's, which shortens the grace by as much.
func skewWarnings(inv *inventory.Inventory, now time.Time) []string {
	var latest time.Time
	for _, obj := range inv.Blobs {
		if obj.LastModified.After(latest) {
			latest = obj.LastModified
		}
	}
	for _, m := range inv.Manifests {
		if m.LastModified.After(latest) {
			latest = m.LastModified
		}
	}
	if skew := latest.Sub(now); skew > time.Minute {
		return []string{fmt.Sprintf("an object was modified %s after this machine's clock says it is now; "+
			"a clock behind the store's shortens the grace by as much", skew.Round(time.Second))}
	}
	return nil
}

// shardBlobs chooses how to group the sweep for its re-check: by shard,
// the digest's algorithm and first k hex digits, so that a batch can
// re-read a shard with a LIST where that takes fewer requests than a HEAD
// per candidate. It picks the k that needs the fewest requests, counting
// a shard split over several batches as listed by each, among those whose
// shards are at most maxShardPages LIST pages (the re-check must stay
// short: it opens the window the protocol closes), and returns k and the
// number of blobs per shard.
func shardBlobs(digests []string, sweep []Blob, batch int) (int, map[string]int) {
	bestK, bestCost := -1, 0
	var best map[string]int
	for k := 0; k <= maxShardDigits; k++ {
		counts := map[string]int{}
		for _, d := range digests {
			counts[shardOf(d, k)]++
		}
		fits := true
		for _, n := range counts {
			if pages(n) > maxShardPages {
				fits = false
				break
			}
		}
		if !fits {
			continue
		}
		cands := map[string]int{}
		for _, b := range sweep {
			cands[shardOf(b.Digest, k)]++
		}
		cost := 0
		for sh, c := range cands {
			cost += min(c, pages(counts[sh])*((c+batch-1)/batch+1))
		}
		// Ties go to the longer prefix: smaller shards, shorter re-checks.
		if bestK < 0 || cost <= bestCost {
			bestK, bestCost, best = k, cost, counts
		}
	}
	if bestK < 0 {
		// Not seen with real digests; shards this small are re-checked with HEADs.
		bestK, best = maxShardDigits, map[string]int{}
		for _, d := range digests {
			best[shardOf(d, bestK)]++
		}
	}
	return bestK, best
}

// pages is the number of LIST requests n keys take.
func pages(n int) int { return (n + listPage - 1) / listPage }

func shardOf(dgst string, k int) string {
	i := strings.IndexByte(dgst, ':')
	hex := dgst[i+1:]
	return dgst[:i+1] + hex[:min(k, len(hex))]
}

// Race is a manifest, written while prune ran, that names a blob prune
// deleted. Its importers take the blob's steps as cache misses, and its
// next export uploads the blob again.
type Race struct {
	Cache string `json:"cache"`
	Blob  string `json:"blob"`
}

// Result is what an executed plan did.
type Result struct {
	Dropped []string `json:"dropped"`
	// Rewritten are dropped caches whose manifest was written again since
	// the plan, so they were kept.
	Rewritten []string        `json:"rewritten"`
	Deleted   inventory.Count `json:"deleted"`
	// Rescued are candidates a manifest written since the plan names;
	// Refreshed candidates modified since the plan (touched or uploaded
	// again); Gone candidates someone else deleted first. None is deleted.
	Rescued   int      `json:"rescued"`
	Refreshed int      `json:"refreshed"`
	Gone      int      `json:"gone"`
	Races     []Race   `json:"races"`
	Warnings  []string `json:"warnings"`
}

// sweep is the mutable state of an execution.
type sweep struct {
	pr      *Pruner
	plan    *Plan
	res     *Result
	deleted map[string]bool
}

// Execute carries out the plan: it deletes the dropped caches' manifests,
// then sweeps the blobs in batches, re-checking each batch just before
// deleting it. The result is returned with any error, to say what was done.
func (pr *Pruner) Execute(ctx context.Context, plan *Plan) (*Result, error) {
	res := &Result{Dropped: []string{}, Rewritten: []string{}, Races: []Race{}, Warnings: []string{}}
	if plan.Refused() {
		return res, plan.refusedError()
	}
	s := &sweep{pr: pr, plan: plan, res: res, deleted: map[string]bool{}}
	if err := s.dropCaches(ctx); err != nil {
		return res, err
	}
	batches := plan.batches(pr.opts.batchSize())
	var sweepErr error
	for i, b := range batches {
		if sweepErr = s.batch(ctx, b); sweepErr != nil {
			break
		}
		if len(batches) > 1 {
			pr.opts.progressf("swept batch %d of %d: %d blobs deleted so far", i+1, len(batches), res.Deleted.Objects)
		}
	}
	// A manifest written between the last batch's re-listing and its
	// deletion shows up only now; report it, as nothing can bring the blob
	// back. Also after a failed batch, for what the sweep did delete.
	if len(s.deleted) > 0 {
		if err := s.remark(ctx); err != nil && sweepErr == nil {
			sweepErr = err
		}
	}
	for _, r := range res.Races {
		res.Warnings = append(res.Warnings, fmt.Sprintf("cache %s was written during the prune and names the deleted blob %s; "+
			"its builds will rebuild that step until its next export uploads the blob again", inventory.Safe(r.Cache), inventory.Safe(r.Blob)))
	}
	return res, sweepErr
}

// dropCaches deletes the manifests of the dropped caches, but not one
// written again since the plan: one LIST tells, rather than a HEAD each.
func (s *sweep) dropCaches(ctx context.Context) error {
	if len(s.plan.Drop) == 0 {
		return nil
	}
	listed, err := inventory.ListManifests(ctx, s.pr.st, s.pr.layout, s.pr.opts.Inventory)
	if err != nil {
		return fmt.Errorf("prune: list manifests before dropping caches: %w", err)
	}
	var keys, names []string
	for _, d := range s.plan.Drop {
		obj, ok := listed[d.Name]
		if !ok {
			continue
		}
		if !obj.LastModified.Equal(d.LastWritten) {
			s.res.Rewritten = append(s.res.Rewritten, d.Name)
			continue
		}
		keys = append(keys, d.Key)
		names = append(names, d.Name)
	}
	if len(keys) == 0 {
		return nil
	}
	if err := s.pr.st.Delete(ctx, keys); err != nil {
		var de *store.DeleteError
		if errors.As(err, &de) {
			for _, k := range de.Deleted {
				if i := slices.Index(keys, k); i >= 0 {
					s.res.Dropped = append(s.res.Dropped, names[i])
				}
			}
		}
		return fmt.Errorf("prune: delete the manifests of %d dropped caches: %w", len(keys), err)
	}
	s.res.Dropped = append(s.res.Dropped, names...)
	return nil
}

// segment is the candidates of one batch that share a shard.
type segment struct {
	shard string // shard prefix of the digest
	blobs []Blob
}

func (p *Plan) batches(size int) [][]segment {
	var out [][]segment
	var cur []segment
	n := 0
	for _, b := range p.SweepBlobs {
		sh := shardOf(b.Digest, p.digits)
		if n == size {
			out = append(out, cur)
			cur, n = nil, 0
		}
		if len(cur) == 0 || cur[len(cur)-1].shard != sh {
			cur = append(cur, segment{shard: sh})
		}
		cur[len(cur)-1].blobs = append(cur[len(cur)-1].blobs, b)
		n++
	}
	if n > 0 {
		out = append(out, cur)
	}
	return out
}

// batch re-checks, re-marks and deletes one batch, in that order: a blob
// an export touched before the re-check is young, and a manifest written
// before the re-mark is seen.
func (s *sweep) batch(ctx context.Context, segs []segment) error {
	alive, err := s.recheck(ctx, segs)
	if err != nil {
		return err
	}
	if err := s.remark(ctx); err != nil {
		return err
	}
	var keys []string
	byKey := map[string]Blob{}
	for _, obj := range alive {
		if s.plan.referenced[obj.Digest] {
			s.res.Rescued++
			continue
		}
		keys = append(keys, obj.Key)
		byKey[obj.Key] = obj
	}
	if len(keys) == 0 {
		return nil
	}
	err = s.pr.st.Delete(ctx, keys)
	done := keys
	if err != nil {
		// Count what a partly failed request did delete: the report says
		// what was done, and the closing re-mark reports races on it.
		done = nil
		var de *store.DeleteError
		if errors.As(err, &de) {
			done = de.Deleted
		}
	}
	for _, k := range done {
		obj, ok := byKey[k]
		if !ok {
			continue
		}
		s.deleted[obj.Digest] = true
		s.res.Deleted.Add(obj.Size)
	}
	if err != nil {
		return fmt.Errorf("prune: delete %d blobs (%d deleted): %w", len(keys), len(done), err)
	}
	return nil
}

// recheck reads the candidates' current state: a LIST of the shard when
// that is fewer requests than a HEAD each. It returns those still there and
// still older than the grace, with their current size.
func (s *sweep) recheck(ctx context.Context, segs []segment) ([]Blob, error) {
	var (
		mu    sync.Mutex
		alive []Blob
	)
	keep := func(b Blob, obj store.Object, found bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !found:
			s.res.Gone++
		case !obj.LastModified.Before(s.plan.cutoff):
			s.res.Refreshed++
		default:
			b.Size = obj.Size
			alive = append(alive, b)
		}
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(s.pr.opts.parallelism())
	for _, seg := range segs {
		if len(seg.blobs) > pages(s.plan.shards[seg.shard]) {
			eg.Go(func() error {
				prefix := s.pr.layout.BlobsDir() + seg.shard
				found := map[string]store.Object{}
				err := s.pr.st.List(ctx, prefix, func(obj store.Object) error {
					found[obj.Key] = obj
					return nil
				})
				if err != nil {
					return fmt.Errorf("prune: re-check blobs under %q: %w", prefix, err)
				}
				for _, b := range seg.blobs {
					obj, ok := found[b.Key]
					keep(b, obj, ok)
				}
				return nil
			})
			continue
		}
		for _, b := range seg.blobs {
			eg.Go(func() error {
				obj, err := s.pr.st.Stat(ctx, b.Key)
				if errors.Is(err, store.ErrNotFound) {
					keep(b, obj, false)
					return nil
				}
				if err != nil {
					return fmt.Errorf("prune: re-check blob %s: %w", b.Digest, err)
				}
				keep(b, obj, true)
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return alive, nil
}

// remark re-lists the manifests and marks the blobs of every one written
// since it was last read; one naming a blob already deleted is a Race.
func (s *sweep) remark(ctx context.Context) error {
	listed, err := inventory.ListManifests(ctx, s.pr.st, s.pr.layout, s.pr.opts.Inventory)
	if err != nil {
		return fmt.Errorf("prune: re-list manifests: %w", err)
	}
	var changed []store.Object
	for _, obj := range listed {
		if lm, ok := s.plan.known[obj.Key]; !ok || !lm.Equal(obj.LastModified) {
			changed = append(changed, obj)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	ms, err := inventory.ReadManifests(ctx, s.pr.st, s.pr.layout, changed, s.pr.opts.Inventory)
	if err != nil {
		return fmt.Errorf("prune: read manifests written since the plan: %w", err)
	}
	for _, m := range ms {
		s.plan.known[m.Key] = m.LastModified
		if m.Broken() {
			if !s.plan.Force {
				return &RefusedError{Manifests: []string{m.Name}}
			}
			continue
		}
		for _, d := range m.Digests() {
			s.plan.referenced[d] = true
			if s.deleted[d] {
				s.res.Races = append(s.res.Races, Race{Cache: m.Name, Blob: d})
			}
		}
	}
	return nil
}
