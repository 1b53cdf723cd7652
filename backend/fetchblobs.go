package backend

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/buildkit/util/pull/pullprogress"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

const (
	// fetchParallelism bounds the ranged GETs of one load in flight.
	fetchParallelism = 4
	// fetchChunk is the largest range one GET reads: a big blob is fetched
	// in chunks by all streams at once, which S3's per-connection
	// throughput would otherwise bound.
	fetchChunk = 8 << 20
	// fetchWindow bounds the chunks fetched but not yet written to the
	// content store, and so the memory of a load: fetchWindow*fetchChunk.
	fetchWindow = 2 * fetchParallelism
)

// rangeReader is a blob reader that reads a range with one bounded
// request and may be read concurrently; the bucket's blobReader is one.
type rangeReader interface {
	readRange(p []byte, off int64) (int, error)
}

// blobFetch is one blob being fetched: its chunks' results, in order.
type blobFetch struct {
	desc      ocispecs.Descriptor
	ra        content.ReaderAt
	chunks    []chan chunkResult
	requested int // chunks whose GET has started
}

type chunkResult struct {
	buf []byte
	err error
}

// fetch copies the missing blobs from provider into the content store,
// which verifies each blob's size and digest as it commits it. Blobs start
// in the order of missing, and each is written in order. A blob another
// load committed meanwhile is no error.
//
// Not BuildKit's contentutil.Copy: it retries a reset or cut body for 7s
// on top of the blob reader's own resuming, which stalls every step of a
// bucket that keeps failing before the step can run instead.
func (w *verifyingWorker) fetch(ctx context.Context, provider content.Provider, missing []ocispecs.Descriptor) error {
	cs := w.ContentStore()
	eg, ctx := errgroup.WithContext(ctx)
	window := make(chan struct{}, fetchWindow)
	streams := make(chan struct{}, fetchParallelism)
	buffers := make(chan []byte, fetchWindow)
	acquire := func(sem chan struct{}) error {
		select {
		case sem <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	buffer := func(n int64) []byte {
		select {
		case b := <-buffers:
			return b[:n]
		default:
			return make([]byte, n, fetchChunk)
		}
	}
	// start opens a blob's reader and starts the writer that takes its
	// chunks in order.
	start := func(desc ocispecs.Descriptor) (*blobFetch, error) {
		// The content store checks the digest as it commits: the blob
		// reader need not hash the bytes a second time.
		ra, err := provider.ReaderAt(withDigestCheckedByConsumer(ctx), desc)
		if err != nil {
			return nil, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		// The blob shows its bytes under the step being loaded, as
		// BuildKit's own pulls do, polled from the content store's ingest
		// until the reader is closed.
		tracked, err := (&pullprogress.ProviderWithProgress{Provider: openedBlob{ra}, Manager: cs}).ReaderAt(ctx, desc)
		if err != nil {
			ra.Close()
			return nil, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		b := &blobFetch{desc: desc, ra: ra}
		for off := int64(0); off < desc.Size || off == 0; off += fetchChunk {
			b.chunks = append(b.chunks, make(chan chunkResult, 1))
		}
		eg.Go(func() error {
			defer tracked.Close()
			err := w.writeBlob(ctx, b, func(buf []byte) {
				select {
				case buffers <- buf:
				default: // the pool is full: let it go
				}
				<-window
			})
			if err != nil {
				return fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
			}
			return nil
		})
		return b, nil
	}
	// request starts the GET of b's next chunk.
	request := func(b *blobFetch) error {
		if err := acquire(window); err != nil {
			return err
		}
		if err := acquire(streams); err != nil {
			<-window
			return err
		}
		ch := b.chunks[b.requested]
		off := int64(b.requested) * fetchChunk
		b.requested++
		buf := buffer(min(fetchChunk, b.desc.Size-off))
		eg.Go(func() error {
			defer func() { <-streams }()
			_, err := readRange(b.ra, buf, off)
			ch <- chunkResult{buf: buf, err: err}
			return nil // the blob's writer reports it
		})
		return nil
	}
	// Up to fetchParallelism blobs take turns, a chunk each: each has its
	// own writer, whose hashing and copying into the content store would
	// bound the load if the blobs went one after another, while a blob
	// fetched alone still gets every stream.
	eg.Go(func() error {
		var active []*blobFetch
		for next := 0; ; {
			for len(active) < fetchParallelism && next < len(missing) {
				b, err := start(missing[next])
				if err != nil {
					return err
				}
				active = append(active, b)
				next++
			}
			if len(active) == 0 {
				return nil
			}
			for i := 0; i < len(active); {
				if err := request(active[i]); err != nil {
					return err
				}
				if active[i].requested == len(active[i].chunks) {
					active = append(active[:i], active[i+1:]...)
				} else {
					i++
				}
			}
		}
	})
	return eg.Wait()
}

// openedBlob is a provider of a blob reader already open.
type openedBlob struct{ ra content.ReaderAt }

func (o openedBlob) ReaderAt(context.Context, ocispecs.Descriptor) (content.ReaderAt, error) {
	return o.ra, nil
}

// readRange fills p from off, with one bounded request where ra can.
func readRange(ra content.ReaderAt, p []byte, off int64) (int, error) {
	if rr, ok := ra.(rangeReader); ok {
		return rr.readRange(p, off)
	}
	n, err := ra.ReadAt(p, off)
	if n == len(p) {
		return n, nil
	}
	return n, err
}

// writeBlob writes b's chunks into the content store as they come and
// commits the blob; done gives back each chunk's buffer and window slot.
func (w *verifyingWorker) writeBlob(ctx context.Context, b *blobFetch, done func([]byte)) (rerr error) {
	cs := w.ContentStore()
	next := 0
	// Every chunk is received, even after a failure, so that its window
	// slot is freed and the other blobs go on until the group cancels.
	defer func() {
		for ; next < len(b.chunks); next++ {
			select {
			case r := <-b.chunks[next]:
				done(r.buf)
			case <-ctx.Done():
				return
			}
		}
	}()
	cw, err := content.OpenWriter(ctx, cs, content.WithRef(remotes.MakeRefKey(ctx, b.desc)), content.WithDescriptor(b.desc))
	if cerrdefs.IsAlreadyExists(err) {
		return nil // another load committed it
	}
	if err != nil {
		return fmt.Errorf("open content writer: %w", err)
	}
	defer cw.Close()
	// A failed fetch may have left part of an ingest: start it afresh.
	if st, err := cw.Status(); err != nil {
		return fmt.Errorf("ingest status: %w", err)
	} else if st.Offset != 0 {
		if err := cw.Truncate(0); err != nil {
			return fmt.Errorf("restart ingest: %w", err)
		}
	}
	for ; next < len(b.chunks); next++ {
		var r chunkResult
		select {
		case r = <-b.chunks[next]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err == nil {
			if _, err := cw.Write(r.buf); err != nil {
				r.err = fmt.Errorf("write to content store: %w", err)
			}
		}
		done(r.buf)
		if r.err != nil {
			next++
			return r.err
		}
	}
	if err := cw.Commit(ctx, b.desc.Size, b.desc.Digest); err != nil && !cerrdefs.IsAlreadyExists(err) {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
