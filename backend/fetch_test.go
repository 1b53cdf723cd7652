package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/worker"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// flakyProvider serves data, but its readers break off with a connection
// reset after cut bytes, every time while failing is set.
type flakyProvider struct {
	data    []byte
	cut     int64
	failing atomic.Bool
	opened  atomic.Int64
}

func (p *flakyProvider) ReaderAt(_ context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	p.opened.Add(1)
	return &flakyReaderAt{p: p}, nil
}

func (p *flakyProvider) Info(context.Context, digest.Digest) (content.Info, error) {
	return content.Info{}, errors.New("not used by fetch")
}

type flakyReaderAt struct{ p *flakyProvider }

func (r *flakyReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if r.p.failing.Load() && off+int64(len(b)) > r.p.cut {
		n := 0
		if off < r.p.cut {
			n = copy(b, r.p.data[off:r.p.cut])
		}
		return n, fmt.Errorf("read blob at %d: %w", off+int64(n), syscall.ECONNRESET)
	}
	if off >= int64(len(r.p.data)) {
		return 0, io.EOF
	}
	n := copy(b, r.p.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (r *flakyReaderAt) Size() int64  { return int64(len(r.p.data)) }
func (r *flakyReaderAt) Close() error { return nil }

// A blob whose reads keep breaking fails its fetch at once (the blob
// reader has already resumed what it could), without BuildKit's extra
// retries and their sleeps, so the step runs instead without delay; a
// later fetch resumes the ingest and commits the verified blob.
func TestFetchFailsAtOnceAndResumesLater(t *testing.T) {
	ctx := context.Background()
	cs, w := newFetchWorker(t)
	data := bytes.Repeat([]byte("s3cache "), 1<<17) // 1 MiB
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
	p := &flakyProvider{data: data, cut: 300000}
	p.failing.Store(true)
	remote := &solver.Remote{Descriptors: []ocispecs.Descriptor{desc}, Provider: p}

	err := w.fetch(ctx, remote.Provider, remote.Descriptors)
	if err == nil || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("fetch through a reader that keeps breaking: err = %v, want the connection reset", err)
	}
	if n := p.opened.Load(); n != 1 {
		t.Fatalf("the blob was opened %d times for one fetch, want 1: something retried on top of the blob reader", n)
	}
	if _, err := cs.Info(ctx, desc.Digest); err == nil {
		t.Fatalf("a blob that could not be read whole was committed")
	}

	p.failing.Store(false)
	if err := w.fetch(ctx, remote.Provider, remote.Descriptors); err != nil {
		t.Fatalf("fetch once the reader works: %v", err)
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatalf("fetched blob not in the content store: %v", err)
	}
	defer ra.Close()
	got, err := io.ReadAll(content.NewReader(ra))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched blob: %d bytes, %v; want the %d bytes served", len(got), err, len(data))
	}
}

// contentWorker is a worker of which fetch uses only the content store.
type contentWorker struct {
	worker.Worker
	cs *containerdsnapshot.Store
}

func (w contentWorker) ContentStore() *containerdsnapshot.Store { return w.cs }

// newFetchWorker is a fetching worker over a fresh local content store.
func newFetchWorker(t *testing.T) (content.Store, *verifyingWorker) {
	t.Helper()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cs, &verifyingWorker{Worker: contentWorker{cs: containerdsnapshot.NewContentStore(cs, "test")}, warnf: func(context.Context, string, ...any) {}}
}

// memProvider serves blobs from memory and counts the bytes read.
type memProvider struct {
	blobs map[digest.Digest][]byte
	read  atomic.Int64
}

func (p *memProvider) ReaderAt(_ context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	b, ok := p.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("no blob %s", desc.Digest)
	}
	return &memReaderAt{b: b, p: p}, nil
}

func (p *memProvider) Info(context.Context, digest.Digest) (content.Info, error) {
	return content.Info{}, errors.New("not used by fetch")
}

type memReaderAt struct {
	b []byte
	p *memProvider
}

func (r *memReaderAt) ReadAt(b []byte, off int64) (int, error) {
	// Reads that take varying time finish out of order, as GETs do.
	time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(b, r.b[off:])
	r.p.read.Add(int64(n))
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (r *memReaderAt) Size() int64  { return int64(len(r.b)) }
func (r *memReaderAt) Close() error { return nil }

// Several blobs of many chunks each, and small ones between them, all land
// whole and verified, with each byte read once, however their chunks'
// reads finish out of order.
func TestFetchManyChunkedBlobsInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, w := newFetchWorker(t)
	p := &memProvider{blobs: map[digest.Digest][]byte{}}
	var descs []ocispecs.Descriptor
	var total int64
	for i, size := range []int{fetchChunk*3 + 17, 100, fetchChunk * 4, 0, fetchChunk*4 - 1, 5000, fetchChunk*4 + 1, fetchChunk * 3} {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i*31 + j*7)
		}
		desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(size)}
		if p.blobs[desc.Digest] != nil {
			continue
		}
		p.blobs[desc.Digest] = data
		descs = append(descs, desc)
		total += int64(size)
	}
	if err := w.fetch(ctx, p, descs); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for _, desc := range descs {
		ra, err := cs.ReaderAt(ctx, desc)
		if err != nil {
			t.Fatalf("blob %s not in the content store: %v", desc.Digest, err)
		}
		got, err := io.ReadAll(content.NewReader(ra))
		ra.Close()
		if err != nil || !bytes.Equal(got, p.blobs[desc.Digest]) {
			t.Fatalf("blob %s: %d bytes, %v; want its %d bytes", desc.Digest, len(got), err, desc.Size)
		}
	}
	if n := p.read.Load(); n != total {
		t.Fatalf("%d bytes read for %d bytes of blobs", n, total)
	}
}

// orderedProvider serves blobs from memory and records the order in which
// ranges are requested.
type orderedProvider struct {
	memProvider
	mu       sync.Mutex
	requests []digest.Digest
}

func (p *orderedProvider) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	ra, err := p.memProvider.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &orderedReaderAt{ReaderAt: ra, p: p, dgst: desc.Digest}, nil
}

type orderedReaderAt struct {
	content.ReaderAt
	p    *orderedProvider
	dgst digest.Digest
}

func (r *orderedReaderAt) ReadAt(b []byte, off int64) (int, error) {
	r.p.mu.Lock()
	r.p.requests = append(r.p.requests, r.dgst)
	r.p.mu.Unlock()
	return r.ReaderAt.ReadAt(b, off)
}

// Big blobs download side by side, as BuildKit's pulls show them, each
// hashed and written by its own writer, rather than one after another.
func TestFetchBigBlobsSideBySide(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, w := newFetchWorker(t)
	p := &orderedProvider{memProvider: memProvider{blobs: map[digest.Digest][]byte{}}}
	var descs []ocispecs.Descriptor
	for i := range 3 {
		data := bytes.Repeat([]byte{byte(i + 1)}, fetchChunk*4)
		desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
		p.blobs[desc.Digest] = data
		descs = append(descs, desc)
	}
	if err := w.fetch(ctx, p, descs); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	// One blob after another, the third would wait for the 8 ranges of the
	// first two.
	if early := p.requests[:2*fetchParallelism]; !slices.Contains(early, descs[2].Digest) {
		order := make([]int, len(p.requests))
		for i, d := range p.requests {
			order[i] = slices.IndexFunc(descs, func(desc ocispecs.Descriptor) bool { return desc.Digest == d }) + 1
		}
		t.Fatalf("ranges requested for blobs %v: the third blob waited for the others", order)
	}
	for _, desc := range descs {
		if _, err := cs.Info(ctx, desc.Digest); err != nil {
			t.Fatalf("blob %s not committed: %v", desc.Digest, err)
		}
	}
}
