package inventory

import (
	"context"
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/store"
)

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
