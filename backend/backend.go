// Package backend is BuildKit's `type=s3` remote cache exporter and importer
// on top of package store.
package backend

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moby/buildkit/util/progress/logs"
	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// Options configure the exporter and importer.
type Options struct {
	// NewStore opens the bucket for a config; nil means store.New with
	// StoreOptions. Tests use it to put a proxy or a wrapper in between.
	NewStore func(ctx context.Context, cfg spec.Config) (store.Store, error)
	// StoreOptions tune the S3 client when NewStore is nil.
	StoreOptions store.Options
	// MaxManifestSize bounds an imported manifest; 0 means manifest.DefaultMaxSize.
	MaxManifestSize int64
	// Logf receives warnings (unknown attributes, damaged cache); nil drops them.
	Logf func(format string, args ...any)
	// Policy limits what the specs may reach; the zero value allows all.
	Policy Policy
	// LocalBlob opens a blob of the engine's local content store as a
	// file, which an upload over plain HTTP sends with sendfile(2) instead
	// of copying it through the process; nil, or an error, reads the blob
	// through BuildKit's content provider.
	LocalBlob func(dgst digest.Digest) (*os.File, error)
	// Prober answers which blobs the bucket has, for exports and imports,
	// and remembers across them which blobs prefixes are too crowded to
	// list; the engine keeps one for its life. nil remembers nothing.
	Prober *store.Prober
	// Now is the exporter's clock (default time.Now); tests move it on to
	// reach the age at which an export re-checks its blobs.
	Now func() time.Time
}

func (o Options) open(ctx context.Context, cfg spec.Config) (store.Store, store.Layout, error) {
	layout := store.Layout{Prefix: cfg.Prefix, BlobsPrefix: cfg.BlobsPrefix, ManifestsPrefix: cfg.ManifestsPrefix}
	var (
		st  store.Store
		err error
	)
	if o.NewStore != nil {
		st, err = o.NewStore(ctx, cfg)
	} else {
		st, err = store.New(ctx, cfg, o.StoreOptions)
	}
	if err != nil {
		return nil, layout, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	return st, layout, nil
}

// prefixID names a blobs prefix of a bucket for the Prober's memory.
func prefixID(cfg spec.Config, dir string) string {
	return strings.Join([]string{cfg.EndpointURL, cfg.Region, cfg.Bucket, dir}, "\x00")
}

func (o Options) maxManifestSize() int64 {
	if o.MaxManifestSize > 0 {
		return o.MaxManifestSize
	}
	return manifest.DefaultMaxSize
}

// warnf reports a problem that costs cache but not the build: in the
// progress of the step or import that met it, where the user sees it, and
// to Logf.
func (o Options) warnf(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if o.Logf != nil {
		o.Logf("%s", msg)
	}
	if ctx == nil {
		return
	}
	// Both streams hold a progress writer that must be closed, or the
	// build's progress never ends.
	stdout, stderr, flush := logs.NewLogStreams(ctx, false)
	fmt.Fprintf(stderr, "WARNING: %s\n", msg)
	flush()
	stdout.Close()
	stderr.Close()
}

// parseConfig validates the attributes BuildKit hands a cache backend.
func (o Options) parseConfig(ctx context.Context, attrs map[string]string) (spec.Config, error) {
	cfg, err := spec.FromAttrs(attrs)
	if err != nil {
		return spec.Config{}, err
	}
	// Also here, not only where the engine takes a request: a frontend's
	// own solves carry cache imports the engine never saw.
	if err := o.Policy.Check(cfg); err != nil {
		return spec.Config{}, err
	}
	for _, w := range cfg.Warnings {
		o.warnf(ctx, "s3 cache: %s", w)
	}
	return cfg, nil
}
