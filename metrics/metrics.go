// Package metrics is s3cache's own Prometheus metrics, the bridge that
// puts BuildKit's OpenTelemetry metrics beside them, and the HTTP
// endpoints that serve them. Everything lives in Prometheus's default
// registry, the one buildkitd's /metrics serves (promhttp.Handler), so Go
// runtime, process, BuildKit and s3cache metrics come from one scrape.
//
// It imports nothing of s3cache: store and backend record to it.
//
// Every label value is one of the constants below or an AWS SDK operation
// name: never a key, a bucket, a cache name or anything else a client
// chose, and never a secret.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcome is how an S3 request ended.
type Outcome string

// Outcomes of S3 requests.
const (
	OK                 Outcome = "ok"
	NotFound           Outcome = "not_found"           // 404: no such key (or bucket)
	PreconditionFailed Outcome = "precondition_failed" // 412 or 409 of a conditional write
	Denied             Outcome = "denied"              // 403
	Throttled          Outcome = "throttled"           // 429, 503 SlowDown
	Canceled           Outcome = "canceled"            // the caller gave up (context)
	Error              Outcome = "error"               // anything else: other statuses, network
)

// Object is what kind of object a transfer moved.
type Object string

// Kinds of objects.
const (
	Blob     Object = "blob"
	Manifest Object = "manifest"
	Other    Object = "other"
)

// BlobResult is what an export did for one blob its manifest names.
type BlobResult string

// What an export does for a blob.
const (
	Uploaded BlobResult = "uploaded" // absent (or damaged) in the bucket: sent
	Reused   BlobResult = "reused"   // present and fresh: nothing sent
	Touched  BlobResult = "touched"  // present but old: refreshed by a server-side copy
)

// ImportOutcome is how a cache import ended.
type ImportOutcome string

// Outcomes of cache imports.
const (
	ImportUsed    ImportOutcome = "used"    // a manifest was loaded
	ImportSkipped ImportOutcome = "skipped" // manifests exist but none was usable; warned
	ImportAbsent  ImportOutcome = "absent"  // no manifest under any name: an empty cache
	ImportError   ImportOutcome = "error"   // failed (no bucket, canceled)
)

// ExportOutcome is how a cache export ended.
type ExportOutcome string

// Outcomes of cache exports.
const (
	ExportOK    ExportOutcome = "ok"
	ExportError ExportOutcome = "error"
)

// Buckets, in seconds: one S3 request takes milliseconds (HEAD) to
// minutes (a large part on a slow link); a whole export or import takes
// up to many minutes.
var (
	requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	phaseBuckets   = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
)

var (
	s3Requests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "s3cache_s3_requests_total",
		Help: "S3 requests by operation and outcome; each attempt of a request the SDK retries counts.",
	}, []string{"operation", "outcome"})
	s3RequestDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "s3cache_s3_request_duration_seconds",
		Help:    "Time of an S3 request attempt until its response headers, by operation and outcome.",
		Buckets: requestBuckets,
	}, []string{"operation", "outcome"})
	uploadedBytes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "s3cache_s3_uploaded_bytes_total",
		Help: "Bytes of objects stored in buckets, by kind of object.",
	}, []string{"object"})
	downloadedBytes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "s3cache_s3_downloaded_bytes_total",
		Help: "Bytes read from buckets' objects, by kind of object.",
	}, []string{"object"})
	exportBlobs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "s3cache_export_blobs_total",
		Help: "Blobs cache exports placed in buckets, by what it took: uploaded, reused or touched.",
	}, []string{"result"})
	exportDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "s3cache_export_duration_seconds",
		Help:    "Time of a cache export to S3 (blobs and manifests), by outcome.",
		Buckets: phaseBuckets,
	}, []string{"outcome"})
	imports = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "s3cache_imports_total",
		Help: "Cache imports from S3 by outcome: used, skipped (with a warning), absent or error.",
	}, []string{"outcome"})
	importRecords = promauto.NewCounter(prometheus.CounterOpts{
		Name: "s3cache_import_records_total",
		Help: "Cache records loaded by cache imports that used a manifest.",
	})
	importDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "s3cache_import_duration_seconds",
		Help:    "Time of a cache import from S3 (manifest read and blobs checked), by outcome.",
		Buckets: phaseBuckets,
	}, []string{"outcome"})
)

func init() {
	// Series of the fixed label sets exist from the start, at zero, so
	// that rate() and alerts see the first increment.
	for _, o := range []Object{Blob, Manifest, Other} {
		uploadedBytes.WithLabelValues(string(o))
		downloadedBytes.WithLabelValues(string(o))
	}
	for _, r := range []BlobResult{Uploaded, Reused, Touched} {
		exportBlobs.WithLabelValues(string(r))
	}
	for _, o := range []ImportOutcome{ImportUsed, ImportSkipped, ImportAbsent, ImportError} {
		imports.WithLabelValues(string(o))
	}
}

// S3Request records one attempt of an S3 request; operation is the SDK's
// operation name (PutObject, ListObjectsV2, ...).
func S3Request(operation string, outcome Outcome, d time.Duration) {
	s3Requests.WithLabelValues(operation, string(outcome)).Inc()
	s3RequestDuration.WithLabelValues(operation, string(outcome)).Observe(d.Seconds())
}

// BytesUploaded records n bytes of an object stored.
func BytesUploaded(o Object, n int64) {
	if n > 0 {
		uploadedBytes.WithLabelValues(string(o)).Add(float64(n))
	}
}

// BytesDownloaded records n bytes read from an object.
func BytesDownloaded(o Object, n int64) {
	if n > 0 {
		downloadedBytes.WithLabelValues(string(o)).Add(float64(n))
	}
}

// ExportBlob records what an export did for one blob.
func ExportBlob(r BlobResult) { exportBlobs.WithLabelValues(string(r)).Inc() }

// Export records a finished cache export.
func Export(outcome ExportOutcome, d time.Duration) {
	exportDuration.WithLabelValues(string(outcome)).Observe(d.Seconds())
}

// Import records a finished cache import and the records it loaded.
func Import(outcome ImportOutcome, records int, d time.Duration) {
	imports.WithLabelValues(string(outcome)).Inc()
	if records > 0 {
		importRecords.Add(float64(records))
	}
	importDuration.WithLabelValues(string(outcome)).Observe(d.Seconds())
}
