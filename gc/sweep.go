package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
)

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
	// First how to ask about each segment (a LIST of its shard, made here,
	// or HEADs), then the answers.
	indexes := make([]*store.Index, len(segs))
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(s.pr.opts.parallelism())
	for i, seg := range segs {
		eg.Go(func() error {
			prefix := s.pr.layout.BlobsDir() + seg.shard
			keys := make([]string, len(seg.blobs))
			for j, b := range seg.blobs {
				keys[j] = b.Key
			}
			x, err := store.ProbeCounted(gctx, s.pr.st, prefix, keys, s.plan.shards[seg.shard])
			if err != nil {
				return fmt.Errorf("prune: re-check blobs under %q: %w", prefix, err)
			}
			indexes[i] = x
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	eg, ctx = errgroup.WithContext(ctx)
	eg.SetLimit(s.pr.opts.parallelism())
	for i, seg := range segs {
		for _, b := range seg.blobs {
			eg.Go(func() error {
				obj, err := indexes[i].Stat(ctx, b.Key)
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
