package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"testing"

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
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("s3cache "), 1<<17) // 1 MiB
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
	p := &flakyProvider{data: data, cut: 300000}
	p.failing.Store(true)
	w := &verifyingWorker{Worker: contentWorker{cs: containerdsnapshot.NewContentStore(cs, "test")}, warnf: func(context.Context, string, ...any) {}}
	remote := &solver.Remote{Descriptors: []ocispecs.Descriptor{desc}, Provider: p}

	err = w.fetch(ctx, remote.Provider, remote.Descriptors)
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
