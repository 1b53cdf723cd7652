package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/leaseutil"
	"github.com/moby/buildkit/worker"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// fetchParallelism bounds the blobs of one cache result fetched at once.
const fetchParallelism = 4

// verifyingWorker fetches a cache result's blobs into the worker's content
// store, where their digests are verified, before BuildKit loads the
// result. A blob that is missing, damaged or unreadable then fails the
// cache load, which BuildKit answers by running the step instead: a broken
// bucket costs a cache miss, never a failed build or wrong bytes. Lazy
// loading would defer the read until the layer is unpacked, where a failure
// fails the build.
type verifyingWorker struct {
	worker.Worker
	warnf func(ctx context.Context, format string, args ...any)
}

func (w *verifyingWorker) FromRemote(ctx context.Context, remote *solver.Remote) (cache.ImmutableRef, error) {
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
	return w.Worker.FromRemote(ctx, remote)
}

// missing are the remote's blobs the content store lacks.
func (w *verifyingWorker) missing(ctx context.Context, remote *solver.Remote) ([]ocispecs.Descriptor, error) {
	cs := w.ContentStore()
	var missing []ocispecs.Descriptor
	for _, desc := range remote.Descriptors {
		if _, err := cs.Info(ctx, desc.Digest); err == nil {
			continue
		} else if !errors.Is(err, cerrdefs.ErrNotFound) {
			return nil, fmt.Errorf("look up blob %s locally: %w", desc.Digest, err)
		}
		missing = append(missing, desc)
	}
	return missing, nil
}

// fetch copies the missing blobs from provider into the content store; a
// blob another load committed meanwhile is no error for WriteBlob.
func (w *verifyingWorker) fetch(ctx context.Context, provider content.Provider, missing []ocispecs.Descriptor) error {
	cs := w.ContentStore()
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(fetchParallelism)
	for _, desc := range missing {
		eg.Go(func() error {
			// The content store checks the digest as it commits: the blob
			// reader need not hash the bytes a second time.
			ra, err := provider.ReaderAt(withDigestCheckedByConsumer(ctx), desc)
			if err != nil {
				return fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
			}
			defer ra.Close()
			// WriteBlob verifies size and digest when it commits the content,
			// and resumes an ingest a failed fetch left. Not BuildKit's
			// contentutil.Copy: it retries a reset or cut body for 7s on top
			// of the blob reader's own resuming, which stalls every step of
			// a bucket that keeps failing before the step can run instead.
			if err := content.WriteBlob(ctx, cs, "s3cache-import-"+desc.Digest.String(), content.NewReader(ra), desc); err != nil {
				return fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
			}
			return nil
		})
	}
	return eg.Wait()
}
