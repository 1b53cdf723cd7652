// Package cachetest makes real `type=s3` cache exports for tests of the
// tools that read buckets. Caches are written by our exporter
// (backend.ResolveCacheExporterFunc) from layers in a local content store,
// as a build would; when the engine can run builds in tests, this is the
// one place to switch to them.
package cachetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/moby/buildkit/cache/remotecache"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/contentutil"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// Layer is a compressed layer blob in the factory's content store.
type Layer struct {
	Desc ocispecs.Descriptor
	Data []byte
}

// Digest is the layer's blob digest.
func (l Layer) Digest() string { return l.Desc.Digest.String() }

// Factory makes layers and exports caches of them.
type Factory struct {
	buf contentutil.Buffer
	seq int
}

// New returns a factory with an empty content store.
func New() *Factory { return &Factory{buf: contentutil.NewBuffer()} }

// Provider is the content store the factory's layers are in.
func (f *Factory) Provider() content.InfoReaderProvider { return f.buf }

// Layers makes one layer of random bytes per size.
func (f *Factory) Layers(t testing.TB, sizes ...int) []Layer {
	t.Helper()
	out, err := f.NewLayers(sizes...)
	if err != nil {
		t.Fatalf("make layers: %v", err)
	}
	return out
}

// NewLayers is Layers for code without a testing.TB (benchmarks' setup).
func (f *Factory) NewLayers(sizes ...int) ([]Layer, error) {
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var out []Layer
	for _, size := range sizes {
		f.seq++
		data := make([]byte, size)
		if _, err := rand.Read(data); err != nil {
			return nil, fmt.Errorf("random layer data: %w", err)
		}
		desc := ocispecs.Descriptor{
			MediaType: ocispecs.MediaTypeImageLayerGzip,
			Digest:    digest.FromBytes(data),
			Size:      int64(size),
			Annotations: map[string]string{
				labels.LabelUncompressed:     digest.FromString(fmt.Sprintf("diff-%d-%s", f.seq, digest.FromBytes(data))).String(),
				manifest.CreatedAtAnnotation: created.Add(time.Duration(f.seq) * time.Minute).Format(time.RFC3339Nano),
			},
		}
		if err := content.WriteBlob(context.Background(), f.buf, desc.Digest.String(), bytes.NewReader(data), desc); err != nil {
			return nil, fmt.Errorf("write layer to the content store: %w", err)
		}
		out = append(out, Layer{Desc: desc, Data: data})
	}
	return out, nil
}

// Attrs turns "type=s3,k=v,..." (or the attributes without type=s3) into
// the attribute map BuildKit hands the exporter.
func Attrs(t testing.TB, s string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(strings.ToLower(s), "type=") {
		s = "type=s3," + s
	}
	e, err := spec.ParseEntry(s)
	if err != nil {
		t.Fatalf("parse cache spec: %v", err)
	}
	return e.Attrs
}

// ExportOptions are the exporter's options. The alias lets the tests of
// the bucket tools (inventory, gc, cli) tune an export without importing
// the exporter's package, which they never use themselves.
type ExportOptions = backend.Options

// Through is the options of an export that writes through st (a spy or a
// gate in front of the bucket) instead of opening the bucket itself.
func Through(st store.Store) ExportOptions {
	return ExportOptions{NewStore: func(context.Context, spec.Config) (store.Store, error) { return st, nil }}
}

// Export exports a cache of one chain of steps, step i producing layers
// 0..i, as a Dockerfile of len(layers) RUN steps would, and fails the test
// on error.
func (f *Factory) Export(t testing.TB, opts ExportOptions, attrs map[string]string, layers ...Layer) {
	t.Helper()
	if err := f.ExportE(context.Background(), opts, attrs, layers...); err != nil {
		t.Fatalf("export cache: %v", err)
	}
}

// ExportE is Export returning its error, for goroutines.
func (f *Factory) ExportE(ctx context.Context, opts ExportOptions, attrs map[string]string, layers ...Layer) error {
	exp, err := backend.ResolveCacheExporterFunc(opts)(ctx, nil, attrs)
	if err != nil {
		return fmt.Errorf("resolve exporter: %w", err)
	}
	if err := f.Add(exp, layers...); err != nil {
		return err
	}
	if _, err := exp.Finalize(ctx); err != nil {
		return fmt.Errorf("finalize: %w", err)
	}
	return nil
}

// Add adds to exp the chain of steps Export exports, step i producing
// layers 0..i, for tests that resolve and finalize the exporter
// themselves.
func (f *Factory) Add(exp remotecache.Exporter, layers ...Layer) error {
	var prev solver.CacheExporterRecord
	for i := range layers {
		remote := &solver.Remote{Provider: f.buf}
		for _, l := range layers[:i+1] {
			remote.Descriptors = append(remote.Descriptors, l.Desc)
		}
		var deps [][]solver.CacheLink
		if prev != nil {
			deps = [][]solver.CacheLink{{{Src: prev}}}
		}
		step := digest.FromString(fmt.Sprintf("step %d of %s", i, layers[i].Desc.Digest))
		rec, _, err := exp.Add(step, deps, []solver.CacheExportResult{{CreatedAt: time.Now(), Result: remote}})
		if err != nil {
			return fmt.Errorf("add step %d: %w", i, err)
		}
		prev = rec
	}
	return nil
}

// Bucket is a fresh MinIO bucket and the spec that reaches it.
type Bucket struct {
	Name   string
	Spec   string // "type=s3,region=...,bucket=...,..." without a name
	Store  store.Store
	Layout store.Layout
}

// NewBucket makes a bucket on the package's MinIO (miniotest.Shared);
// extra is appended to the spec, e.g. "prefix=ci/".
func NewBucket(t testing.TB, extra string) *Bucket {
	t.Helper()
	srv := miniotest.Shared(t)
	name := srv.Bucket(t)
	s := "type=s3," + srv.Spec(name)
	if extra != "" {
		s += "," + extra
	}
	cfg, err := spec.Parse(s)
	if err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	st, err := store.New(context.Background(), cfg, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return &Bucket{Name: name, Spec: s, Store: st, Layout: st.Layout()}
}

// With is the spec plus more attributes, e.g. With("name=main").
func (b *Bucket) With(attrs ...string) string {
	return strings.Join(append([]string{b.Spec}, attrs...), ",")
}

// Attrs is the exporter's attribute map of With(attrs...).
func (b *Bucket) Attrs(t testing.TB, attrs ...string) map[string]string {
	t.Helper()
	return Attrs(t, b.With(attrs...))
}
