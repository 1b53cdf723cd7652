package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/store"
)

// readRetries is how often a blob read that broke mid-body is resumed from
// where it stopped before the error is returned.
const readRetries = 3

// blobProvider serves cache blobs from the bucket as content.Provider.
type blobProvider struct {
	store  store.Store
	layout store.Layout
}

type digestCheckedKey struct{}

// withDigestCheckedByConsumer marks a read whose consumer checks the blob
// against its digest itself (a content store commit does): the blob
// reader then spares the second pass of hashing.
func withDigestCheckedByConsumer(ctx context.Context) context.Context {
	return context.WithValue(ctx, digestCheckedKey{}, true)
}

func (p *blobProvider) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	r := &blobReader{
		ctx:   ctx,
		store: p.store,
		key:   p.layout.BlobKey(desc.Digest.String()),
		dgst:  desc.Digest,
		size:  desc.Size,
	}
	if checked, _ := ctx.Value(digestCheckedKey{}).(bool); !checked && desc.Digest.Algorithm().Available() {
		r.verifier = desc.Digest.Verifier()
	}
	return r, nil
}

// blobReader reads a blob lazily with ranged GETs, keeping one body open
// for sequential reads. When the blob is read whole from the start, its
// bytes are checked against the digest and a mismatch fails the last read.
type blobReader struct {
	ctx   context.Context
	store store.Store
	key   string
	dgst  digest.Digest
	size  int64

	mu       sync.Mutex
	body     io.ReadCloser
	pos      int64 // offset of the next byte body yields
	verifier digest.Verifier
	verified int64 // bytes fed to verifier, in order from 0
}

func (r *blobReader) Size() int64 { return r.size }

func (r *blobReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeBody()
}

func (r *blobReader) closeBody() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

func (r *blobReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off < 0 {
		return 0, fmt.Errorf("read blob %s: negative offset %d", r.dgst, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := r.size - off; int64(want) > rest {
		want = int(rest)
	}
	n, err := r.read(p[:want], off)
	if err != nil {
		return n, err
	}
	if err := r.verify(p[:n], off); err != nil {
		return n, err
	}
	if want < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// read fills p from off, resuming a broken body where it stopped.
func (r *blobReader) read(p []byte, off int64) (int, error) {
	if r.body != nil && r.pos != off {
		_ = r.closeBody()
	}
	open := func(at int64) (io.Reader, error) {
		if r.body == nil {
			body, err := r.store.Get(r.ctx, r.key, at, -1)
			if err != nil {
				return nil, err
			}
			r.body, r.pos = body, at
		}
		return r.body, nil
	}
	// The body stays open for the next sequential read, unless it broke.
	read := func(n int, err error) {
		r.pos += int64(n)
		if err != nil {
			_ = r.closeBody()
		}
	}
	return r.resume(p, off, open, read)
}

// readRange fills p from off with GETs bounded to p, so each response
// ends where p does and its connection is reused, resuming a body that
// breaks. Unlike ReadAt it keeps no body between calls: ranges of one
// blob may be read concurrently.
func (r *blobReader) readRange(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > r.size {
		return 0, fmt.Errorf("read blob %s: range %d+%d outside its %d bytes", r.dgst, off, len(p), r.size)
	}
	end := off + int64(len(p))
	var body io.ReadCloser
	open := func(at int64) (io.Reader, error) {
		var err error
		body, err = r.store.Get(r.ctx, r.key, at, end-at)
		return body, err
	}
	return r.resume(p, off, open, func(int, error) { _ = body.Close() })
}

// resume fills p from off, reading from the body open gives for an
// offset, and when one breaks opening another where it stopped, up to
// readRetries times. read is told, after each read of a body, how many
// bytes it gave and its error.
func (r *blobReader) resume(p []byte, off int64, open func(at int64) (io.Reader, error), read func(n int, err error)) (int, error) {
	total := 0
	var lastErr error
	for attempt := 0; attempt <= readRetries && total < len(p); attempt++ {
		body, err := open(off + int64(total))
		if err != nil {
			lastErr = err
			if errors.Is(err, store.ErrNotFound) || r.ctx.Err() != nil {
				break
			}
			continue
		}
		n, err := io.ReadFull(body, p[total:])
		total += n
		read(n, err)
		if err != nil {
			lastErr = err
			if r.ctx.Err() != nil {
				break
			}
		}
	}
	return r.result(total, len(p), off, lastErr)
}

// result is a read of want bytes from off that got total: short is an
// error naming where it stopped and why.
func (r *blobReader) result(total, want int, off int64, lastErr error) (int, error) {
	if total < want {
		if lastErr == nil || errors.Is(lastErr, io.EOF) {
			lastErr = io.ErrUnexpectedEOF
		}
		return total, fmt.Errorf("read blob %s at %d: %w", r.dgst, off+int64(total), lastErr)
	}
	return total, nil
}

func (r *blobReader) verify(p []byte, off int64) error {
	if r.verifier == nil || off != r.verified {
		return nil
	}
	_, _ = r.verifier.Write(p)
	r.verified += int64(len(p))
	if r.verified == r.size && !r.verifier.Verified() {
		return fmt.Errorf("read blob %s: content does not match its digest", r.dgst)
	}
	return nil
}
