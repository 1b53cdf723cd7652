package backend

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/buildkit/util/bklog"
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

// blobFetch is one blob being fetched. Its chunks are requested one by
// one, each result channel passed to the blob's writer in order: a size no
// bucket object has costs one failed GET, never a chunk list that size.
type blobFetch struct {
	desc      ocispecs.Descriptor
	ra        content.ReaderAt
	chunks    int64                 // chunks in the blob
	requested int64                 // chunks whose GET has started
	order     chan chan chunkResult // the requested chunks, in order; closed after the last
	stopped   atomic.Bool           // the writer is done: request no more
}

// chunkCount is the number of chunks of a blob of size bytes: one at least,
// for an empty blob's commit.
func chunkCount(size int64) int64 {
	n := size / fetchChunk
	if size%fetchChunk != 0 || n == 0 {
		n++
	}
	return n
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
	eg, ctx := errgroup.WithContext(ctx)
	f := &fetcher{
		cs:       w.ContentStore(),
		provider: provider,
		ctx:      ctx,
		eg:       eg,
		window:   make(chan struct{}, fetchWindow),
		streams:  make(chan struct{}, fetchParallelism),
		buffers:  make(chan []byte, fetchWindow),
	}
	eg.Go(func() error { return f.run(missing) })
	return eg.Wait()
}

// fetcher is one call of fetch. It holds the call's context, that of its
// errgroup, which every goroutine of the fetch shares and which ends with
// the call.
type fetcher struct {
	cs       content.Store
	provider content.Provider
	ctx      context.Context
	eg       *errgroup.Group
	window   chan struct{} // a slot per chunk requested and not yet written
	streams  chan struct{} // a slot per GET in flight
	buffers  chan []byte   // chunk buffers written and free again
}

// run lets up to fetchParallelism blobs take turns, a chunk each: each has
// its own writer, whose hashing and copying into the content store would
// bound the load if the blobs went one after another, while a blob fetched
// alone still gets every stream.
func (f *fetcher) run(missing []ocispecs.Descriptor) error {
	var active []*blobFetch
	for next := 0; ; {
		for len(active) < fetchParallelism && next < len(missing) {
			b, err := f.start(missing[next])
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
			b := active[i]
			if !b.stopped.Load() {
				if err := f.request(b); err != nil {
					return err
				}
			}
			if b.stopped.Load() || b.requested == b.chunks {
				close(b.order)
				active = append(active[:i], active[i+1:]...)
			} else {
				i++
			}
		}
	}
}

func (f *fetcher) acquire(sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

// buffer is a chunk buffer of n bytes, a written chunk's when one is free.
func (f *fetcher) buffer(n int64) []byte {
	select {
	case b := <-f.buffers:
		return b[:n]
	default:
		return make([]byte, n, fetchChunk)
	}
}

// written gives back a written chunk's buffer and window slot.
func (f *fetcher) written(buf []byte) {
	select {
	case f.buffers <- buf:
	default: // the pool is full: let it go
	}
	<-f.window
}

// start opens a blob's reader and starts the writer that takes its chunks
// in order.
func (f *fetcher) start(desc ocispecs.Descriptor) (*blobFetch, error) {
	if desc.Size < 0 {
		// The importer drops such layers; no descriptor may make a buffer
		// of negative length.
		return nil, fmt.Errorf("fetch blob %s: invalid size %d", desc.Digest, desc.Size)
	}
	if err := desc.Digest.Validate(); err != nil {
		// The content store checks a commit against the digest only when
		// there is one: without, any bytes would do.
		return nil, fmt.Errorf("fetch blob %q: %w", desc.Digest, err)
	}
	// The content store checks the digest as it commits: the blob reader
	// need not hash the bytes a second time.
	ra, err := f.provider.ReaderAt(withDigestCheckedByConsumer(f.ctx), desc)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
	// The blob shows its bytes under the step being loaded, as BuildKit's
	// own pulls do, polled from the content store's ingest until the
	// reader is closed.
	tracked, err := (&pullprogress.ProviderWithProgress{Provider: openedBlob{ra}, Manager: f.cs}).ReaderAt(f.ctx, desc)
	if err != nil {
		ra.Close()
		return nil, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
	// Requested chunks not yet written hold a window slot each, so order
	// never holds more than fetchWindow.
	b := &blobFetch{desc: desc, ra: ra, chunks: chunkCount(desc.Size), order: make(chan chan chunkResult, fetchWindow)}
	f.eg.Go(func() error {
		defer tracked.Close()
		if err := f.writeBlob(b); err != nil {
			return fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		return nil
	})
	return b, nil
}

// request starts the GET of b's next chunk.
func (f *fetcher) request(b *blobFetch) error {
	if err := f.acquire(f.window); err != nil {
		return err
	}
	if err := f.acquire(f.streams); err != nil {
		<-f.window
		return err
	}
	ch := make(chan chunkResult, 1)
	off := b.requested * fetchChunk
	b.requested++
	b.order <- ch
	buf := f.buffer(min(fetchChunk, b.desc.Size-off))
	f.eg.Go(func() error {
		defer func() { <-f.streams }()
		_, err := readRange(b.ra, buf, off)
		ch <- chunkResult{buf: buf, err: err}
		return nil // the blob's writer reports it
	})
	return nil
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
// commits the blob, giving back each chunk's buffer and window slot.
func (f *fetcher) writeBlob(b *blobFetch) (rerr error) {
	ctx, cs, done := f.ctx, f.cs, f.written
	// Done early (failed, or the blob committed by another load), the
	// writer stops the blob's requests and receives those already made,
	// so that their window slots go to the other blobs.
	defer func() {
		b.stopped.Store(true)
		for {
			select {
			case ch, ok := <-b.order:
				if !ok {
					return
				}
				select {
				case r := <-ch:
					done(r.buf)
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	ref := remotes.MakeRefKey(ctx, b.desc)
	cw, err := content.OpenWriter(ctx, cs, content.WithRef(ref), content.WithDescriptor(b.desc))
	if cerrdefs.IsAlreadyExists(err) {
		return nil // another load committed it
	}
	if err != nil {
		return fmt.Errorf("open content writer: %w", err)
	}
	defer func() {
		// A failed fetch's partial blob would stay on the engine's disk:
		// abort the ingest, while the writer still holds its ref so that
		// no other load's ingest of the blob is removed.
		if rerr != nil {
			if err := cs.Abort(context.WithoutCancel(ctx), ref); err != nil && !cerrdefs.IsNotFound(err) {
				bklog.G(ctx).Debugf("s3 cache import: abort ingest of blob %s: %v", b.desc.Digest, err)
			}
		}
		cw.Close()
	}()
	// A fetch cut off before it could abort (a crash) may have left part
	// of an ingest: start it afresh.
	if st, err := cw.Status(); err != nil {
		return fmt.Errorf("ingest status: %w", err)
	} else if st.Offset != 0 {
		if err := cw.Truncate(0); err != nil {
			return fmt.Errorf("restart ingest: %w", err)
		}
	}
	for next := int64(0); next < b.chunks; next++ {
		var r chunkResult
		select {
		case ch := <-b.order:
			select {
			case r = <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
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
			return r.err
		}
	}
	if err := cw.Commit(ctx, b.desc.Size, b.desc.Digest); err != nil && !cerrdefs.IsAlreadyExists(err) {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
