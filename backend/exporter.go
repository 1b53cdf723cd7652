package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/moby/buildkit/cache/remotecache"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/compression"
	"github.com/moby/buildkit/util/progress"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/metrics"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// ResolveCacheExporterFunc returns BuildKit's resolver for `type=s3` cache exports.
func ResolveCacheExporterFunc(opts Options) remotecache.ResolveCacheExporterFunc {
	return func(ctx context.Context, _ session.Group, attrs map[string]string) (remotecache.Exporter, error) {
		cfg, err := opts.parseConfig(ctx, attrs)
		if err != nil {
			return nil, err
		}
		if err := cfg.ForExport(); err != nil {
			return nil, err
		}
		comp, err := compression.ParseAttributes(attrs)
		if err != nil {
			return nil, fmt.Errorf("s3 cache: %w", err)
		}
		st, layout, err := opts.open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		now := opts.Now
		if now == nil {
			now = time.Now
		}
		e := &exporter{chains: newCacheChains(), cfg: cfg, comp: comp, store: st, layout: layout, now: now, info: &infoMemo{}, localBlob: opts.LocalBlob, prober: opts.Prober,
			warnf: opts.warnf, maxManifestSize: opts.maxManifestSize()}
		e.manifests = newManifestWriter(e)
		if cfg.Merge {
			// BuildKit resolves exporters as the build starts, with the
			// build's context: the reads overlap the build.
			e.manifests.prefetch(ctx)
		}
		return e, nil
	}
}

type exporter struct {
	// chains is the export's solver.CacheExporterTarget: BuildKit's cache
	// chains, marshalled in linear time (see cacheChains).
	chains *cacheChains
	cfg    spec.Config
	comp   compression.Config
	store  store.Store
	layout store.Layout
	now    func() time.Time
	info   *infoMemo // content-store answers for marshalling the chains
	// localBlob is Options.LocalBlob.
	localBlob func(digest.Digest) (*os.File, error)
	prober    *store.Prober // Options.Prober
	warnf     func(ctx context.Context, format string, args ...any)
	// maxManifestSize bounds a manifest merge=true reads, and one it writes.
	maxManifestSize int64
	manifests       *manifestWriter
}

func (*exporter) Name() string { return "exporting cache to Amazon S3" }

func (e *exporter) Config() remotecache.Config {
	return remotecache.Config{Compression: e.comp}
}

// Add records a step's cache for the export, its results' providers
// wrapped so that Finalize's marshalling asks the content store about each
// blob once (see infoMemo).
func (e *exporter) Add(dgst digest.Digest, deps [][]solver.CacheLink, results []solver.CacheExportResult) (solver.CacheExporterRecord, bool, error) {
	return e.chains.Add(dgst, deps, e.info.wrap(results))
}

// recheckAge bounds how long before an export's manifest a blob it names
// may have been last modified (found so, or uploaded) and still be trusted
// without a second look once the manifest is written: prune (package gc)
// deletes only blobs unreferenced and older than its grace (default 1h),
// so a blob younger than this when re-checked cannot have been swept by a
// prune with a grace of 30 minutes or more that missed our manifest.
const recheckAge = 30 * time.Minute

// placedBlob is a blob the manifest names, as the export left it in the
// bucket: found there, touched, or uploaded.
type placedBlob struct {
	pair v1.DescriptorProviderPair
	// lastModified is as found, when we touched it, or when our upload
	// started (S3 dates a multipart upload from its start).
	lastModified time.Time
	touched      bool
}

// Finalize uploads every blob the chains need, then writes the manifest
// under each name: a manifest is never written before all its blobs exist.
// It then re-checks the blobs a concurrent prune could have deleted since
// they were found or uploaded (see package gc for the protocol).
func (e *exporter) Finalize(ctx context.Context) (_ map[string]string, retErr error) {
	start := time.Now()
	defer func() {
		outcome := metrics.ExportOK
		if retErr != nil {
			outcome = metrics.ExportError
		}
		metrics.Export(outcome, time.Since(start))
	}()
	cacheConfig, descs, err := e.chains.Marshal(ctx)
	if err != nil {
		return nil, fmt.Errorf("s3 cache export: marshal cache chains: %w", err)
	}
	if err := annotateLayers(cacheConfig, descs); err != nil {
		return nil, fmt.Errorf("s3 cache export: %w", err)
	}
	dt, err := manifest.Encode(cacheConfig)
	if err != nil {
		return nil, fmt.Errorf("s3 cache export: marshal cache config: %w", err)
	}
	w := e.manifests
	w.setOwn(cacheConfig, dt)
	// A merge into a large manifest overlaps the uploads; it is written
	// after them.
	w.premerge(ctx)
	defer w.stop()
	placed, err := e.putBlobs(ctx, cacheConfig, descs)
	if err != nil {
		return nil, fmt.Errorf("s3 cache export: %w", err)
	}
	for _, name := range e.cfg.Names {
		if err := w.write(ctx, name); err != nil {
			return nil, fmt.Errorf("s3 cache export: write manifest %s: %w", name, err)
		}
	}
	if err := e.recheckBlobs(ctx, placed); err != nil {
		return nil, fmt.Errorf("s3 cache export: %w", err)
	}
	return nil, nil
}

// checks is how many existence checks (HEADs) go at once: HEADs carry no
// data, so more than upload_parallelism's uploads.
func (e *exporter) checks() int { return max(statParallelism, e.cfg.UploadParallelism) }

// probeBlobs learns which of keys, blob keys of the export's prefix, exist:
// one listing where cheaper than a HEAD each (store.Prober). listErr is a
// listing that failed; the index then leaves every key to a HEAD.
func (e *exporter) probeBlobs(ctx context.Context, keys []string) (index *store.Index, listErr error) {
	index = e.prober.Probe(ctx, e.store, store.Query{
		Dir: e.layout.BlobsDir(), Keys: keys, Parallel: e.checks(), Where: prefixID(e.cfg, e.layout.BlobsDir()),
		Warn: func(err error) {
			listErr = err
			bklog.G(ctx).Debugf("s3 cache export: list blobs: %v; checking each with a HEAD instead", err)
		},
	})
	return index, listErr
}

// annotateLayers fills in each layer's annotations from its blob's
// descriptor; every layer must have one.
func annotateLayers(cc *cacheimporttypes.CacheConfig, descs v1.DescriptorProvider) error {
	for i := range cc.Layers {
		layer := &cc.Layers[i]
		pair, ok := descs[layer.Blob]
		if !ok {
			return fmt.Errorf("layer %s: no descriptor for blob", layer.Blob)
		}
		ann, err := manifest.LayerAnnotations(pair.Descriptor)
		if err != nil {
			return fmt.Errorf("layer %s: %w", layer.Blob, err)
		}
		layer.Annotations = ann
	}
	return nil
}

// putBlobs makes every layer present and fresh in the bucket, with
// upload_parallelism workers (annotateLayers first). It only reads cc: a
// merge reads it meanwhile. It returns every blob, as placed.
func (e *exporter) putBlobs(ctx context.Context, cc *cacheimporttypes.CacheConfig, descs v1.DescriptorProvider) ([]*placedBlob, error) {
	// One blob may be several layers (the same bytes on other parents).
	pairs := make([]v1.DescriptorProviderPair, 0, len(cc.Layers))
	seen := make(map[digest.Digest]bool, len(cc.Layers))
	for i := range cc.Layers {
		layer := &cc.Layers[i]
		pair, ok := descs[layer.Blob]
		if !ok {
			return nil, fmt.Errorf("layer %s: no descriptor for blob", layer.Blob)
		}
		if !seen[layer.Blob] {
			seen[layer.Blob] = true
			pairs = append(pairs, pair)
		}
	}
	keys := make([]string, len(pairs))
	for i, pair := range pairs {
		keys[i] = e.layout.BlobKey(pair.Descriptor.Digest.String())
	}
	// What the bucket has, in bulk where that is cheaper than a HEAD a blob.
	// HEADs carry no data: more go at once than uploads, which
	// upload_parallelism bounds ("layers uploaded in parallel").
	checks := e.checks()
	index, listErr := e.probeBlobs(ctx, keys)
	if errors.Is(listErr, store.ErrBucketNotFound) {
		// Every upload would fail the same way: say so once, up front.
		return nil, fmt.Errorf("list blobs: %w", listErr)
	}
	// The index answers for the blobs its listing covered (one it says is
	// absent is uploaded without a HEAD); HEADs check the rest.
	objs := make([]store.Object, len(pairs))
	statErrs := make([]error, len(pairs))
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(checks)
	for i, key := range keys {
		eg.Go(func() error {
			objs[i], statErrs[i] = index.Stat(gctx, key)
			return nil
		})
	}
	_ = eg.Wait() // each check's error is its blob's, below
	placed := make([]*placedBlob, len(pairs))
	eg, ctx = errgroup.WithContext(ctx)
	eg.SetLimit(e.cfg.UploadParallelism)
	for i, pair := range pairs {
		eg.Go(func() error {
			p, err := e.putBlob(ctx, pair, objs[i], statErrs[i])
			placed[i] = p
			return err
		})
	}
	return placed, eg.Wait()
}

// putBlob uploads a blob the bucket lacks, or keeps the one it has,
// touched when older than touch_refresh; obj and err are what checking
// the bucket for it found.
func (e *exporter) putBlob(ctx context.Context, pair v1.DescriptorProviderPair, obj store.Object, err error) (*placedBlob, error) {
	desc := pair.Descriptor
	key := e.layout.BlobKey(desc.Digest.String())
	switch {
	case err == nil && obj.Size == desc.Size:
		r := &placedBlob{pair: pair, lastModified: obj.LastModified}
		if e.now().Sub(obj.LastModified) <= e.cfg.TouchRefresh {
			metrics.ExportBlob(metrics.Reused)
			return r, nil
		}
		err := e.store.Touch(ctx, key, obj.Size)
		if err == nil {
			metrics.ExportBlob(metrics.Touched)
			r.lastModified, r.touched = e.now(), true
			return r, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("touch blob %s: %w", desc.Digest, err)
		}
		// Deleted (by a prune) since the check: upload it.
	case err == nil:
		// A blob of the wrong size is damage (a truncated or foreign object):
		// upload ours over it rather than publish a manifest pointing at it.
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("check blob %s: %w", desc.Digest, err)
	}
	// An upload that takes longer than prune's grace before the manifest
	// is written leaves an old, unnamed blob: re-checked like a reused one.
	started := e.now()
	if err := e.upload(ctx, pair); err != nil {
		return nil, err
	}
	return &placedBlob{pair: pair, lastModified: started}, nil
}

func (e *exporter) upload(ctx context.Context, pair v1.DescriptorProviderPair) error {
	desc := pair.Descriptor
	done := progress.OneOff(ctx, fmt.Sprintf("writing layer %s", desc.Digest))
	ra, err := pair.Provider.ReaderAt(ctx, desc)
	if err != nil {
		return done(fmt.Errorf("read blob %s from content store: %w", desc.Digest, err))
	}
	defer ra.Close()
	// The digest spares the client hashing the bytes to sign them.
	body := store.Body{R: &serialReaderAt{ra: ra}, Size: desc.Size, Digest: desc.Digest.String()}
	if f := e.openLocalBlob(desc); f != nil {
		defer f.Close()
		body.R, body.File = f, f
	}
	if err := e.store.Put(ctx, e.layout.BlobKey(desc.Digest.String()), body); err != nil {
		return done(fmt.Errorf("upload blob %s: %w", desc.Digest, err))
	}
	metrics.ExportBlob(metrics.Uploaded)
	return done(nil)
}

// openLocalBlob is desc's blob as a file of the local content store, or
// nil. The provider has already vouched for the blob; the file is read only
// if it is a regular file of the blob's size. The store's files are
// content-addressed and never rewritten, and an open file outlives a
// garbage collection that removes it.
func (e *exporter) openLocalBlob(desc ocispecs.Descriptor) *os.File {
	if e.localBlob == nil {
		return nil
	}
	f, err := e.localBlob(desc.Digest)
	if err != nil {
		return nil
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != desc.Size {
		f.Close()
		return nil
	}
	return f
}

// serialReaderAt makes one ReadAt wait for another. A multipart upload
// reads its parts in parallel, which io.ReaderAt allows, but some of
// BuildKit's content readers (contentutil's, over a fetcher or a buffer)
// seek one shared reader: parallel reads would mix the parts' bytes and
// upload a blob that does not match its digest. Reads from the local
// content store are far quicker than the upload, so this costs nothing.
type serialReaderAt struct {
	mu sync.Mutex
	ra io.ReaderAt
}

func (s *serialReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ra.ReadAt(p, off)
}

// recheckBlobs looks again, after the manifest is written, at the blobs
// it names that a prune could have deleted meanwhile: those we touched (a
// prune may have checked them just before) and those, found or uploaded,
// last modified more than recheckAge ago; it uploads again any that is gone.
func (e *exporter) recheckBlobs(ctx context.Context, placed []*placedBlob) error {
	now := e.now()
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(e.cfg.UploadParallelism)
	for _, r := range placed {
		if r == nil || (!r.touched && now.Sub(r.lastModified) <= recheckAge) {
			continue
		}
		eg.Go(func() error {
			desc := r.pair.Descriptor
			obj, err := e.store.Stat(ctx, e.layout.BlobKey(desc.Digest.String()))
			switch {
			case err == nil && obj.Size == desc.Size:
				return nil
			case err == nil || errors.Is(err, store.ErrNotFound):
				if err := e.upload(ctx, r.pair); err != nil {
					return fmt.Errorf("upload blob %s again, deleted during the export: %w", desc.Digest, err)
				}
				return nil
			default:
				return fmt.Errorf("re-check blob %s: %w", desc.Digest, err)
			}
		})
	}
	return eg.Wait()
}
