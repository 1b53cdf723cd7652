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
