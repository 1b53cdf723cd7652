package backend_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/containerd/v2/core/content"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
)

// The export and import tests below run through a fault-injecting proxy in
// front of MinIO; the fixture's own store reaches MinIO directly, to set
// up and check the bucket behind the proxy's back.

// viaProxy returns a proxy in front of the fixture's MinIO and the
// fixture's attributes pointed at it, plus kv.
func viaProxy(t *testing.T, f *fixture, kv ...string) (*proxytest.Proxy, map[string]string) {
	t.Helper()
	p := proxytest.New(t, f.srv.Endpoint)
	return p, f.with(append([]string{"endpoint_url", p.URL}, kv...)...)
}

// tryExport is export that returns Finalize's error, with ctx.
func tryExport(ctx context.Context, t *testing.T, opts backend.Options, attrs map[string]string, ls []layer, provider content.InfoReaderProvider) error {
	t.Helper()
	exp, err := backend.ResolveCacheExporterFunc(opts)(ctx, nil, attrs)
	if err != nil {
		t.Fatalf("resolve exporter: %v", err)
	}
	addChain(t, exp, ls, provider)
	_, err = exp.Finalize(ctx)
	return err
}

// tryLoad is load that returns Load's error instead of failing.
func tryLoad(t *testing.T, opts backend.Options, attrs map[string]string) (*backend.Importer, error) {
	t.Helper()
	imp, _, err := backend.ResolveCacheImporterFunc(opts)(context.Background(), nil, attrs)
	if err != nil {
		t.Fatalf("resolve importer: %v", err)
	}
	_, err = imp.(*backend.Importer).Load(context.Background())
	return imp.(*backend.Importer), err
}

// requireBucketConsistent checks, bypassing the proxy, that every manifest
// in the bucket decodes and every blob it names exists with its size and
// digest, and that no multipart upload was left behind.
func requireBucketConsistent(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	st := f.Store.(*store.S3)
	report, err := inventory.Verify(ctx, st, st.Layout(), inventory.VerifyOptions{All: true, Deep: true}, inventory.Options{})
	if err != nil {
		if report != nil {
			t.Fatalf("bucket inconsistent: %v: %+v", err, report.Problems)
		}
		t.Fatalf("verify bucket: %v", err)
	}
	out, err := f.srv.Client("").ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &f.Name})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	if len(out.Uploads) > 0 {
		t.Fatalf("%d multipart uploads left behind, first %s", len(out.Uploads), *out.Uploads[0].Key)
	}
}

func manifestBytes(t *testing.T, f *fixture, name string) []byte {
	t.Helper()
	dt, err := store.ReadAll(context.Background(), f.Store, "manifests/"+name, 1<<20)
	if err != nil {
		t.Fatalf("read manifest %s: %v", name, err)
	}
	return dt
}

// Transient 500s and 503 SlowDowns on blob and manifest uploads, and on the
// listing, are retried by the SDK's retryer: the export succeeds.
func TestFaultExportRetriesTransientErrors(t *testing.T) {
	f := newFixture(t, nil)
	p, attrs := viaProxy(t, f, "name", "main")
	p.AddFault(proxytest.SlowDown("PUT", "/blobs/", 2))
	p.AddFault(proxytest.InternalError("PUT", "/blobs/", 1))
	p.AddFault(proxytest.SlowDown("PUT", "/manifests/main", 1))
	p.AddFault(proxytest.SlowDown("GET", "", 1)) // the LIST of the blobs
	ls, provider := newLayers(t, 1000, 70000, 3)
	if err := tryExport(context.Background(), t, testOptions(), attrs, ls, provider); err != nil {
		t.Fatalf("export under a burst of 5xx: %v", err)
	}
	p.RequireRetried(t, "PUT")
	p.RequireRetried(t, "GET")
	requireBucketConsistent(t, f)
	imported, _ := load(t, backend.Options{}, f.with("name", "main"))
	if len(imported.Records) != 3 {
		t.Fatalf("imported %d records, want 3", len(imported.Records))
	}
}

// Connections reset mid-upload, single and multipart, are retried: the SDK
// sends the seekable body again.
func TestFaultExportConnectionResetMidUpload(t *testing.T) {
	f := newFixture(t, nil)
	p, attrs := viaProxy(t, f, "name", "main")
	p.AddFault(proxytest.Fault{Kind: proxytest.ResetRequest, Method: "PUT", Key: "/blobs/", Bytes: 512, Times: 3})
	ls, provider := newLayers(t, 6<<20, 70000, 3000)
	opts := testOptions()
	opts.StoreOptions.MultipartThreshold, opts.StoreOptions.PartSize = 5<<20, 5<<20
	if err := tryExport(context.Background(), t, opts, attrs, ls, provider); err != nil {
		t.Fatalf("export with resets mid-upload: %v", err)
	}
	p.RequireRetried(t, "PUT")
	requireBucketConsistent(t, f)
}

// A blob whose upload fails for good fails the export, naming the blob; the
// manifest the previous export wrote stays as it was.
func TestFaultExportPermanentBlobFailureKeepsPreviousManifest(t *testing.T) {
	f := newFixture(t, nil)
	old, oldProvider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), old, oldProvider)
	before := manifestBytes(t, f, "main")

	p, attrs := viaProxy(t, f, "name", "main", "retry_max_attempts", "2")
	ls, provider := newLayers(t, 100, 200, 300)
	bad := ls[1].Desc.Digest.String()
	p.AddFault(proxytest.InternalError("PUT", bad, 0))
	err := tryExport(context.Background(), t, testOptions(), attrs, ls, provider)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("export with a blob that cannot be uploaded: err = %v, want an error naming %s", err, bad)
	}
	if n := countRequests(p, "PUT", "/manifests/"); n != 0 {
		t.Fatalf("%d manifest PUTs after a failed blob upload, want none", n)
	}
	if after := manifestBytes(t, f, "main"); !bytes.Equal(before, after) {
		t.Fatalf("the previous manifest changed after a failed export")
	}
	requireBucketConsistent(t, f)
}

func countRequests(p *proxytest.Proxy, method, key string) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method == method && strings.Contains(r.Path, key) {
			n++
		}
	}
	return n
}

// An export cancelled while its blobs upload (single and multipart) writes
// no manifest, leaves the previous one as it was, and aborts its multipart
// uploads.
func TestFaultExportCancelledMidUpload(t *testing.T) {
	f := newFixture(t, nil)
	old, oldProvider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), old, oldProvider)
	before := manifestBytes(t, f, "main")

	p, attrs := viaProxy(t, f, "name", "main")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Every blob upload hangs; the first one to arrive cancels the export,
	// once the multipart upload has begun.
	var parts atomic.Int64
	p.AddFault(proxytest.Fault{Kind: proxytest.Hang, Method: "PUT", Key: "/blobs/", OnRequest: func(r *http.Request) {
		if r.URL.Query().Has("partNumber") {
			parts.Add(1)
			cancel()
		}
	}})
	ls, provider := newLayers(t, 12<<20, 200, 300)
	opts := backend.Options{StoreOptions: store.Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20, PartConcurrency: 1}}
	err := tryExport(ctx, t, opts, attrs, ls, provider)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: err = %v, want context.Canceled", err)
	}
	if parts.Load() == 0 {
		t.Fatalf("no multipart part was sent before the cancellation")
	}
	if n := countRequests(p, "PUT", "/manifests/"); n != 0 {
		t.Fatalf("%d manifest PUTs after a cancelled export, want none", n)
	}
	if after := manifestBytes(t, f, "main"); !bytes.Equal(before, after) {
		t.Fatalf("the previous manifest changed after a cancelled export")
	}
	requireBucketConsistent(t, f)
}

// Blob bodies cut short or reset mid-way are resumed where they broke:
// every blob reads back whole and right.
func TestFaultImportResumesBrokenBlobBodies(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 300000, 70000, 3)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)

	p, attrs := viaProxy(t, f, "name", "main")
	p.AddFault(proxytest.Fault{Kind: proxytest.Truncate, Method: "GET", Key: "/blobs/", Bytes: 1000, Times: 2})
	p.AddFault(proxytest.Fault{Kind: proxytest.ResetResponse, Method: "GET", Key: "/blobs/", Bytes: 40000, Times: 2})
	_, descs := load(t, backend.Options{}, attrs)
	for _, l := range ls {
		got, err := readBlob(t, descs, l.Desc.Digest)
		if err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("blob %s through broken bodies: %d bytes, %v; want the %d bytes exported", l.Desc.Digest, len(got), err, len(l.Data))
		}
	}
	if n := countFaulted(p); n != 4 {
		t.Fatalf("%d requests faulted, want the 4 injected", n)
	}
}

func countFaulted(p *proxytest.Proxy) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Fault != "" {
			n++
		}
	}
	return n
}

// A blob whose every GET breaks off fails its read, with an error naming
// it, and never yields bytes past the break; the others read fine.
func TestFaultImportBrokenForGoodFailsCleanly(t *testing.T) {
	for _, kind := range []proxytest.Kind{proxytest.Truncate, proxytest.ResetResponse} {
		f := newFixture(t, nil)
		ls, provider := newLayers(t, 10, 70000, 30)
		export(t, backend.Options{}, f.with("name", "main"), ls, provider)

		p, attrs := viaProxy(t, f, "name", "main")
		bad := ls[1].Desc.Digest.String()
		p.AddFault(proxytest.Fault{Kind: kind, Method: "GET", Key: bad, Bytes: 1000})
		_, descs := load(t, backend.Options{}, attrs)
		got, err := readBlob(t, descs, ls[1].Desc.Digest)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%v: blob whose body always breaks: %d bytes, err %v; want an error naming it", kind, len(got), err)
		}
		if !bytes.HasPrefix(ls[1].Data, got) {
			t.Fatalf("%v: the failed read yielded bytes that are not the blob's", kind)
		}
		for _, i := range []int{0, 2} {
			if got, err := readBlob(t, descs, ls[i].Desc.Digest); err != nil || !bytes.Equal(got, ls[i].Data) {
				t.Errorf("%v: intact blob %d: %d bytes, %v", kind, i, len(got), err)
			}
		}
	}
}

// A manifest body cut short or reset is read again, from the start: one
// broken GET does not cost the whole cache.
func TestFaultImportManifestBodyBrokenOnce(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)

	p, attrs := viaProxy(t, f, "name", "main")
	p.AddFault(proxytest.Fault{Kind: proxytest.Truncate, Method: "GET", Key: "/manifests/main", Bytes: 100, Times: 1})
	p.AddFault(proxytest.Fault{Kind: proxytest.ResetResponse, Method: "GET", Key: "/manifests/main", Bytes: 200, Times: 1})
	imported, _ := load(t, backend.Options{}, attrs)
	if len(imported.Records) != 3 {
		t.Fatalf("imported %d records through a manifest GET broken twice, want 3", len(imported.Records))
	}
}

// Transient 5xx on the manifest GET, the listing of the blobs (which
// replaces a HEAD per blob) and the blob GETs are retried.
func TestFaultImportRetriesTransientErrors(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 20, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)

	p, attrs := viaProxy(t, f, "name", "main")
	p.AddFault(proxytest.SlowDown("GET", "/manifests/main", 1))
	listing := func(r *http.Request) bool { return r.URL.Query().Get("list-type") == "2" }
	p.AddFault(proxytest.Fault{Kind: proxytest.Status, Status: http.StatusInternalServerError, Method: "GET", Match: listing, Times: 2})
	p.AddFault(proxytest.SlowDown("GET", "/blobs/", 1))
	imported, descs := load(t, testOptions(), attrs)
	if len(imported.Records) != 3 {
		t.Fatalf("imported %d records, want 3", len(imported.Records))
	}
	for _, l := range ls {
		if got, err := readBlob(t, descs, l.Desc.Digest); err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("blob %s: %d bytes, %v", l.Desc.Digest, len(got), err)
		}
	}
	p.RequireRetried(t, "GET")
	faultedListings := 0
	for _, r := range p.Requests() {
		if r.Fault != "" && r.Query.Get("list-type") == "2" {
			faultedListings++
		}
	}
	if faultedListings != 2 {
		t.Fatalf("%d listings faulted, want 2", faultedListings)
	}
}

// A bucket that is gone when the import starts is an error naming it
// (BuildKit then builds without the cache); one that goes while blobs are
// read fails those reads cleanly.
func TestFaultImportBucketDisappears(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 70000, 30)
	export(t, backend.Options{}, f.with("name", "main"), ls, provider)

	p, attrs := viaProxy(t, f, "name", "main")
	_, descs := load(t, backend.Options{}, attrs)
	gone := p.AddFault(proxytest.NoSuchBucket())
	for _, l := range ls {
		got, err := readBlob(t, descs, l.Desc.Digest)
		if err == nil || !errors.Is(err, store.ErrNotFound) || len(got) != 0 {
			t.Errorf("blob %s read from a vanished bucket: %d bytes, %v; want a not-found error", l.Desc.Digest, len(got), err)
		}
	}

	_, err := tryLoad(t, backend.Options{}, attrs)
	if err == nil || !strings.Contains(err.Error(), f.Name) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("import from a vanished bucket: err = %v, want one saying bucket %s does not exist", err, f.Name)
	}
	p.RemoveFault(gone)
	if _, err := tryLoad(t, backend.Options{}, attrs); err != nil {
		t.Fatalf("import once the bucket is back: %v", err)
	}
}

// An export to a bucket that is gone fails at once, naming it.
func TestFaultExportBucketDisappears(t *testing.T) {
	f := newFixture(t, nil)
	p, attrs := viaProxy(t, f, "name", "main")
	p.AddFault(proxytest.NoSuchBucket())
	ls, provider := newLayers(t, 10, 20, 30)
	err := tryExport(context.Background(), t, backend.Options{}, attrs, ls, provider)
	if err == nil || !strings.Contains(err.Error(), `bucket "`+f.Name+`" does not exist`) {
		t.Fatalf("export to a vanished bucket: err = %v, want one saying bucket %s does not exist", err, f.Name)
	}
	if n := countRequests(p, "PUT", ""); n != 0 {
		t.Errorf("%d uploads tried after the listing said the bucket is gone", n)
	}
}

// Added latency on every request changes nothing but time.
func TestFaultLatency(t *testing.T) {
	f := newFixture(t, nil)
	p, attrs := viaProxy(t, f, "name", "main")
	p.AddFault(proxytest.Fault{Delay: 30 * time.Millisecond})
	ls, provider := newLayers(t, 10, 70000, 30)
	if err := tryExport(context.Background(), t, backend.Options{}, attrs, ls, provider); err != nil {
		t.Fatalf("export with latency: %v", err)
	}
	_, descs := load(t, backend.Options{}, attrs)
	for _, l := range ls {
		if got, err := readBlob(t, descs, l.Desc.Digest); err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("blob %s: %d bytes, %v", l.Desc.Digest, len(got), err)
		}
	}
	requireBucketConsistent(t, f)
}

// testOptions keep the SDK's backoff between retries short.
func testOptions() backend.Options {
	return backend.Options{StoreOptions: store.Options{RetryMaxBackoff: 100 * time.Millisecond}}
}

// A listing of the blobs whose body is cut short, every time, costs the
// export and the import nothing but HEADs: both fall back to them.
func TestFaultListingCutShortFallsBackToHeads(t *testing.T) {
	f := newFixture(t, nil)
	ls, provider := newLayers(t, 10, 70000, 30)
	// One blob already in the bucket, two to upload.
	other, otherProvider := newLayers(t, 40, 50)
	export(t, backend.Options{}, f.with("name", "old"), []layer{ls[0], other[0], other[1]}, mergedProvider{provider, otherProvider})

	p, attrs := viaProxy(t, f, "name", "main")
	listing := func(r *http.Request) bool { return r.URL.Query().Get("list-type") == "2" }
	p.AddFault(proxytest.Fault{Kind: proxytest.Truncate, Method: "GET", Match: listing, Bytes: 200})
	if err := tryExport(context.Background(), t, testOptions(), attrs, ls, provider); err != nil {
		t.Fatalf("export with a broken listing: %v", err)
	}
	imported, descs := load(t, testOptions(), attrs)
	if len(imported.Records) != 3 {
		t.Fatalf("imported %d records with a broken listing, want 3", len(imported.Records))
	}
	for _, l := range ls {
		if got, err := readBlob(t, descs, l.Desc.Digest); err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("blob %s: %d bytes, %v", l.Desc.Digest, len(got), err)
		}
	}
	if countRequests(p, "HEAD", "/blobs/") == 0 || countFaulted(p) == 0 {
		t.Fatalf("no listing was broken or no HEAD replaced it: the test exercised nothing")
	}
	requireBucketConsistent(t, f)
}

// maxInFlight holds each request matching method and key on p for hold and
// reports the most held at once.
func maxInFlight(p *proxytest.Proxy, method, key string, hold time.Duration) func() int64 {
	var c concurrency
	p.AddFault(proxytest.Fault{Method: method, Key: key, OnRequest: func(*http.Request) { c.hold(hold) }})
	return c.most
}

// Checking which blobs the bucket has moves no data: those HEADs go wider
// than upload_parallelism, which still bounds the uploads.
func TestExportChecksBlobsWiderThanUploads(t *testing.T) {
	f := newFixture(t, nil)
	sizes := make([]int, 24)
	for i := range sizes {
		sizes[i] = 100 + i
	}
	factory := cachetest.New()
	ls := factory.Layers(t, sizes...)
	// Half the blobs are in the bucket already; a listing that fails leaves
	// every blob to a HEAD.
	factory.Export(t, backend.Options{}, f.with("name", "old"), ls[:12]...)
	p, attrs := viaProxy(t, f, "name", "main", "upload_parallelism", "2")
	listing := func(r *http.Request) bool { return r.URL.Query().Get("list-type") == "2" }
	p.AddFault(proxytest.Fault{Kind: proxytest.Status, Status: http.StatusForbidden, Method: "GET", Match: listing})
	heads := maxInFlight(p, "HEAD", "/blobs/", 50*time.Millisecond)
	puts := maxInFlight(p, "PUT", "/blobs/", 50*time.Millisecond)
	factory.Export(t, testOptions(), attrs, ls...)
	if n := countRequests(p, "HEAD", "/blobs/"); n != 24 {
		t.Fatalf("%d HEADs of blobs, want one for each of 24", n)
	}
	if got := heads(); got <= 2 {
		t.Errorf("at most %d HEADs at once, want more than upload_parallelism=2", got)
	}
	if got := puts(); got == 0 || got > 2 {
		t.Errorf("at most %d uploads at once, want 1 to upload_parallelism=2", got)
	}
	requireBucketConsistent(t, f)
}
