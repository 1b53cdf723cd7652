package backend

import (
	"context"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The chain memo of verifyingWorker (worker.go): which cache record holds
// each layer chain an import loaded.

// recordBlobChainIDKey is the metadata key under which BuildKit's cache
// records hold their blob chain ID (cache/metadata.go keyBlobChainID).
const recordBlobChainIDKey = "cache.blobChainID"

// blobChainIDs are the blob chain IDs of each prefix of a layer chain,
// computed as BuildKit's cache manager computes them in GetByBlob:
// keys[i] identifies descs[0..i], blobs and uncompressed digests both. It
// is nil when a descriptor lacks a valid uncompressed digest, which
// GetByBlob refuses too: such a chain is never remembered.
func blobChainIDs(descs []ocispecs.Descriptor) []digest.Digest {
	keys := make([]digest.Digest, len(descs))
	var parent digest.Digest
	for i, d := range descs {
		diffID, err := digest.Parse(d.Annotations[labels.LabelUncompressed])
		if err != nil || d.Digest.Validate() != nil {
			return nil
		}
		id := identity.ChainID([]digest.Digest{d.Digest, diffID})
		if parent != "" {
			id = identity.ChainID([]digest.Digest{parent, id})
		}
		keys[i], parent = id, id
	}
	return keys
}

// loadRemembered is a ref to a record already holding remote's layer
// chain, or nil when there is none (then the chain is loaded as usual).
// The record's blobs were verified when they were fetched, and the record
// holds them in the content store.
func (w *verifyingWorker) loadRemembered(ctx context.Context, remote *solver.Remote, keys []digest.Digest) cache.ImmutableRef {
	if len(keys) == 0 {
		return nil
	}
	key := keys[len(keys)-1]
	w.mu.Lock()
	id, ok := w.chains[key]
	w.mu.Unlock()
	if !ok {
		return nil
	}
	ref, err := w.CacheManager().Get(ctx, id, nil, descHandlers(ctx, remote))
	if err == nil && ref.GetString(recordBlobChainIDKey) == key.String() {
		return ref
	}
	if err == nil {
		_ = ref.Release(context.WithoutCancel(ctx))
	}
	// Gone meanwhile (pruned), or no longer that chain: load it as if never seen.
	w.mu.Lock()
	delete(w.chains, key)
	w.mu.Unlock()
	return nil
}

// remember notes ref, which BuildKit loaded for the chain keys identify,
// and those of its layers whose own chain is a prefix of it.
func (w *verifyingWorker) remember(ctx context.Context, keys []digest.Digest, ref cache.ImmutableRef) {
	if ref == nil || len(keys) == 0 {
		return
	}
	found := map[digest.Digest]string{}
	if ref.GetString(recordBlobChainIDKey) == keys[len(keys)-1].String() {
		found[keys[len(keys)-1]] = ref.ID()
	}
	layers := ref.LayerChain()
	defer layers.Release(context.WithoutCancel(ctx))
	if len(layers) == len(keys) {
		for i, l := range layers[:len(layers)-1] {
			// Each layer's own blob chain ID says whether it holds the
			// prefix: a merged ref's layers hold other chains.
			if l.GetString(recordBlobChainIDKey) == keys[i].String() {
				found[keys[i]] = l.ID()
			}
		}
	}
	if len(found) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.chains == nil {
		w.chains = map[digest.Digest]string{}
	}
	for k, id := range found {
		w.chains[k] = id
	}
}
