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
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/signature"
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
	// Prober answers which blobs exist where no listing of them was made
	// (a listing where cheaper, HEADs otherwise); nil remembers nothing
	// between calls.
	Prober *store.Prober
	// VerifyKeys check the manifests' signatures (the spec's verify_key);
	// none: signatures are reported, not verified.
	VerifyKeys []signature.PublicKey
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

// StatUnsized looks up the blobs whose size neither a listing nor their
// manifests give (a listing of them where cheaper, HEADs otherwise).
// Missing blobs keep size 0.
func (inv *Inventory) StatUnsized(ctx context.Context, st store.Store, opts Options) error {
	inv.index()
	var todo, keys []string
	for d, size := range inv.sizes {
		if size == 0 && inv.Blobs == nil && isDigest(d) {
			todo = append(todo, d)
			keys = append(keys, inv.Layout.BlobKey(d))
		}
	}
	idx := opts.Prober.Probe(ctx, st, store.Query{Dir: inv.Layout.BlobsDir(), Keys: keys, Parallel: opts.parallelism()})
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(opts.parallelism())
	for _, d := range todo {
		eg.Go(func() error {
			obj, err := idx.Stat(ctx, inv.Layout.BlobKey(d))
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
