package backend

import (
	"context"
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
	probe  func(ctx context.Context, keys []string) *store.Index
	checks int // existence checks at once (exporter.checks)
	// prober remembers other writers' blobs this process found, under
	// where, for store.PresentTTL: a daemon merging into a crowded name
	// again soon checks only blobs it has not seen lately.
	prober *store.Prober
	where  string

	own     cacheimporttypes.CacheConfig // set by setOwn at Finalize
	ownJSON []byte

	// prefetched is each name's manifest as read, with its blobs checked,
	// while the build ran (merge=true): the merge's first round then
	// costs the export nothing but the merge itself.
	prefetched map[string]*prefetch
	// premerged is each name's first round, merged while the export's
	// blobs went up (premerge).
	premerged map[string]*premergeRound
	// stopPremerge ends the premerge's reads when the export fails
	// before writing.
	stopPremerge context.CancelFunc

	mu       sync.Mutex
	ownBlobs map[digest.Digest]bool
	ownKeys  map[digest.Digest]bool // the export's records' digests
	ownClean bool                   // the export's config needs no sanitising
	present  map[digest.Digest]bool // other writers' blobs, as found
	// overwrite is set once the store refused a conditional write: the
	// export warned and writes its other names without one.
	overwrite bool
}

// newManifestWriter returns the writer of e's manifests; the export's own
// config comes later, with setOwn.
func newManifestWriter(e *exporter) *manifestWriter {
	probe := func(ctx context.Context, keys []string) *store.Index {
		index, _ := e.probeBlobs(ctx, keys) // a failed listing leaves HEADs
		return index
	}
	w := &manifestWriter{
		store: e.store, layout: e.layout, cfg: e.cfg, now: e.now, warnf: e.warnf, maxSize: e.maxManifestSize,
		probe: probe, checks: e.checks(), prober: e.prober, where: prefixID(e.cfg, e.layout.BlobsDir()), ownBlobs: map[digest.Digest]bool{}, present: map[digest.Digest]bool{},
	}
	return w
}

// setOwn gives the writer the export's config, marshalled as ownJSON.
func (w *manifestWriter) setOwn(own *cacheimporttypes.CacheConfig, ownJSON []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.own, w.ownJSON = *own, ownJSON
	for _, l := range own.Layers {
		w.ownBlobs[l.Blob] = true
	}
	if !w.cfg.Merge {
		return // what follows serves merges only
	}
	w.ownKeys = make(map[digest.Digest]bool, len(own.Records))
	for _, r := range own.Records {
		w.ownKeys[r.Digest] = true
	}
	_, problems, err := manifest.Sanitize(*own)
	w.ownClean = err == nil && len(problems) == 0
}

// sharesKeys reports whether existing has a record with the digest of one
// of the export's own.
func (w *manifestWriter) sharesKeys(existing cacheimporttypes.CacheConfig) bool {
	for _, r := range existing.Records {
		if w.ownKeys[r.Digest] {
			return true
		}
	}
	return false
}

// existingManifest is a manifest under a name as a merge read it.
type existingManifest struct {
	cfg      cacheimporttypes.CacheConfig
	etag     string
	warnings []string // said in the export's progress when it is used
	// prepared is cfg indexed for the merge, when read during the build
	// (nil: the merge indexes it).
	prepared *manifest.PreparedMerge
}

// prefetch is a read of one name's manifest started with the build.
type prefetch struct {
	done chan struct{}
	ex   existingManifest
	err  error
}

// prefetch starts reading each name's manifest and checking the blobs it
// names, to overlap the build. A merge uses what it read only if the
// manifest is still that one when the merged one is written: the write
// is conditional on its ETag, and a blob a current manifest names is one
// prune keeps (package gc), so the checks stay true until then.
func (w *manifestWriter) prefetch(ctx context.Context) {
	w.prefetched = make(map[string]*prefetch, len(w.cfg.Names))
	for _, name := range w.cfg.Names {
		p := &prefetch{done: make(chan struct{})}
		w.prefetched[name] = p
		go func() {
			defer close(p.done)
			p.ex, p.err = w.read(ctx, name)
			if p.err == nil {
				p.err = w.checkBlobs(ctx, p.ex.cfg)
			}
			if p.err == nil {
				p.ex.prepared = manifest.PrepareMerge(p.ex.cfg)
			}
		}()
	}
}

// existing is the manifest under name to merge into: the prefetched one
// in the first round, when there is one and it was read, else read now.
func (w *manifestWriter) existing(ctx context.Context, name string, first bool) (existingManifest, error) {
	if p := w.prefetched[name]; first && p != nil {
		select {
		case <-p.done:
			if p.err == nil {
				return p.ex, nil
			}
			bklog.G(ctx).Debugf("s3 cache export: merge=true: reading manifest %s during the build: %v; reading it again", name, p.err)
		case <-ctx.Done():
			return existingManifest{}, context.Cause(ctx)
		}
	}
	return w.read(ctx, name)
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
		r, err := w.nextRound(ctx, name, attempt == 1)
		if err != nil {
			return err
		}
		ex, merged, rep, body := r.ex, r.merged, r.rep, r.body
		for _, warning := range ex.warnings {
			w.warnf(ctx, "%s", warning)
		}
		etag := ex.etag
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

// mergeRound is one round's merged manifest for a name, ready to write
// conditionally on ex.etag.
type mergeRound struct {
	ex     existingManifest
	merged cacheimporttypes.CacheConfig
	rep    manifest.MergeReport
	body   store.Body
}

// round reads (or takes the prefetched read of) the manifest under name
// and merges the export's config into it.
func (w *manifestWriter) round(ctx context.Context, name string, first bool) (mergeRound, error) {
	ex, err := w.existing(ctx, name, first)
	if err != nil {
		return mergeRound{}, err
	}
	merged, rep, err := w.merge(ctx, ex)
	if err != nil {
		return mergeRound{}, fmt.Errorf("merge into manifest %s: %w", name, err)
	}
	dt, err := manifest.Encode(&merged)
	if err != nil {
		return mergeRound{}, fmt.Errorf("marshal merged manifest %s: %w", name, err)
	}
	body, err := manifestBody(w.cfg, name, dt)
	if err != nil {
		return mergeRound{}, err
	}
	return mergeRound{ex: ex, merged: merged, rep: rep, body: body}, nil
}

// premergeRound is a first round computed while the export's blobs go up.
type premergeRound struct {
	done chan struct{}
	r    mergeRound
	err  error
}

// premerge starts each name's first round as soon as the export's config
// is known (setOwn), to overlap the blobs' checks and uploads: the merged
// manifest is only written after them (write), so a manifest still never
// names a blob not yet in the bucket.
func (w *manifestWriter) premerge(ctx context.Context) {
	if !w.cfg.Merge {
		return
	}
	w.premerged = make(map[string]*premergeRound, len(w.cfg.Names))
	ctx, w.stopPremerge = context.WithCancel(ctx)
	for _, name := range w.cfg.Names {
		p := &premergeRound{done: make(chan struct{})}
		w.premerged[name] = p
		go func() {
			defer close(p.done)
			p.r, p.err = w.round(ctx, name, true)
		}()
	}
}

// stop ends what premerge started; the export calls it once it no longer
// writes.
func (w *manifestWriter) stop() {
	if w.stopPremerge != nil {
		w.stopPremerge()
	}
}

// nextRound is write's next round: the premerged one in the first round
// when it succeeded, else one computed now (reading again if the
// premerge failed: its read may be what failed).
func (w *manifestWriter) nextRound(ctx context.Context, name string, first bool) (mergeRound, error) {
	if p := w.premerged[name]; first && p != nil {
		select {
		case <-p.done:
			if p.err == nil {
				return p.r, nil
			}
			bklog.G(ctx).Debugf("s3 cache export: merge=true: merging into manifest %s during the uploads: %v; merging again", name, p.err)
			return w.round(ctx, name, false)
		case <-ctx.Done():
			return mergeRound{}, context.Cause(ctx)
		}
	}
	return w.round(ctx, name, first)
}

// read returns the manifest under name, sanitised, and its ETag; none and
// NoObject when there is none. One that cannot be used (too large, not a
// cache config) is replaced by this export's, with a warning: no import
// could use it either.
func (w *manifestWriter) read(ctx context.Context, name string) (existingManifest, error) {
	var ex existingManifest
	replace := func(format string, args ...any) (existingManifest, error) {
		ex.cfg = cacheimporttypes.CacheConfig{}
		ex.warnings = append(ex.warnings, fmt.Sprintf(format, args...))
		return ex, nil
	}
	dt, etag, err := store.ReadAllVersion(ctx, w.store, w.layout.ManifestKey(name), w.maxSize)
	ex.etag = etag
	switch {
	case errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrBucketNotFound):
		ex.etag = store.NoObject
		return ex, nil
	case errors.Is(err, store.ErrTooLarge):
		return replace("s3 cache: merge=true: manifest %s is larger than %d bytes, which no import reads; replacing it", name, w.maxSize)
	case err != nil:
		return ex, fmt.Errorf("read manifest %s to merge into: %w", name, err)
	}
	if !w.cfg.SigningKey.IsZero() {
		// A signing export must not sign what someone without its key
		// put there: it merges only a manifest its own key signed.
		untrusted, err := w.verifyExisting(ctx, name, dt)
		if err != nil {
			return ex, err
		}
		if untrusted != nil {
			return replace("s3 cache: merge=true: manifest %s is %v; replacing it with this export's", name, untrusted)
		}
	}
	if err := manifest.Decode(dt, &ex.cfg); err != nil {
		return replace("s3 cache: merge=true: manifest %s is not a cache config (%v); replacing it", name, err)
	}
	cfg, problems, err := manifest.Sanitize(ex.cfg)
	if err != nil {
		return replace("s3 cache: merge=true: manifest %s: %v; replacing it", name, err)
	}
	if len(problems) > 0 {
		bklog.G(ctx).Debugf("s3 cache export: manifest %s: dropped what no import could use: %v", name, problems)
	}
	ex.cfg = cfg
	return ex, nil
}

// checkBlobs learns which of the blobs existing names, other than the
// export's own, are still in the bucket: a listing answers where it is
// cheaper than HEADs, a HEAD where it does not cover a blob or says it is
// absent (the listing may be older than the upload).
func (w *manifestWriter) checkBlobs(ctx context.Context, existing cacheimporttypes.CacheConfig) error {
	var check []digest.Digest
	// One blob may be several layers (the same bytes on other parents).
	seen := map[digest.Digest]bool{}
	w.mu.Lock()
	for _, l := range existing.Layers {
		if w.ownBlobs[l.Blob] || seen[l.Blob] {
			continue
		}
		seen[l.Blob] = true
		if _, ok := w.present[l.Blob]; ok || manifest.ValidDigest(l.Blob) != nil {
			continue
		}
		check = append(check, l.Blob)
	}
	w.mu.Unlock()
	if len(check) == 0 {
		return nil
	}
	keys := make([]string, len(check))
	for i, dgst := range check {
		keys[i] = w.layout.BlobKey(dgst.String())
	}
	// Blobs this process saw lately count as checked (store.PresentTTL);
	// the rest stay in check and keys, in place.
	start := w.now()
	lately := w.prober.SeenPresent(w.where, keys, start)
	n := 0
	w.mu.Lock()
	for i, seen := range lately {
		if seen {
			w.present[check[i]] = true
			continue
		}
		check[n], keys[n] = check[i], keys[i]
		n++
	}
	w.mu.Unlock()
	check, keys = check[:n], keys[:n]
	if len(check) == 0 {
		return nil
	}
	index := w.probe(ctx, keys)
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(w.checks)
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
		return err
	}
	var foundKeys, goneKeys []string
	w.mu.Lock()
	for i, dgst := range check {
		w.present[dgst] = found[i]
		if found[i] {
			foundKeys = append(foundKeys, keys[i])
		} else {
			goneKeys = append(goneKeys, keys[i])
		}
	}
	w.mu.Unlock()
	w.prober.NotePresent(w.where, foundKeys, start)
	w.prober.NoteAbsent(w.where, goneKeys)
	return nil
}

// merge merges the export's config into existing, after checking that the
// blobs only existing names are still in the bucket (checkBlobs).
func (w *manifestWriter) merge(ctx context.Context, ex existingManifest) (cacheimporttypes.CacheConfig, manifest.MergeReport, error) {
	existing := ex.cfg
	if err := w.checkBlobs(ctx, existing); err != nil {
		return cacheimporttypes.CacheConfig{}, manifest.MergeReport{}, err
	}
	missing := map[digest.Digest]bool{}
	w.mu.Lock()
	for _, l := range existing.Layers {
		if w.ownBlobs[l.Blob] {
			continue
		}
		if manifest.ValidDigest(l.Blob) != nil || !w.present[l.Blob] {
			missing[l.Blob] = true
		}
	}
	w.mu.Unlock()
	prepared := ex.prepared
	if prepared == nil {
		prepared = manifest.PrepareMerge(existing)
	}
	merged, rep, err := prepared.Merge(w.own, manifest.MergeOptions{
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
	// Records of different digests never match: when no record of the
	// export's shares a digest with one of the existing (sanitised)
	// manifest's, the parse of the union is the two sides' parses apart,
	// each clean, and sanitising would find nothing
	// (FuzzMergeDisjointIsClean). That is the usual merge of another
	// target's records, and it saves a pass over a large manifest.
	if w.ownClean && !w.sharesKeys(existing) {
		return merged, rep, nil
	}
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
