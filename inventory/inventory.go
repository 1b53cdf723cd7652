// Package inventory reads what a `type=s3` build cache bucket holds: the
// cache manifests under <prefix><manifests_prefix>, the blobs under
// <prefix><blobs_prefix>, and which manifests name which blobs. It renders
// the reports of the ls, inspect, du and verify commands.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/store"
)

// DefaultParallelism bounds the concurrent GET and HEAD requests.
const DefaultParallelism = 16

// progressEvery is how many listed objects pass between progress reports.
const progressEvery = 1000

// Options tune how a bucket is read.
type Options struct {
	// MaxManifestSize bounds a manifest; larger ones are reported broken
	// without being read. 0 means manifest.DefaultMaxSize.
	MaxManifestSize int64
	// Parallelism bounds concurrent GET/HEAD requests (0: DefaultParallelism).
	Parallelism int
	// Progress receives a line now and then during long listings and
	// checks; nil drops them.
	Progress func(msg string)
}

func (o Options) maxManifestSize() int64 {
	if o.MaxManifestSize > 0 {
		return o.MaxManifestSize
	}
	return manifest.DefaultMaxSize
}

func (o Options) parallelism() int {
	if o.Parallelism > 0 {
		return o.Parallelism
	}
	return DefaultParallelism
}

func (o Options) progressf(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

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

// Inventory is a snapshot of a bucket's caches and, when listed, its blobs.
type Inventory struct {
	Layout    store.Layout
	Manifests []*Manifest // sorted by name
	// Blobs maps digest to object; nil when blobs were not listed.
	Blobs map[string]store.Object
	// Foreign are objects under the blobs prefix that are not blobs (their
	// name is no digest); nothing here ever deletes them.
	Foreign []store.Object

	sizeOnce sync.Once
	sizes    map[string]int64 // digest -> best known size
	refs     map[string][]string
}

// kind is what a key under the cache prefixes is.
type kind int

const (
	kindOther kind = iota
	kindBlob
	kindManifest
	kindForeign
)

// classify tells blobs from manifests, also when one prefix contains the
// other (e.g. manifests_prefix="" puts blobs/ inside the manifests'
// directory): a key under the blobs prefix whose rest is a digest is a blob.
func classify(l store.Layout, obj store.Object) (kind, string) {
	key := obj.Key
	bdir, mdir := l.BlobsDir(), l.ManifestsDir()
	if rest, ok := strings.CutPrefix(key, bdir); ok && isDigest(rest) {
		return kindBlob, rest
	}
	if rest, ok := strings.CutPrefix(key, mdir); ok {
		// An empty name or a console's "folder/" marker (zero bytes) is no
		// manifest. Any other key is one, even ending in "/": upstream
		// writes such names, and a manifest overlooked here would have
		// prune delete the blobs it names.
		if rest == "" || (strings.HasSuffix(rest, "/") && obj.Size == 0) {
			return kindOther, ""
		}
		return kindManifest, rest
	}
	if strings.HasPrefix(key, bdir) {
		return kindForeign, ""
	}
	return kindOther, ""
}

func isDigest(s string) bool {
	_, err := digest.Parse(s)
	return err == nil
}

// list walks the manifests and, with blobs, the blobs: one listing when one
// directory contains the other, else one each.
func list(ctx context.Context, st store.Store, l store.Layout, blobs bool, opts Options, fn func(kind, string, store.Object)) error {
	bdir, mdir := l.BlobsDir(), l.ManifestsDir()
	type listing struct{ prefix, what string }
	var listings []listing
	switch {
	case !blobs:
		listings = []listing{{mdir, "the caches"}}
	case strings.HasPrefix(bdir, mdir):
		listings = []listing{{mdir, "the caches and blobs"}}
	case strings.HasPrefix(mdir, bdir):
		listings = []listing{{bdir, "the caches and blobs"}}
	default:
		listings = []listing{{mdir, "the caches"}, {bdir, "the blobs"}}
	}
	for _, li := range listings {
		prefix := li.prefix
		n := 0
		err := st.List(ctx, prefix, func(obj store.Object) error {
			n++
			if n%progressEvery == 0 {
				opts.progressf("listed %d objects under %q", n, prefix)
			}
			k, name := classify(l, obj)
			if k == kindBlob && !blobs {
				return nil
			}
			fn(k, name, obj)
			return nil
		})
		if err != nil {
			return fmt.Errorf("list %s: %w", li.what, err)
		}
		if n >= progressEvery {
			opts.progressf("listed %d objects under %q", n, prefix)
		}
	}
	return nil
}

// ListManifests lists the manifest objects under the manifests prefix, by name.
func ListManifests(ctx context.Context, st store.Store, l store.Layout, opts Options) (map[string]store.Object, error) {
	out := map[string]store.Object{}
	err := list(ctx, st, l, false, opts, func(k kind, name string, obj store.Object) {
		if k == kindManifest {
			out[name] = obj
		}
	})
	return out, err
}

// Load lists the manifests (and the blobs, if blobs) and reads every manifest.
func Load(ctx context.Context, st store.Store, l store.Layout, blobs bool, opts Options) (*Inventory, error) {
	inv := &Inventory{Layout: l}
	if blobs {
		inv.Blobs = map[string]store.Object{}
	}
	var manifests []store.Object
	err := list(ctx, st, l, blobs, opts, func(k kind, name string, obj store.Object) {
		switch k {
		case kindBlob:
			inv.Blobs[name] = obj
		case kindManifest:
			manifests = append(manifests, obj)
		case kindForeign:
			inv.Foreign = append(inv.Foreign, obj)
		}
	})
	if err != nil {
		return nil, err
	}
	inv.Manifests, err = ReadManifests(ctx, st, l, manifests, opts)
	if err != nil {
		return nil, err
	}
	return inv, nil
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
	dt, err := store.ReadAll(ctx, st, obj.Key, limit)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("read manifest %s: %w", Safe(name), err)
	}
	m.Size = int64(len(dt))
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

// Manifest returns the cache of that name, or nil.
func (inv *Inventory) Manifest(name string) *Manifest {
	i := sort.Search(len(inv.Manifests), func(i int) bool { return inv.Manifests[i].Name >= name })
	if i < len(inv.Manifests) && inv.Manifests[i].Name == name {
		return inv.Manifests[i]
	}
	return nil
}

// Broken are the manifests that could not be decoded.
func (inv *Inventory) Broken() []*Manifest {
	var out []*Manifest
	for _, m := range inv.Manifests {
		if m.Broken() {
			out = append(out, m)
		}
	}
	return out
}

func (inv *Inventory) index() {
	inv.sizeOnce.Do(func() {
		inv.sizes = map[string]int64{}
		inv.refs = map[string][]string{}
		for _, m := range inv.Manifests {
			for _, l := range m.Layers {
				inv.refs[l.Digest] = append(inv.refs[l.Digest], m.Name)
				if _, ok := inv.sizes[l.Digest]; !ok || inv.sizes[l.Digest] == 0 {
					inv.sizes[l.Digest] = l.Size
				}
			}
		}
		for d, obj := range inv.Blobs {
			inv.sizes[d] = obj.Size
		}
	})
}

// RefBy names the caches whose manifest names the blob, sorted.
func (inv *Inventory) RefBy(dgst string) []string {
	inv.index()
	return inv.refs[dgst]
}

// Referenced is the set of blobs some readable manifest names.
func (inv *Inventory) Referenced() map[string]bool {
	inv.index()
	out := make(map[string]bool, len(inv.refs))
	for d := range inv.refs {
		out[d] = true
	}
	return out
}

// Size is the blob's size: as listed when blobs were listed and it is
// there, else as its manifests say (0 if they don't).
func (inv *Inventory) Size(dgst string) int64 {
	inv.index()
	return inv.sizes[dgst]
}

// Present reports whether a listed blob exists; always true when blobs
// were not listed.
func (inv *Inventory) Present(dgst string) bool {
	if inv.Blobs == nil {
		return true
	}
	_, ok := inv.Blobs[dgst]
	return ok
}

func decodeConfig(dt []byte) (*cacheimporttypes.CacheConfig, error) {
	var cfg cacheimporttypes.CacheConfig
	if err := manifest.Decode(dt, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// StatUnsized looks up, with a HEAD each, the blobs whose size neither a
// listing nor their manifests give. Missing blobs keep size 0.
func (inv *Inventory) StatUnsized(ctx context.Context, st store.Store, opts Options) error {
	inv.index()
	var todo []string
	for d, size := range inv.sizes {
		if size == 0 && inv.Blobs == nil && isDigest(d) {
			todo = append(todo, d)
		}
	}
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(opts.parallelism())
	for _, d := range todo {
		eg.Go(func() error {
			obj, err := st.Stat(ctx, inv.Layout.BlobKey(d))
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("size of blob %s: %w", Safe(d), err)
			}
			mu.Lock()
			inv.sizes[d] = obj.Size
			mu.Unlock()
			return nil
		})
	}
	return eg.Wait()
}
