package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/leaseutil"
	"github.com/moby/buildkit/util/progress"
	"github.com/moby/buildkit/util/progress/controller"
	"github.com/moby/buildkit/worker"
	digest "github.com/opencontainers/go-digest"
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
// It also remembers the cache record of every layer chain it loaded, for
// the import it serves. BuildKit loads a result together with each of its
// ancestors, top first; each ancestor would otherwise walk its chain again
// from the root, a ref taken and released per layer with a synced database
// write for each release: thousands for a deep Dockerfile. An ancestor
// whose chain is remembered is one lookup of its record instead.
type verifyingWorker struct {
	worker.Worker
	warnf func(ctx context.Context, format string, args ...any)

	mu     sync.Mutex
	chains map[digest.Digest]string // chainKey of a remote's blobs -> cache record ID
}

func (w *verifyingWorker) FromRemote(ctx context.Context, remote *solver.Remote) (cache.ImmutableRef, error) {
	keys := chainKeys(remote.Descriptors)
	if ref := w.loadRemembered(ctx, remote, keys); ref != nil {
		return ref, nil
	}
	ref, err := w.fromRemote(ctx, remote)
	if err != nil {
		return nil, err
	}
	w.remember(ctx, remote, keys, ref)
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

// chainKeys are keys for each prefix of a layer chain: keys[i] names the
// chain of descs[0..i].
func chainKeys(descs []ocispecs.Descriptor) []digest.Digest {
	keys := make([]digest.Digest, len(descs))
	var prev digest.Digest
	for i, d := range descs {
		prev = digest.FromString(prev.String() + " " + d.Digest.String())
		keys[i] = prev
	}
	return keys
}

// loadRemembered is a ref to the record already holding remote's layer
// chain, or nil when there is none (then the chain is loaded as usual).
// The record's blobs were verified when they were fetched, and the record
// holds them in the content store.
func (w *verifyingWorker) loadRemembered(ctx context.Context, remote *solver.Remote, keys []digest.Digest) cache.ImmutableRef {
	if len(keys) == 0 {
		return nil
	}
	w.mu.Lock()
	id, ok := w.chains[keys[len(keys)-1]]
	w.mu.Unlock()
	if !ok {
		return nil
	}
	ref, err := w.CacheManager().Get(ctx, id, nil, descHandlers(ctx, remote))
	if err != nil {
		// Gone meanwhile (pruned): load it as if never seen.
		w.mu.Lock()
		delete(w.chains, keys[len(keys)-1])
		w.mu.Unlock()
		return nil
	}
	return ref
}

// remember notes the record of each layer of ref, which was loaded from
// remote, under the key of its chain (keys are remote's chainKeys).
func (w *verifyingWorker) remember(ctx context.Context, remote *solver.Remote, keys []digest.Digest, ref cache.ImmutableRef) {
	if ref == nil || len(remote.Descriptors) == 0 {
		return
	}
	layers := ref.LayerChain()
	defer layers.Release(context.WithoutCancel(ctx))
	if len(layers) != len(remote.Descriptors) {
		return
	}
	for i, l := range layers {
		// The record's blob is BuildKit's to name; a chain that doesn't match
		// layer for layer is not remembered, which is merely slower.
		if l.GetString(recordBlobKey) != remote.Descriptors[i].Digest.String() {
			return
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.chains == nil {
		w.chains = map[digest.Digest]string{}
	}
	for i, l := range layers {
		w.chains[keys[i]] = l.ID()
	}
}

// recordBlobKey is the metadata key under which BuildKit's cache records
// hold their layer's blob digest.
const recordBlobKey = "cache.blob"

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
