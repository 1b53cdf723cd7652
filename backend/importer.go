package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moby/buildkit/cache/remotecache"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/worker"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/metrics"
	"github.com/s3cache/s3cache/signature"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// statParallelism bounds the HEAD requests that check which blobs the
// bucket has, on import and export.
const statParallelism = 16

// ResolveCacheImporterFunc returns BuildKit's resolver for `type=s3` cache imports.
func ResolveCacheImporterFunc(opts Options) remotecache.ResolveCacheImporterFunc {
	return func(ctx context.Context, _ session.Group, attrs map[string]string) (remotecache.Importer, ocispecs.Descriptor, error) {
		cfg, err := opts.parseConfig(ctx, attrs)
		if err != nil {
			return nil, ocispecs.Descriptor{}, err
		}
		st, layout, err := opts.open(ctx, cfg)
		if err != nil {
			return nil, ocispecs.Descriptor{}, err
		}
		if !cfg.SigningKey.IsZero() {
			opts.warnf(ctx, "s3 cache: signing_key is for --cache-to; this import ignores it (verify_key checks signatures)")
		}
		return &Importer{opts: opts, cfg: cfg, store: st, layout: layout}, ocispecs.Descriptor{}, nil
	}
}

// Importer reads a cache manifest and serves its blobs lazily from the bucket.
type Importer struct {
	opts   Options
	cfg    spec.Config
	store  store.Store
	layout store.Layout
}

// Resolve implements remotecache.Importer.
func (i *Importer) Resolve(ctx context.Context, _ ocispecs.Descriptor, id string, w worker.Worker) (solver.CacheManager, error) {
	cc, err := i.Load(ctx)
	if err != nil {
		return nil, err
	}
	if w != nil {
		w = &verifyingWorker{Worker: w, warnf: i.opts.warnf}
	}
	keys, results, err := v1.NewCacheKeyStorage(cc, w)
	if err != nil {
		return nil, fmt.Errorf("s3 cache import: index cache records: %w", err)
	}
	return solver.NewCacheManager(ctx, id, keys, results), nil
}

// Load returns the cache chains of the first name whose manifest exists
// and can be used; none existing is an empty cache. A manifest that can't
// be read or decoded is reported and the next name tried.
func (i *Importer) Load(ctx context.Context) (*v1.CacheChains, error) {
	start := time.Now()
	cc, outcome, records, err := i.load(ctx)
	metrics.Import(outcome, records, time.Since(start))
	return cc, err
}

// load is Load, also saying how it ended and how many records it loaded.
func (i *Importer) load(ctx context.Context) (*v1.CacheChains, metrics.ImportOutcome, int, error) {
	var errs []error
	for _, name := range i.cfg.Names {
		config, err := i.readManifest(ctx, name)
		if errors.Is(err, store.ErrBucketNotFound) {
			// No other name can be there either; and a cache the user
			// believes in must not vanish in silence.
			return nil, metrics.ImportError, 0, fmt.Errorf("s3 cache import: %w", err)
		}
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err == nil {
			var (
				cc      *v1.CacheChains
				records int
			)
			if cc, records, err = i.chains(ctx, config); err == nil {
				return cc, metrics.ImportUsed, records, nil
			}
			err = fmt.Errorf("manifest %s: %w", name, err)
		}
		if ctx.Err() != nil {
			return nil, metrics.ImportError, 0, fmt.Errorf("s3 cache import: %w", err)
		}
		i.opts.warnf(ctx, "s3 cache import: %v; ignoring it", err)
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// BuildKit then builds without this cache and shows the error on the import step.
		return nil, metrics.ImportSkipped, 0, fmt.Errorf("s3 cache import: no usable manifest: %w", errors.Join(errs...))
	}
	return v1.NewCacheChains(), metrics.ImportAbsent, 0, nil
}

// readManifest reads and strictly decodes one manifest, bounded in size.
func (i *Importer) readManifest(ctx context.Context, name string) (cacheimporttypes.CacheConfig, error) {
	var config cacheimporttypes.CacheConfig
	var (
		dt  []byte
		err error
	)
	if len(i.cfg.VerifyKeys) > 0 {
		// Checked before the bytes are even decoded: an untrusted manifest
		// is not input to anything.
		var k signature.PublicKey
		if dt, k, err = readVerified(ctx, i.store, i.layout, name, i.opts.maxManifestSize(), i.cfg.VerifyKeys); err == nil {
			bklog.G(ctx).Debugf("s3 cache import: manifest %s signed by key %s", name, k.ID())
		}
	} else {
		dt, err = store.ReadAll(ctx, i.store, i.layout.ManifestKey(name), i.opts.maxManifestSize())
	}
	if err != nil {
		return config, fmt.Errorf("read manifest %s: %w", name, err)
	}
	if err := manifest.Decode(dt, &config); err != nil {
		return config, fmt.Errorf("manifest %s: %w", name, err)
	}
	return config, nil
}

// chains turns a manifest into cache chains, and counts the records it
// keeps. Layers whose blob is missing from the bucket are left out of the
// provider, so BuildKit drops the results that need them: an expired blob
// costs a cache miss, not a build.
func (i *Importer) chains(ctx context.Context, config cacheimporttypes.CacheConfig) (*v1.CacheChains, int, error) {
	config, problems, err := manifest.Sanitize(config)
	if err != nil {
		return nil, 0, err
	}
	if len(problems) > 0 {
		i.opts.warnf(ctx, "s3 cache import: damaged manifest, %d problems (first: %s); the steps they touch will rebuild", len(problems), problems[0])
	}
	present, err := i.presentBlobs(ctx, config.Layers)
	if err != nil {
		return nil, 0, err
	}
	cc, err := i.chainsOf(ctx, config, present)
	if err != nil {
		return nil, 0, err
	}
	return cc, len(config.Records), nil
}

// chainsOf parses a sanitized manifest into cache chains, using only the
// present blobs.
func (i *Importer) chainsOf(ctx context.Context, config cacheimporttypes.CacheConfig, present map[string]bool) (*v1.CacheChains, error) {
	provider := v1.DescriptorProvider{}
	for _, l := range config.Layers {
		if !present[l.Blob.String()] {
			continue
		}
		pair, err := i.descriptorPair(l)
		if err != nil {
			// Like a missing blob, a layer we can't describe is a cache miss.
			i.opts.warnf(ctx, "s3 cache import: layer %s skipped: %v", l.Blob, err)
			continue
		}
		provider[l.Blob] = pair
	}
	cc := v1.NewCacheChains()
	if err := v1.ParseConfig(config, provider, cc); err != nil {
		return nil, fmt.Errorf("parse cache config: %w", err)
	}
	return cc, nil
}

// presentBlobs reports which layer blobs exist with exactly the size the
// manifest says.
func (i *Importer) presentBlobs(ctx context.Context, layers []cacheimporttypes.CacheLayer) (map[string]bool, error) {
	type result struct {
		dgst  string
		valid bool // a well-formed digest, checked in the bucket
		ok    bool
	}
	results := make([]result, len(layers))
	var keys []string
	for idx, l := range layers {
		results[idx].dgst = l.Blob.String()
		if err := l.Blob.Validate(); err != nil {
			i.opts.warnf(ctx, "s3 cache import: layer blob %q is not a valid digest; skipped", results[idx].dgst)
			continue
		}
		results[idx].valid = true
		keys = append(keys, i.layout.BlobKey(results[idx].dgst))
	}
	// One listing of the blobs where that is cheaper than a HEAD each.
	index := i.opts.Prober.Probe(ctx, i.store, store.Query{
		Dir: i.layout.BlobsDir(), Keys: keys, Parallel: statParallelism, Where: prefixID(i.cfg, i.layout.BlobsDir()),
		Warn: func(err error) {
			bklog.G(ctx).Debugf("s3 cache import: list blobs: %v; checking each with a HEAD instead", err)
		},
	})
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(statParallelism)
	for idx, l := range layers {
		if !results[idx].valid {
			continue // warned above
		}
		dgst := results[idx].dgst
		eg.Go(func() error {
			obj, err := index.Stat(ctx, i.layout.BlobKey(dgst))
			switch {
			case errors.Is(err, store.ErrNotFound):
				// A merge in this process must check it again (store.PresentTTL).
				i.opts.Prober.NoteAbsent(prefixID(i.cfg, i.layout.BlobsDir()), []string{i.layout.BlobKey(dgst)})
				i.opts.warnf(ctx, "s3 cache import: blob %s is missing from the bucket; its steps will rebuild", dgst)
			case err != nil:
				return fmt.Errorf("check blob %s: %w", dgst, err)
			case l.Annotations != nil && obj.Size != l.Annotations.Size:
				// The size becomes the descriptor's, which the fetch reads and
				// the content store checks: any other than the object's
				// (none, negative, absurd) can only fail later, so it is a
				// damaged layer now.
				i.opts.warnf(ctx, "s3 cache import: blob %s has %d bytes, manifest says %d; its steps will rebuild", dgst, obj.Size, l.Annotations.Size)
			default:
				results[idx].ok = true
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(results))
	for _, r := range results {
		if r.ok {
			present[r.dgst] = true
		}
	}
	return present, nil
}

func (i *Importer) descriptorPair(l cacheimporttypes.CacheLayer) (v1.DescriptorProviderPair, error) {
	desc, err := manifest.Descriptor(l)
	if err != nil {
		return v1.DescriptorProviderPair{}, err
	}
	return v1.DescriptorProviderPair{Provider: &blobProvider{store: i.store, layout: i.layout}, Descriptor: desc}, nil
}
