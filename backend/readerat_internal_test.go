package backend

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// The blob reader checks a blob read whole against its digest, unless its
// consumer says it checks it itself (a content store commit does).
func TestBlobReaderDigestCheck(t *testing.T) {
	ctx := context.Background()
	want := []byte("the blob's own bytes")
	wrong := []byte("other bytes, as long")
	desc := ocispecs.Descriptor{Digest: digest.FromBytes(want), Size: int64(len(wrong))}
	m := storetest.NewMemory()
	layout := store.Layout{BlobsPrefix: "blobs/"}
	if err := m.Put(ctx, layout.BlobKey(desc.Digest.String()), store.BytesBody(wrong)); err != nil {
		t.Fatal(err)
	}
	p := &blobProvider{store: m, layout: layout}
	read := func(ctx context.Context) ([]byte, error) {
		ra, err := p.ReaderAt(ctx, desc)
		if err != nil {
			return nil, err
		}
		defer ra.Close()
		return io.ReadAll(content.NewReader(ra))
	}
	if _, err := read(ctx); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("read of wrong bytes: %v, want a digest mismatch", err)
	}
	got, err := read(withDigestCheckedByConsumer(ctx))
	if err != nil || !bytes.Equal(got, wrong) {
		t.Fatalf("read for a consumer that checks the digest: %q, %v; want the bytes as stored", got, err)
	}
}
