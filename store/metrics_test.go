package store_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/s3cache/s3cache/internal/testutil/metricstest"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/store"
)

// delta is what a metric moved by between two gatherings.
func delta(before, after metricstest.Families, name string, labels ...string) float64 {
	return after.Value(name, labels...) - before.Value(name, labels...)
}

// Every request is counted by operation and outcome; the bytes of every
// object stored or read, by whether it is a blob, a manifest or neither.
func TestMetricsCountRequestsAndBytes(t *testing.T) {
	srv := miniotest.Shared(t)
	st := newStore(t, testConfig(srv, srv.Bucket(t), ""), smallOptions())
	ctx := testCtx(t)
	blob := "blobs/sha256:" + strings.Repeat("ab", 32)
	big := "blobs/sha256:" + strings.Repeat("cd", 32)
	bigBody := bytes.Repeat([]byte("x"), 6*mib) // two parts of a multipart upload

	before := metricstest.Gather(t)
	for key, body := range map[string][]byte{blob: []byte("abc"), big: bigBody, "manifests/m": []byte("hello"), "elsewhere": []byte("zz")} {
		if err := st.Put(ctx, key, store.BytesBody(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutIf(ctx, "manifests/m", store.BytesBody([]byte("again")), store.NoObject); err == nil {
		t.Fatal("PutIf over an object: no error")
	}
	if _, err := st.Stat(ctx, "blobs/sha256:"+strings.Repeat("ef", 32)); err == nil {
		t.Fatal("Stat of a missing blob: no error")
	}
	if _, _, err := st.ListPage(ctx, "blobs/", "", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadAll(ctx, st, blob, 100); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.ReadAllVersion(ctx, st, "manifests/m", 100); err != nil {
		t.Fatal(err)
	}
	r, err := st.Get(ctx, big, 10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	r.Read(make([]byte, 100)) // abandoned early: only what was read counts
	r.Close()
	after := metricstest.Gather(t)

	const req = "s3cache_s3_requests_total"
	for _, c := range []struct {
		op, outcome string
		want        float64
	}{
		{"PutObject", "ok", 3},
		{"PutObject", "precondition_failed", 1},
		{"CreateMultipartUpload", "ok", 1},
		{"UploadPart", "ok", 2},
		{"CompleteMultipartUpload", "ok", 1},
		{"HeadObject", "not_found", 1},
		{"ListObjectsV2", "ok", 1},
		{"GetObject", "ok", 3},
	} {
		if got := delta(before, after, req, "operation", c.op, "outcome", c.outcome); got != c.want {
			t.Errorf("%s %s requests: %v, want %v", c.op, c.outcome, got, c.want)
		}
		if got := delta(before, after, "s3cache_s3_request_duration_seconds", "operation", c.op, "outcome", c.outcome); got != c.want {
			t.Errorf("%s %s latencies observed: %v, want %v", c.op, c.outcome, got, c.want)
		}
	}
	for _, c := range []struct {
		name, object string
		want         float64
	}{
		{"s3cache_s3_uploaded_bytes_total", "blob", float64(3 + len(bigBody))},
		{"s3cache_s3_uploaded_bytes_total", "manifest", 5},
		{"s3cache_s3_uploaded_bytes_total", "other", 2},
		{"s3cache_s3_downloaded_bytes_total", "blob", 3 + 100},
		{"s3cache_s3_downloaded_bytes_total", "manifest", 5},
	} {
		if got := delta(before, after, c.name, "object", c.object); got != c.want {
			t.Errorf("%s{object=%q}: moved by %v, want %v", c.name, c.object, got, c.want)
		}
	}
}

// A request the SDK retries counts each attempt: the throttled one shows.
func TestMetricsCountEachAttempt(t *testing.T) {
	srv := miniotest.Shared(t)
	proxy := proxytest.New(t, srv.Endpoint)
	opts := smallOptions()
	opts.RetryMaxBackoff = 10 * time.Millisecond
	st := newStore(t, testConfig(srv, srv.Bucket(t), proxy.URL), opts)
	proxy.AddFault(proxytest.SlowDown("PUT", "throttled", 1))
	before := metricstest.Gather(t)
	if err := st.Put(testCtx(t), "throttled", store.BytesBody([]byte("abc"))); err != nil {
		t.Fatal(err)
	}
	after := metricstest.Gather(t)
	for outcome, want := range map[string]float64{"throttled": 1, "ok": 1} {
		if got := delta(before, after, "s3cache_s3_requests_total", "operation", "PutObject", "outcome", outcome); got != want {
			t.Errorf("PutObject %s: %v, want %v", outcome, got, want)
		}
	}
	if got := delta(before, after, "s3cache_s3_uploaded_bytes_total", "object", "other"); got != 3 {
		t.Errorf("bytes uploaded: %v, want 3 (the object's, once)", got)
	}
}
