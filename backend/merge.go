package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/progress"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// mergeAttempts bounds the rounds of read, merge and conditional write an
// export makes for one name while other writers keep changing it first.
const mergeAttempts = 10

// The wait after a lost round starts at mergeBackoff and doubles, up to
// mergeBackoffMax; each is jittered so writers that lost together spread out.
var (
	mergeBackoff    = 50 * time.Millisecond
	mergeBackoffMax = 2 * time.Second
)

// manifestWriter writes an export's cache config under each name: over
// what is there (merge=false, upstream's behaviour), or merged into it
// with a conditional write (merge=true).
type manifestWriter struct {
	store   store.Store
	layout  store.Layout
	cfg     spec.Config
	now     func() time.Time
	warnf   func(ctx context.Context, format string, args ...any)
	maxSize int64
	// probe asks which of other writers' blobs exist: one listing of the
	// blobs' prefix where that is cheaper than a HEAD a blob, as for the
	// export's own (a merge into 10,000 records has 10,000 to check).
	probe func(ctx context.Context, keys []string) *store.Index

	own      cacheimporttypes.CacheConfig
	ownJSON  []byte
	ownBlobs map[digest.Digest]bool

	mu      sync.Mutex
	present map[digest.Digest]bool // other writers' blobs, as found
	// overwrite is set once the store refused a conditional write: the
	// export warned and writes its other names without one.
	overwrite bool
}

func newManifestWriter(e *exporter, own *cacheimporttypes.CacheConfig, ownJSON []byte) *manifestWriter {
	checks := max(statParallelism, e.cfg.UploadParallelism)
	probe := func(ctx context.Context, keys []string) *store.Index {
		return e.prober.Probe(ctx, e.store, store.Query{
			Dir: e.layout.BlobsDir(), Keys: keys, Parallel: checks, Where: prefixID(e.cfg, e.layout.BlobsDir()),
			Warn: func(err error) {
				bklog.G(ctx).Debugf("s3 cache export: merge=true: list blobs: %v; checking each with a HEAD instead", err)
			},
		})
	}
	w := &manifestWriter{
		store: e.store, layout: e.layout, cfg: e.cfg, now: e.now, warnf: e.warnf, maxSize: e.maxManifestSize,
		probe: probe, own: *own, ownJSON: ownJSON,
		ownBlobs: make(map[digest.Digest]bool, len(own.Layers)), present: map[digest.Digest]bool{},
	}
	for _, l := range own.Layers {
		w.ownBlobs[l.Blob] = true
	}
	return w
}

// write writes the manifest under name.
func (w *manifestWriter) write(ctx context.Context, name string) error {
	key := w.layout.ManifestKey(name)
	if !w.cfg.Merge {
		body, err := manifestBody(w.cfg, name, w.ownJSON)
		if err != nil {
			return err
		}
		return w.store.Put(ctx, key, body)
	}
	backoff := mergeBackoff
	for attempt := 1; ; attempt++ {
		existing, etag, err := w.read(ctx, name)
		if err != nil {
			return err
		}
		merged, rep, err := w.merge(ctx, existing)
		if err != nil {
			return fmt.Errorf("merge into manifest %s: %w", name, err)
		}
		dt, err := json.Marshal(merged)
		if err != nil {
			return fmt.Errorf("marshal merged manifest %s: %w", name, err)
		}
		body, err := manifestBody(w.cfg, name, dt)
		if err != nil {
			return err
		}
		if w.overwrite {
			err = w.store.Put(ctx, key, body)
		} else {
			err = w.store.PutIf(ctx, key, body, etag)
		}
		switch {
		case err == nil:
			w.report(ctx, name, merged, rep, attempt)
			return nil
		case errors.Is(err, store.ErrConditionalNotSupported):
			// Merging is still worth it: only a writer racing this one
			// loses its records, not every writer before it.
			w.overwrite = true
			w.warnf(ctx, "s3 cache: merge=true: the store refused a conditional write (%v); writing manifest %s without one, so an export racing this one may lose its records", err, name)
			if err := w.store.Put(ctx, key, body); err != nil {
				return fmt.Errorf("write merged manifest %s: %w", name, err)
			}
			w.report(ctx, name, merged, rep, attempt)
			return nil
		case !errors.Is(err, store.ErrPreconditionFailed):
			return fmt.Errorf("write merged manifest %s: %w", name, err)
		case attempt == mergeAttempts:
			return fmt.Errorf("write merged manifest %s: other writers changed it first %d times in a row: %w", name, attempt, err)
		}
		bklog.G(ctx).Debugf("s3 cache export: manifest %s changed since it was read (round %d); merging again", name, attempt)
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, mergeBackoffMax)
		select {
		case <-ctx.Done():
			return fmt.Errorf("write merged manifest %s: %w", name, context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

// read returns the manifest under name, sanitised, and its ETag; none and
// NoObject when there is none. One that cannot be used (too large, not a
// cache config) is replaced by this export's, with a warning: no import
// could use it either.
func (w *manifestWriter) read(ctx context.Context, name string) (cacheimporttypes.CacheConfig, string, error) {
	var cfg cacheimporttypes.CacheConfig
	dt, etag, err := store.ReadAllVersion(ctx, w.store, w.layout.ManifestKey(name), w.maxSize)
	switch {
	case errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrBucketNotFound):
		return cfg, store.NoObject, nil
	case errors.Is(err, store.ErrTooLarge):
		w.warnf(ctx, "s3 cache: merge=true: manifest %s is larger than %d bytes, which no import reads; replacing it", name, w.maxSize)
		return cfg, etag, nil
	case err != nil:
		return cfg, "", fmt.Errorf("read manifest %s to merge into: %w", name, err)
	}
	if !w.cfg.SigningKey.IsZero() {
		// A signing export must not sign what someone without its key
		// put there: it merges only a manifest its own key signed.
		untrusted, err := w.verifyExisting(ctx, name, dt)
		if err != nil {
			return cfg, "", err
		}
		if untrusted != nil {
			w.warnf(ctx, "s3 cache: merge=true: manifest %s is %v; replacing it with this export's", name, untrusted)
			return cacheimporttypes.CacheConfig{}, etag, nil
		}
	}
	if err := manifest.Decode(dt, &cfg); err != nil {
		w.warnf(ctx, "s3 cache: merge=true: manifest %s is not a cache config (%v); replacing it", name, err)
		return cacheimporttypes.CacheConfig{}, etag, nil
	}
	cfg, problems, err := manifest.Sanitize(cfg)
	if err != nil {
		w.warnf(ctx, "s3 cache: merge=true: manifest %s: %v; replacing it", name, err)
		return cacheimporttypes.CacheConfig{}, etag, nil
	}
	if len(problems) > 0 {
		bklog.G(ctx).Debugf("s3 cache export: manifest %s: dropped what no import could use: %v", name, problems)
	}
	return cfg, etag, nil
}

// merge merges the export's config into existing, after checking that the
// blobs only existing names are still in the bucket: a listing answers
// where it is cheaper than HEADs, a HEAD where it does not cover a blob or
// says it is absent (the listing may be older than the upload).
func (w *manifestWriter) merge(ctx context.Context, existing cacheimporttypes.CacheConfig) (cacheimporttypes.CacheConfig, manifest.MergeReport, error) {
	var check []digest.Digest
	missing := map[digest.Digest]bool{}
	// One blob may be several layers (the same bytes on other parents).
	seen := map[digest.Digest]bool{}
	w.mu.Lock()
	for _, l := range existing.Layers {
		if w.ownBlobs[l.Blob] || seen[l.Blob] {
			continue
		}
		seen[l.Blob] = true
		if l.Blob.Validate() != nil {
			missing[l.Blob] = true
			continue
		}
		if p, ok := w.present[l.Blob]; ok {
			if !p {
				missing[l.Blob] = true
			}
			continue
		}
		check = append(check, l.Blob)
	}
	w.mu.Unlock()
	keys := make([]string, len(check))
	for i, dgst := range check {
		keys[i] = w.layout.BlobKey(dgst.String())
	}
	index := w.probe(ctx, keys)
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(max(statParallelism, w.cfg.UploadParallelism))
	found := make([]bool, len(check))
	for i, dgst := range check {
		eg.Go(func() error {
			key := keys[i]
			_, err := index.Stat(gctx, key)
			if errors.Is(err, store.ErrNotFound) {
				_, err = w.store.Stat(gctx, key)
			}
			switch {
			case err == nil:
				found[i] = true
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("check blob %s another writer's cache names: %w", dgst, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return cacheimporttypes.CacheConfig{}, manifest.MergeReport{}, err
	}
	w.mu.Lock()
	for i, dgst := range check {
		w.present[dgst] = found[i]
		if !found[i] {
			missing[dgst] = true
		}
	}
	w.mu.Unlock()
	merged, rep, err := manifest.Merge(w.own, existing, manifest.MergeOptions{
		Keep:    w.cfg.MergeKeep,
		Now:     w.now(),
		Missing: missing,
		Limits:  manifest.Limits{MaxLayers: manifest.MaxLayers, MaxRecords: manifest.MaxRecords, MaxBytes: w.maxSize},
	})
	if err != nil {
		return merged, rep, err
	}
	// Two writers' records can match each other as BuildKit's parse
	// merges records, which can loop its indexing without end: sanitised,
	// what this export writes is safe for every reader, upstream's too.
	safe, problems, err := manifest.Sanitize(merged)
	if err != nil {
		return cacheimporttypes.CacheConfig{}, rep, fmt.Errorf("check merged manifest: %w", err)
	}
	if len(problems) > 0 {
		w.warnf(ctx, "s3 cache: merge=true: %d records of the merged manifest dropped (first: %s)", len(problems), problems[0])
	}
	return safe, rep, nil
}

// report says in the build's progress what the merge kept and dropped;
// a merge cut down to the importer's limits is a warning.
func (w *manifestWriter) report(ctx context.Context, name string, merged cacheimporttypes.CacheConfig, rep manifest.MergeReport, attempts int) {
	if rep.Oversize > 0 {
		w.warnf(ctx, "s3 cache: merged manifest %s would exceed the limits an import accepts: dropped the %d oldest results (created up to %s)", name, rep.Oversize, rep.OversizeNewest.UTC().Format(time.RFC3339))
	}
	msg := fmt.Sprintf("merged cache manifest %s: %d records, %d layers", name, len(merged.Records), len(merged.Layers))
	if rep.Expired > 0 {
		msg += fmt.Sprintf("; dropped %d results older than merge_keep %s", rep.Expired, w.cfg.MergeKeep)
	}
	if rep.Gone > 0 {
		msg += fmt.Sprintf("; dropped %d results on blobs gone from the bucket", rep.Gone)
	}
	if attempts > 1 {
		msg += fmt.Sprintf(" (%d rounds: other writers changed it meanwhile)", attempts)
	}
	progress.OneOff(ctx, msg)(nil)
}
