package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/leaseutil"
	"github.com/moby/buildkit/util/progress"
	"github.com/moby/buildkit/util/progress/controller"
	"github.com/moby/buildkit/worker"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// verifyingWorker fetches a cache result's blobs into the worker's content
// store, where their digests are verified, before BuildKit loads the
// result. A blob that is missing, damaged or unreadable then fails the
// cache load, which BuildKit answers by running the step instead: a broken
// bucket costs a cache miss, never a failed build or wrong bytes. Lazy
// loading would defer the read until the layer is unpacked, where a failure
// fails the build.
//
// It also remembers, for the import it serves, which cache record holds
// each layer chain it loaded. BuildKit loads a result together with each of
// its ancestors, top first; each ancestor would otherwise walk its chain
// again from the root, a ref taken and released per layer with a synced
// database write for each release: thousands for a deep Dockerfile. An
// ancestor whose chain is remembered is one lookup of its record instead.
//
// The memo is keyed by BuildKit's own identity of a layer chain, the blob
// chain ID its cache manager computes and indexes in GetByBlob, and only a
// record whose stored blob chain ID equals the key is remembered or
// returned: exactly the records GetByBlob itself may hand back for that
// chain. The records of a ref's LayerChain are not, in general, the
// records of its prefixes: for a merged ref (COPY --link), whose blob
// chain a loaded chain can match, they are its inputs' own layers, each on
// its own parents. Keying them by position once handed BuildKit a lone top
// layer for a merged chain and lost the layers under it.
type verifyingWorker struct {
	worker.Worker
	warnf func(ctx context.Context, format string, args ...any)

	mu     sync.Mutex
	chains map[digest.Digest]string // blob chain ID -> ID of a record with it
}

func (w *verifyingWorker) FromRemote(ctx context.Context, remote *solver.Remote) (cache.ImmutableRef, error) {
	keys := blobChainIDs(remote.Descriptors)
	if ref := w.loadRemembered(ctx, remote, keys); ref != nil {
		return ref, nil
	}
	ref, err := w.fromRemote(ctx, remote)
	if err != nil {
		return nil, err
	}
	w.remember(ctx, keys, ref)
	return ref, nil
}

func (w *verifyingWorker) fromRemote(ctx context.Context, remote *solver.Remote) (cache.ImmutableRef, error) {
	missing, err := w.missing(ctx, remote)
	if err != nil {
		w.warnf(ctx, "s3 cache import: %v; the step will run instead", err)
		return nil, err
	}
	if len(missing) == 0 {
		// BuildKit loads a result with each of its ancestors, the same blobs
		// over again: only the first load fetches, and the rest need no
		// lease (two synced database writes each).
		return w.Worker.FromRemote(ctx, remote)
	}
	// A temporary lease keeps the fetched content from garbage collection
	// until the ref made from it holds its own.
	ctx, done, err := leaseutil.WithLease(ctx, w.LeaseManager(), leaseutil.MakeTemporary)
	if err != nil {
		return nil, fmt.Errorf("s3 cache import: lease for fetched blobs: %w", err)
	}
	defer done(context.WithoutCancel(ctx))
	if err := w.fetch(ctx, remote.Provider, missing); err != nil {
		w.warnf(ctx, "s3 cache import: %v; the step will run instead", err)
		return nil, err
	}
	// Unpacking is left to BuildKit, when a step or an output needs the
	// files: a build that only exports an image never pays for it.
	// (Unpacking each layer here as its blob landed was measured: no gain
	// on a disk-bound machine, where each blob's commit fsync flushes the
	// unpacking's writes too.)
	return w.Worker.FromRemote(ctx, remote)
}

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

// descHandlers tell BuildKit where remote's blobs come from and where their
// progress goes, as its worker's FromRemote does.
func descHandlers(ctx context.Context, remote *solver.Remote) cache.DescHandlers {
	pg := solver.ProgressControllerFromContext(ctx)
	if pg == nil {
		pg = &controller.Controller{WriterFactory: progress.FromContext(ctx)}
	}
	labels := func([]ocispecs.Descriptor, int) map[string]string { return nil }
	if sl, ok := remote.Provider.(interface {
		SnapshotLabels([]ocispecs.Descriptor, int) map[string]string
	}); ok {
		labels = sl.SnapshotLabels
	}
	provider := func(session.Group) content.Provider { return remote.Provider }
	dhs := make(cache.DescHandlers, len(remote.Descriptors))
	for i, desc := range remote.Descriptors {
		dhs[desc.Digest] = &cache.DescHandler{
			Provider:       provider,
			Progress:       pg,
			Annotations:    desc.Annotations,
			SnapshotLabels: labels(remote.Descriptors, i),
		}
	}
	return dhs
}

// missing are the remote's blobs the content store lacks.
func (w *verifyingWorker) missing(ctx context.Context, remote *solver.Remote) ([]ocispecs.Descriptor, error) {
	cs := w.ContentStore()
	var missing []ocispecs.Descriptor
	seen := map[digest.Digest]bool{}
	for _, desc := range remote.Descriptors {
		if seen[desc.Digest] {
			continue // a blob a chain holds twice is fetched once
		}
		seen[desc.Digest] = true
		if _, err := cs.Info(ctx, desc.Digest); err == nil {
			continue
		} else if !errors.Is(err, cerrdefs.ErrNotFound) {
			return nil, fmt.Errorf("look up blob %s locally: %w", desc.Digest, err)
		}
		missing = append(missing, desc)
	}
	return missing, nil
}
