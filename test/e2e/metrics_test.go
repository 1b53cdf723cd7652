package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3cache/s3cache/internal/testutil/metricstest"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// freeAddr is a loopback host:port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func requireStatus(t *testing.T, url string, want int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d", url, resp.Status, want)
	}
}

// sizes are the count and total size of the objects under prefix.
func (b bucket) sizes(t *testing.T, prefix string) (n int, total int64) {
	t.Helper()
	p := s3.NewListObjectsV2Paginator(b.srv.Client(""), &s3.ListObjectsV2Input{Bucket: &b.name, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			n++
			total += aws.ToInt64(o.Size)
		}
	}
	return n, total
}

// The daemon's --metrics-addr: /healthz, and /readyz 200 once the engine
// answers a worker list (that it is 503 before is a unit test of
// internal/cli); a build's export and import show in s3cache's counters,
// the bytes uploaded being exactly the blobs in the bucket; BuildKit's own
// metrics are there too, and the same on --debugaddr; no label value
// names the bucket, the cache or a credential.
func TestDaemonMetrics(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	metricsAddr, debugAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, nil, s3cacheBin, "daemon", "--metrics-addr", metricsAddr, "--debugaddr", debugAddr)
	// startDaemon returns once the daemon has listed its workers over gRPC.
	requireStatus(t, "http://"+metricsAddr+"/readyz", http.StatusOK)
	requireStatus(t, "http://"+metricsAddr+"/healthz", http.StatusOK)
	requireStatus(t, "http://"+metricsAddr+"/debug/pprof/", http.StatusNotFound)

	const name = "metrics-cache-5c1e9a"
	spec := b.spec("name=" + name + ",mode=max")
	if r := buildctlBuild(t, d, ctxDir, t.TempDir(), "--export-cache", spec); r.err != nil {
		t.Fatalf("build exporting the cache: %v", r)
	}
	m := metricstest.Scrape(t, "http://"+metricsAddr+"/metrics")
	blobs, blobBytes := b.sizes(t, "blobs/")
	manifests, manifestBytes := b.sizes(t, "manifests/")
	if blobs == 0 || manifests != 1 {
		t.Fatalf("bucket after the export: %d blobs and %d manifests", blobs, manifests)
	}
	checks := []struct {
		what string
		got  float64
		want float64
	}{
		{"blob bytes uploaded", m.Value("s3cache_s3_uploaded_bytes_total", "object", "blob"), float64(blobBytes)},
		{"manifest bytes uploaded", m.Value("s3cache_s3_uploaded_bytes_total", "object", "manifest"), float64(manifestBytes)},
		{"blobs uploaded", m.Value("s3cache_export_blobs_total", "result", "uploaded"), float64(blobs)},
		{"blobs reused", m.Value("s3cache_export_blobs_total", "result", "reused"), 0},
		{"exports timed", m.Value("s3cache_export_duration_seconds", "outcome", "ok"), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	for _, op := range []string{"PutObject", "ListObjectsV2"} {
		if got := m.Value("s3cache_s3_requests_total", "operation", op, "outcome", "ok"); got < 1 {
			t.Errorf("%s ok requests: %v, want some", op, got)
		}
		if got := m.Value("s3cache_s3_request_duration_seconds", "operation", op, "outcome", "ok"); got < 1 {
			t.Errorf("%s ok latencies: %v, want some", op, got)
		}
	}

	// An import, and an export that finds every blob in place.
	if r := buildctlBuild(t, d, ctxDir, t.TempDir(), "--import-cache", spec, "--export-cache", spec); r.err != nil {
		t.Fatalf("build importing the cache: %v", r)
	}
	m = metricstest.Scrape(t, "http://"+metricsAddr+"/metrics")
	if got := m.Value("s3cache_imports_total", "outcome", "used"); got != 1 {
		t.Errorf("imports used: %v, want 1", got)
	}
	if got := m.Value("s3cache_import_records_total"); got < 1 {
		t.Errorf("records loaded: %v, want some", got)
	}
	if got := m.Value("s3cache_export_blobs_total", "result", "reused"); got != float64(blobs) {
		t.Errorf("blobs reused by the second export: %v, want %d", got, blobs)
	}
	if got := m.Value("s3cache_s3_uploaded_bytes_total", "object", "blob"); got != float64(blobBytes) {
		t.Errorf("blob bytes uploaded after a warm export: %v, want still %d", got, blobBytes)
	}
	// BuildKit's own metrics, through OpenTelemetry, as buildkitd serves them.
	for _, fam := range []string{"buildkit_builds_total", "rpc_server_call_duration_seconds"} {
		if _, ok := m[fam]; !ok {
			t.Errorf("/metrics lacks BuildKit's %s", fam)
		}
	}

	dm := metricstest.Scrape(t, "http://"+debugAddr+"/metrics")
	if got := dm.Value("s3cache_s3_uploaded_bytes_total", "object", "blob"); got != float64(blobBytes) {
		t.Errorf("--debugaddr /metrics: blob bytes uploaded %v, want %d", got, blobBytes)
	}

	for series, v := range m.LabelValues() {
		for _, s := range []string{b.name, name, miniotest.AccessKey, miniotest.SecretKey} {
			if strings.Contains(v, s) {
				t.Errorf("label %s names %q", series, s)
			}
		}
	}
}
