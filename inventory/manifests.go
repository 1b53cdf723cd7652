package inventory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/store"
)

// Layer is one layer of a manifest, as the manifest describes it.
type Layer struct {
	Digest    string     `json:"digest"`
	Size      int64      `json:"size"` // from the manifest; 0 when it gives none
	MediaType string     `json:"media_type,omitempty"`
	Created   *time.Time `json:"created,omitempty"`
}

// Manifest is one cache: the manifest object and what it names.
type Manifest struct {
	Name         string
	Key          string
	Size         int64
	LastModified time.Time
	// Layers in manifest order; a blob may appear once only.
	Layers  []Layer
	Records int
	// Err is why the manifest could not be decoded; Layers and Records are
	// then unknown. A broken manifest may still be read by something, so its
	// blobs are never taken for garbage without --force.
	Err error
	// Signature is what its signature metadata says (see Options.VerifyKeys).
	Signature Signature
}

// Broken reports whether the manifest could not be decoded.
func (m *Manifest) Broken() bool { return m.Err != nil }

// Digests are the distinct blobs the manifest names.
func (m *Manifest) Digests() []string {
	out := make([]string, 0, len(m.Layers))
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// ReadManifests reads and decodes the listed manifest objects, in parallel.
// A manifest deleted since the listing is left out; one that cannot be
// decoded is returned with Err set; a failed read is an error.
func ReadManifests(ctx context.Context, st store.Store, l store.Layout, objs []store.Object, opts Options) ([]*Manifest, error) {
	out := make([]*Manifest, len(objs))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(opts.parallelism())
	for i, obj := range objs {
		eg.Go(func() error {
			m, err := ReadManifest(ctx, st, l, obj, opts)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			out[i] = m
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, m := range out {
		if m != nil {
			kept = append(kept, m)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	if len(objs) >= progressEvery {
		opts.progressf("read %d manifests", len(kept))
	}
	return kept, nil
}

// ReadManifest reads one listed manifest object. A decoding failure is not
// an error but the manifest's Err; a failed read (including ErrNotFound) is.
func ReadManifest(ctx context.Context, st store.Store, l store.Layout, obj store.Object, opts Options) (*Manifest, error) {
	_, name := classify(l, obj)
	m := &Manifest{Name: name, Key: obj.Key, Size: obj.Size, LastModified: obj.LastModified}
	limit := opts.maxManifestSize()
	if obj.Size > limit {
		m.Err = fmt.Errorf("manifest is %d bytes, more than the limit of %d", obj.Size, limit)
		return m, nil
	}
	dt, meta, err := store.ReadAllMetadata(ctx, st, obj.Key, limit)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("read manifest %s: %w", Safe(name), err)
	}
	m.Size = int64(len(dt))
	m.Signature = checkSignature(name, dt, meta, opts.VerifyKeys)
	decodeInto(m, dt)
	return m, nil
}

// Decode fills a Manifest from manifest bytes (for callers that already
// hold them); decoding problems go to m.Err.
func Decode(name, key string, dt []byte, lastModified time.Time) *Manifest {
	m := &Manifest{Name: name, Key: key, Size: int64(len(dt)), LastModified: lastModified}
	decodeInto(m, dt)
	return m
}

func decodeInto(m *Manifest, dt []byte) {
	cfg, err := decodeConfig(dt)
	if err != nil {
		m.Err = err
		return
	}
	seen := map[string]bool{}
	for _, cl := range cfg.Layers {
		d := cl.Blob.String()
		if seen[d] {
			continue
		}
		seen[d] = true
		layer := Layer{Digest: d}
		if a := cl.Annotations; a != nil {
			layer.Size = max(a.Size, 0)
			layer.MediaType = a.MediaType
			if !a.CreatedAt.IsZero() {
				t := a.CreatedAt.UTC()
				layer.Created = &t
			}
		}
		m.Layers = append(m.Layers, layer)
	}
	m.Records = len(cfg.Records)
}

func decodeConfig(dt []byte) (*cacheimporttypes.CacheConfig, error) {
	var cfg cacheimporttypes.CacheConfig
	if err := manifest.Decode(dt, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}
