package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

func TestConformance(t *testing.T) {
	srv := miniotest.Shared(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, testConfig(srv, srv.Bucket(t), ""), smallOptions())
	}, storetest.Config{LargeSize: 12*mib + 123})
}

// hostRecorder is an HTTP client that notes every host it is asked to reach.
type hostRecorder struct {
	client *http.Client
	mu     sync.Mutex
	hosts  map[string]int
}

func (h *hostRecorder) Do(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	if h.hosts == nil {
		h.hosts = map[string]int{}
	}
	h.hosts[r.URL.Host]++
	h.mu.Unlock()
	return h.client.Do(r)
}

// PUTs carry no checksum headers, trailers nor aws-chunked bodies, which
// MinIO, GCS and R2 variously reject; over TLS too, where the SDK would
// otherwise stream with trailing checksums.
func TestRequestHygiene(t *testing.T) {
	t.Run("http", func(t *testing.T) { testRequestHygiene(t, false) })
	t.Run("https", func(t *testing.T) { testRequestHygiene(t, true) })
}

func testRequestHygiene(t *testing.T, tls bool) {
	srv := miniotest.Shared(t)
	proxy := proxytest.New(t, srv.Endpoint)
	if tls {
		proxy = proxytest.NewTLS(t, srv.Endpoint)
	}
	hosts := &hostRecorder{client: proxy.Client()}
	opts := smallOptions()
	opts.HTTPClient = hosts
	st := newStore(t, testConfig(srv, srv.Bucket(t), proxy.URL), opts)
	ctx := testCtx(t)

	small, large := storetest.Data(1000, 1), storetest.Data(11*mib, 2)
	if err := st.Put(ctx, "small", store.BytesBody(small)); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "large", store.BytesBody(large)); err != nil {
		t.Fatal(err)
	}

	var puts, parts int
	for _, r := range proxy.Requests() {
		if r.Method != http.MethodPut {
			continue
		}
		puts++
		if r.Query.Has("partNumber") {
			parts++
		}
		for _, h := range []string{"X-Amz-Sdk-Checksum-Algorithm", "X-Amz-Trailer", "X-Amz-Decoded-Content-Length"} {
			if v := r.Header.Values(h); len(v) > 0 {
				t.Errorf("PUT %s?%s has %s: %q", r.Path, r.Query.Encode(), h, v)
			}
		}
		for h, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(h), "x-amz-checksum-") {
				t.Errorf("PUT %s?%s has %s: %q", r.Path, r.Query.Encode(), h, v)
			}
		}
		if ce := r.Header.Get("Content-Encoding"); strings.Contains(ce, "aws-chunked") {
			t.Errorf("PUT %s?%s has Content-Encoding %q", r.Path, r.Query.Encode(), ce)
		}
		if sha := r.Header.Get("X-Amz-Content-Sha256"); strings.HasPrefix(sha, "STREAMING-") {
			t.Errorf("PUT %s?%s has a streaming payload: X-Amz-Content-Sha256 %q", r.Path, r.Query.Encode(), sha)
		}
	}
	if puts != 4 || parts != 3 {
		t.Errorf("saw %d PUTs of which %d parts, want 4 and 3 (one PutObject, three UploadParts)", puts, parts)
	}
	proxyHost := strings.TrimPrefix(strings.TrimPrefix(proxy.URL, "http://"), "https://")
	if len(hosts.hosts) != 1 || hosts.hosts[proxyHost] == 0 {
		t.Errorf("client reached %v, want only the proxy %s", hosts.hosts, proxyHost)
	}
}

// An object a little over one part goes as parts of equal size, so that two
// streams carry it rather than one stream all but a sliver of it.
func TestPartsShareTheBytesEvenly(t *testing.T) {
	srv := miniotest.Shared(t)
	proxy := proxytest.New(t, srv.Endpoint)
	opts := store.Options{MultipartThreshold: 5 * mib, PartSize: 10 * mib}
	st := newStore(t, testConfig(srv, srv.Bucket(t), proxy.URL), opts)
	ctx := testCtx(t)

	data := storetest.Data(12*mib+1, 6)
	if err := st.Put(ctx, "blob", store.BytesBody(data)); err != nil {
		t.Fatal(err)
	}
	var sizes []string
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodPut && r.Query.Has("partNumber") {
			sizes = append(sizes, r.Header.Get("Content-Length"))
		}
	}
	slices.Sort(sizes)
	want := []string{"6291456", "6291457"} // 6 MiB and 6 MiB + 1, not 10 MiB and 2 MiB + 1
	if !slices.Equal(sizes, want) {
		t.Errorf("part sizes %v, want %v", sizes, want)
	}
	got, err := st.Get(ctx, "blob", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	back, err := io.ReadAll(got)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes (err %v), want the %d bytes put", len(back), err, len(data))
	}
}

func TestTouchMultipartCopy(t *testing.T) {
	srv := miniotest.Shared(t)
	proxy := proxytest.New(t, srv.Endpoint)
	opts := smallOptions()
	opts.CopyThreshold, opts.CopyPartSize = 6*mib, 5*mib
	st := newStore(t, testConfig(srv, srv.Bucket(t), proxy.URL), opts)
	ctx := testCtx(t)

	key := st.Layout().BlobKey("sha256:0123456789abcdef")
	data := storetest.Data(12*mib+5, 3)
	if err := st.Put(ctx, key, store.BytesBody(data)); err != nil {
		t.Fatal(err)
	}
	before, err := st.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	proxy.Reset()
	if err := st.Touch(ctx, key, before.Size); err != nil {
		t.Fatalf("touch: %v", err)
	}
	var ranges []string
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodPut && r.Query.Has("partNumber") {
			if r.Header.Get("X-Amz-Copy-Source") == "" {
				t.Errorf("part PUT without X-Amz-Copy-Source: %v", r.Header)
			}
			ranges = append(ranges, r.Header.Get("X-Amz-Copy-Source-Range"))
		}
	}
	if len(ranges) != 3 {
		t.Errorf("UploadPartCopy ranges %q, want 3", ranges)
	}
	after, err := st.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !after.LastModified.After(before.LastModified) || after.Size != before.Size {
		t.Errorf("after touch %+v, before %+v", after, before)
	}
	got, err := store.ReadAll(ctx, st, key, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes changed by the multipart touch")
	}
}

// Keys with characters that need escaping in x-amz-copy-source survive a touch.
func TestTouchOddKeys(t *testing.T) {
	srv := miniotest.Shared(t)
	st := newStore(t, testConfig(srv, srv.Bucket(t), ""), smallOptions())
	ctx := testCtx(t)
	for _, key := range []string{
		"blobs/sha256:abc",
		"dir with space/a+b=c&d?e#f",
		"pct%20literal/ü/日本",
		"trailing/",
	} {
		data := []byte("data of " + key)
		if err := st.Put(ctx, key, store.BytesBody(data)); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		if err := st.Touch(ctx, key, int64(len(data))); err != nil {
			t.Fatalf("touch %q: %v", key, err)
		}
		got, err := store.ReadAll(ctx, st, key, 1000)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %q after touch = %q, %v", key, got, err)
		}
	}
}

// A failed multipart upload leaves no upload behind.
func TestFailedMultipartAborts(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.Bucket(t)
	st := newStore(t, testConfig(srv, bucket, ""), smallOptions())
	ctx := testCtx(t)

	size := int64(16 * mib)
	failing := failAfter{bytes.NewReader(storetest.Data(size, 4)), 11 * mib}
	err := st.Put(ctx, "failed", store.NewBody(failing, size))
	if err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("put from a failing reader: err = %v, want an error naming the key", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	slow := &cancelAt{r: bytes.NewReader(storetest.Data(size, 5)), at: 6 * mib, cancel: cancel}
	if err := st.Put(cctx, "canceled", store.NewBody(slow, size)); !errors.Is(err, context.Canceled) {
		t.Fatalf("put canceled midway: err = %v, want context.Canceled", err)
	}

	out, err := srv.Client("").ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range out.Uploads {
		t.Errorf("upload left behind: %s %s", aws.ToString(u.Key), aws.ToString(u.UploadId))
	}
}

type failAfter struct {
	r  io.ReaderAt
	at int64
}

func (f failAfter) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.at {
		return 0, errors.New("disk on fire")
	}
	return f.r.ReadAt(p, off)
}

// cancelAt cancels the context when a read reaches offset at.
type cancelAt struct {
	r      io.ReaderAt
	at     int64
	cancel context.CancelFunc
}

func (c *cancelAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > c.at {
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}

func TestErrorsNameKeyNotSecret(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.Bucket(t)
	ctx := testCtx(t)
	check := func(what string, err error, key, secret string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error does not name %q: %v", what, key, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error contains the secret: %v", what, err)
		}
	}
	st := newStore(t, testConfig(srv, bucket, ""), smallOptions())
	_, err := st.Stat(ctx, "missing/key")
	check("stat", err, "missing/key", miniotest.SecretKey)
	check("touch", st.Touch(ctx, "missing/touched", 3), "missing/touched", miniotest.SecretKey)

	cfg := testConfig(srv, bucket, "")
	cfg.SecretAccessKey = "wrong-secret-do-not-print"
	cfg.SessionToken = "token-do-not-print"
	bad := newStore(t, cfg, smallOptions())
	for _, secret := range []string{cfg.SecretAccessKey, cfg.SessionToken} {
		check("put with a wrong secret", bad.Put(ctx, "k/put", store.BytesBody([]byte("x"))), "k/put", secret)
		_, err = bad.Get(ctx, "k/get", 0, -1)
		check("get with a wrong secret", err, "k/get", secret)
		check("list with a wrong secret", bad.List(ctx, "k/list", func(store.Object) error { return nil }), "k/list", secret)
	}
}

func TestMissingBucket(t *testing.T) {
	srv := miniotest.Shared(t)
	st := newStore(t, testConfig(srv, "no-such-bucket-here", ""), smallOptions())
	ctx := testCtx(t)
	err := st.Put(ctx, "k", store.BytesBody([]byte("x")))
	if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, store.ErrBucketNotFound) || !strings.Contains(err.Error(), `bucket "no-such-bucket-here" does not exist`) {
		t.Errorf("put: err = %v, want ErrNotFound and ErrBucketNotFound naming the bucket", err)
	}
	_, err = st.Get(ctx, "k", 0, -1)
	if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, store.ErrBucketNotFound) {
		t.Errorf("get: err = %v, want ErrNotFound and ErrBucketNotFound", err)
	}
	if _, err := st.Stat(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stat: err = %v, want ErrNotFound", err)
	}
	if err := st.List(ctx, "", func(store.Object) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("list: err = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, []string{"k"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete: err = %v, want ErrNotFound", err)
	}
}

func TestReadAllLimit(t *testing.T) {
	srv := miniotest.Shared(t)
	st := newStore(t, testConfig(srv, srv.Bucket(t), ""), smallOptions())
	ctx := testCtx(t)
	data := storetest.Data(100, 6)
	if err := st.Put(ctx, "manifests/m", store.NewBody(bytes.NewReader(data), 100)); err != nil {
		t.Fatal(err)
	}
	if got, err := store.ReadAll(ctx, st, "manifests/m", 100); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read at the limit: %d bytes, %v", len(got), err)
	}
	_, err := store.ReadAll(ctx, st, "manifests/m", 99)
	if err == nil || !strings.Contains(err.Error(), "manifests/m") || !strings.Contains(err.Error(), "99") {
		t.Fatalf("read over the limit: err = %v, want one naming the key and the limit", err)
	}
	if _, err := store.ReadAll(ctx, st, "manifests/none", 99); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read of a missing key: err = %v, want ErrNotFound", err)
	}
}

func TestNewRejects(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]spec.Config{
		"no bucket":          {Region: "us-east-1"},
		"key without secret": {Region: "us-east-1", Bucket: "b", AccessKeyID: "AKIA"},
		"bad retry mode":     {Region: "us-east-1", Bucket: "b", RetryMode: "sometimes"},
	} {
		if _, err := store.New(ctx, cfg, store.Options{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	cfg := spec.Config{Region: "us-east-1", Bucket: "b", RetryMode: "adaptive", RetryMaxAttempts: 7, DisableAcceptEncoding: true,
		EndpointURL: (&url.URL{Scheme: "http", Host: "127.0.0.1:1"}).String()}
	if _, err := store.New(ctx, cfg, store.Options{}); err != nil {
		t.Errorf("New(%+v): %v", cfg, err)
	}
}

// disable_accept_encoding drops the SDK's signed "Accept-Encoding: identity",
// which GCS rewrites and then fails the signature of.
func TestDisableAcceptEncoding(t *testing.T) {
	srv := miniotest.Shared(t)
	for _, disable := range []bool{false, true} {
		proxy := proxytest.New(t, srv.Endpoint)
		cfg := testConfig(srv, srv.Bucket(t), proxy.URL)
		cfg.DisableAcceptEncoding = disable
		st := newStore(t, cfg, smallOptions())
		ctx := testCtx(t)
		if err := st.Put(ctx, "k", store.BytesBody([]byte("abc"))); err != nil {
			t.Fatal(err)
		}
		if got, err := store.ReadAll(ctx, st, "k", 3); err != nil || string(got) != "abc" {
			t.Fatalf("disable=%v: read %q, %v", disable, got, err)
		}
		for _, r := range proxy.Requests() {
			if identity := r.Header.Get("Accept-Encoding") == "identity"; identity == disable {
				t.Errorf("disable=%v: %s %s sent Accept-Encoding %q", disable, r.Method, r.Path, r.Header.Get("Accept-Encoding"))
			}
		}
	}
}

// TestListRefusesAnIncompleteListing checks that a page marked truncated
// without a continuation token, or a token repeated from an earlier page,
// fails the listing instead of ending it short or looping: prune would take
// the objects it never saw for absent.
func TestListRefusesAnIncompleteListing(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.Bucket(t)
	direct := newStore(t, testConfig(srv, bucket, ""), smallOptions())
	ctx := testCtx(t)
	var want []string
	for i := range 7 {
		key := fmt.Sprintf("m/%d", i)
		want = append(want, key)
		if err := direct.Put(ctx, key, store.BytesBody([]byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	isList := func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" }
	tokenRE := regexp.MustCompile(`<NextContinuationToken>[^<]*</NextContinuationToken>`)

	tests := []struct {
		name    string
		rewrite func(first *string) func(*http.Request, []byte) []byte
		wantErr string
	}{
		{"truncated page without a token", func(*string) func(*http.Request, []byte) []byte {
			return func(r *http.Request, body []byte) []byte {
				if r.URL.Query().Get("continuation-token") == "" {
					return body // the first page passes
				}
				return tokenRE.ReplaceAll(body, nil)
			}
		}, "truncated page without a continuation token"},
		{"token of an earlier page again", func(first *string) func(*http.Request, []byte) []byte {
			return func(r *http.Request, body []byte) []byte {
				if r.URL.Query().Get("continuation-token") == "" {
					*first = string(tokenRE.Find(body))
					return body
				}
				// Every later page sends the client back to the second.
				return tokenRE.ReplaceAll(body, []byte(*first))
			}
		}, "repeats the continuation token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := proxytest.New(t, srv.Endpoint)
			opts := smallOptions()
			opts.ListPageSize = 2
			st := newStore(t, testConfig(srv, bucket, proxy.URL), opts)
			var first string
			proxy.AddFault(proxytest.Fault{Kind: proxytest.Rewrite, Match: isList, Rewrite: tt.rewrite(&first)})
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			var got []string
			err := st.List(ctx, "m/", func(o store.Object) error {
				got = append(got, o.Key)
				if len(got) > 100 {
					return errors.New("listed more than 100 objects of 7: the listing loops")
				}
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "m/") {
				t.Fatalf("list: %v after %d objects; want an error naming the prefix and %q", err, len(got), tt.wantErr)
			}
		})
	}

	// The same pages, untouched, list everything.
	opts := smallOptions()
	opts.ListPageSize = 2
	var got []string
	if err := newStore(t, testConfig(srv, bucket, ""), opts).List(ctx, "m/", func(o store.Object) error {
		got = append(got, o.Key)
		return nil
	}); err != nil || !slices.Equal(got, want) {
		t.Fatalf("list in pages of 2: %v, %v; want %v", got, err, want)
	}
}
