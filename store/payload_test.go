package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// With the content digest known, a single PUT is signed with it (the
// server checks the bytes, the client hashes nothing) and multipart parts
// go unsigned; without it the SDK hashes the body as before.
func TestPutWithBodyDigest(t *testing.T) {
	srv := miniotest.Shared(t)
	proxy := proxytest.New(t, srv.Endpoint)
	st := newStore(t, testConfig(srv, srv.Bucket(t), proxy.URL), smallOptions())
	ctx := testCtx(t)

	small, large := storetest.Data(1000, 3), storetest.Data(11*mib, 4)
	digestOf := func(b []byte) (string, string) {
		sum := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(sum[:]), hex.EncodeToString(sum[:])
	}
	smallDigest, smallHex := digestOf(small)
	largeDigest, _ := digestOf(large)
	if err := st.Put(ctx, "blobs/"+smallDigest, digested(small, smallDigest)); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "blobs/"+largeDigest, digested(large, largeDigest)); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "manifests/main", store.BytesBody(small)); err != nil {
		t.Fatal(err)
	}
	var sawSmall, sawManifest bool
	parts := 0
	for _, r := range proxy.Requests() {
		if r.Method != http.MethodPut {
			continue
		}
		sha := r.Header.Get("X-Amz-Content-Sha256")
		if r.Header.Get("X-Amz-Trailer") != "" || strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
			t.Errorf("PUT %s?%s streams with trailers or aws-chunked encoding", r.Path, r.Query.Encode())
		}
		switch {
		case r.Query.Has("partNumber"):
			parts++
			if sha != "UNSIGNED-PAYLOAD" {
				t.Errorf("part %s?%s signed with payload hash %q, want UNSIGNED-PAYLOAD", r.Path, r.Query.Encode(), sha)
			}
		case strings.HasSuffix(r.Path, smallHex): // the key, escaped as sent
			sawSmall = true
			if sha != smallHex {
				t.Errorf("single PUT of a blob signed with payload hash %q, want its digest %s", sha, smallHex)
			}
		case strings.HasSuffix(r.Path, "/manifests/main"):
			sawManifest = true
			if sha != smallHex {
				t.Errorf("PUT without a digest signed with payload hash %q, want the body's SHA-256 %s", sha, smallHex)
			}
		}
	}
	if !sawSmall || !sawManifest || parts != 3 {
		t.Fatalf("saw small PUT %v, manifest PUT %v, %d parts; want both and 3 parts", sawSmall, sawManifest, parts)
	}
	for key, want := range map[string][]byte{"blobs/" + smallDigest: small, "blobs/" + largeDigest: large} {
		body, err := st.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %s: %v, %d bytes, equal %v", key, err, len(got), bytes.Equal(got, want))
		}
	}
}

// digested is a body of b said to have digest.
func digested(b []byte, digest string) store.Body {
	body := store.BytesBody(b)
	body.Digest = digest
	return body
}

// The server refuses a single PUT whose bytes do not match the digest it
// was said to have: a damaged local blob is never published under its name.
func TestPutWithWrongContentDigestFails(t *testing.T) {
	srv := miniotest.Shared(t)
	st := newStore(t, testConfig(srv, srv.Bucket(t), ""), smallOptions())
	ctx := testCtx(t)
	data := storetest.Data(1000, 5)
	sum := sha256.Sum256([]byte("other bytes"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if err := st.Put(ctx, "blobs/"+digest, digested(data, digest)); err == nil {
		t.Fatal("PUT of bytes that do not match the digest succeeded")
	}
	if _, err := st.Stat(ctx, "blobs/"+digest); err == nil {
		t.Fatal("the refused blob exists")
	}
}
