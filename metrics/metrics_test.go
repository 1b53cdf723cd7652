package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRecordersCount(t *testing.T) {
	req := s3Requests.WithLabelValues("PutObject", string(OK))
	before := testutil.ToFloat64(req)
	S3Request("PutObject", OK, 30*time.Millisecond)
	S3Request("PutObject", OK, 2*time.Second)
	if got := testutil.ToFloat64(req) - before; got != 2 {
		t.Errorf("PutObject ok requests moved by %v, want 2", got)
	}

	up := uploadedBytes.WithLabelValues(string(Blob))
	before = testutil.ToFloat64(up)
	BytesUploaded(Blob, 1000)
	BytesUploaded(Blob, 0)
	if got := testutil.ToFloat64(up) - before; got != 1000 {
		t.Errorf("blob bytes uploaded moved by %v, want 1000", got)
	}
	down := downloadedBytes.WithLabelValues(string(Manifest))
	before = testutil.ToFloat64(down)
	BytesDownloaded(Manifest, 7)
	if got := testutil.ToFloat64(down) - before; got != 7 {
		t.Errorf("manifest bytes downloaded moved by %v, want 7", got)
	}

	touched := exportBlobs.WithLabelValues(string(Touched))
	before = testutil.ToFloat64(touched)
	ExportBlob(Touched)
	if got := testutil.ToFloat64(touched) - before; got != 1 {
		t.Errorf("touched blobs moved by %v, want 1", got)
	}

	used := imports.WithLabelValues(string(ImportUsed))
	before, beforeRecords := testutil.ToFloat64(used), testutil.ToFloat64(importRecords)
	Import(ImportUsed, 12, time.Second)
	Import(ImportAbsent, 0, time.Millisecond)
	if got := testutil.ToFloat64(used) - before; got != 1 {
		t.Errorf("used imports moved by %v, want 1", got)
	}
	if got := testutil.ToFloat64(importRecords) - beforeRecords; got != 12 {
		t.Errorf("records loaded moved by %v, want 12", got)
	}
	Export(ExportOK, 3*time.Second)
}

// Every s3cache metric has only the labels this package defines, whose
// values are its constants (or SDK operation names): none can carry a
// key, a bucket or a secret.
func TestOnlyKnownLabels(t *testing.T) {
	S3Request("HeadObject", NotFound, time.Millisecond)
	Export(ExportError, time.Second)
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, v := range []string{string(OK), string(NotFound), string(PreconditionFailed), string(Denied), string(Throttled), string(Canceled), string(Error),
		string(Blob), string(Manifest), string(Other), string(Uploaded), string(Reused), string(Touched),
		string(ImportUsed), string(ImportSkipped), string(ImportAbsent), string(ImportError), string(ExportOK), string(ExportError)} {
		allowed[v] = true
	}
	seen := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "s3cache_") {
			continue
		}
		seen++
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "operation":
				case "outcome", "object", "result":
					if !allowed[l.GetValue()] {
						t.Errorf("%s{%s=%q}: not a value of this package", f.GetName(), l.GetName(), l.GetValue())
					}
				default:
					t.Errorf("%s has label %s", f.GetName(), l.GetName())
				}
			}
		}
	}
	if seen != 9 {
		t.Errorf("%d s3cache metric families, want 9", seen)
	}
}

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestEndpointsHealthAndReadiness(t *testing.T) {
	var notReady error = errors.New("engine starting")
	h := Endpoints(func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("readiness check without a deadline")
		}
		return notReady
	})
	if code, body := get(t, h, "GET", "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz before ready: %d %s", code, body)
	}
	if code, body := get(t, h, "GET", "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "engine starting") {
		t.Errorf("/readyz before ready: %d %q, want 503 with the reason", code, body)
	}
	notReady = nil
	if code, body := get(t, h, "GET", "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once ready: %d %s", code, body)
	}
	if code, _ := get(t, h, "GET", "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ on the metrics endpoints: %d, want 404", code)
	}
	if code, _ := get(t, h, "POST", "/readyz"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %d, want 405", code)
	}
}

func TestEndpointsServeMetrics(t *testing.T) {
	S3Request("ListObjectsV2", OK, time.Millisecond)
	code, body := get(t, Endpoints(func(context.Context) error { return nil }), "GET", "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`s3cache_s3_requests_total{operation="ListObjectsV2",outcome="ok"}`,
		`s3cache_s3_request_duration_seconds_bucket{operation="ListObjectsV2",outcome="ok",le="0.005"}`,
		`s3cache_imports_total{outcome="absent"}`,
		"go_goroutines", // the default registry's collectors, as buildkitd serves
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// BuildKit records to OpenTelemetry; the meter provider puts its
// instruments on the same /metrics, named as buildkitd's are.
func TestMeterProviderBridgesOpenTelemetry(t *testing.T) {
	mp, err := MeterProvider()
	if err != nil {
		t.Fatal(err)
	}
	again, err := MeterProvider()
	if err != nil || again != mp {
		t.Fatalf("a second MeterProvider: %p, %v; want the first", again, err)
	}
	c, err := mp.Meter("github.com/s3cache/s3cache/metrics").Int64Counter("bridge.test.counter")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3)
	_, body := get(t, Handler(), "GET", "/metrics")
	if !strings.Contains(body, "bridge_test_counter_total{") {
		t.Errorf("/metrics lacks the OpenTelemetry counter:\n%s", body)
	}
}
