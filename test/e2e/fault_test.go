package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// Builds through a fault-injecting proxy in front of MinIO: the build
// succeeds with correct output (or an export without ignore-error fails
// with a clear message), nothing corrupt is read, and the bucket stays
// consistent.

// proxied is a proxy in front of the bucket's MinIO.
func proxied(t *testing.T, b bucket) *proxytest.Proxy {
	t.Helper()
	return proxytest.New(t, b.srv.Endpoint)
}

// specVia is b.spec with the endpoint of p instead of MinIO's.
func (b bucket) specVia(p *proxytest.Proxy, extra string) string {
	s := fmt.Sprintf("type=s3,region=%s,bucket=%s,endpoint_url=%s,use_path_style=true,access_key_id=%s,secret_access_key=%s",
		miniotest.Region, b.name, p.URL, miniotest.AccessKey, miniotest.SecretKey)
	if extra != "" {
		s += "," + extra
	}
	return s
}

// requireBucketConsistent checks, straight at MinIO, that every manifest
// decodes and names only blobs that exist with their size and digest, and
// that no multipart upload was left behind.
func requireBucketConsistent(t *testing.T, b bucket) {
	t.Helper()
	ctx := context.Background()
	cfg := spec.Config{Region: miniotest.Region, Bucket: b.name, EndpointURL: b.srv.Endpoint, UsePathStyle: true,
		AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey,
		BlobsPrefix: spec.DefaultBlobsPrefix, ManifestsPrefix: spec.DefaultManifestsPrefix}
	st, err := store.New(ctx, cfg, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	report, err := inventory.Verify(ctx, st, st.Layout(), inventory.VerifyOptions{All: true, Deep: true}, inventory.Options{})
	if err != nil {
		if report != nil {
			t.Fatalf("bucket inconsistent: %v: %+v", err, report.Problems)
		}
		t.Fatalf("verify bucket: %v", err)
	}
	out, err := b.srv.Client("").ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &b.name})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	if len(out.Uploads) > 0 {
		t.Fatalf("%d multipart uploads left behind", len(out.Uploads))
	}
}

// importFresh rebuilds from the cache in a fresh engine, straight at MinIO:
// every RUN step comes from the cache and the output is the first build's.
func importFresh(t *testing.T, b bucket, ctxDir, firstOut string) {
	t.Helper()
	out := t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-from", b.spec("name=main"))
	if r.err != nil {
		t.Fatalf("rebuild from the cache: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, firstOut, out, "rand1", "rand2", "sum")
}

// An export through a burst of 503 SlowDown and 500 InternalError answers
// succeeds: the SDK's retryer sends each request again.
func TestFaultExportUnder503Burst(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	p := proxied(t, b)
	p.AddFault(proxytest.SlowDown("PUT", "/blobs/", 3))
	p.AddFault(proxytest.InternalError("PUT", "/blobs/", 1))
	p.AddFault(proxytest.SlowDown("PUT", "/manifests/main", 1))
	p.AddFault(proxytest.SlowDown("GET", "", 1)) // the listing of the blobs
	ctxDir, out := buildContext(t, dockerfileTwoStage), t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-to", b.specVia(p, "name=main,mode=max"))
	if r.err != nil {
		t.Fatalf("export under a 5xx burst: %v", r)
	}
	p.RequireRetried(t, "PUT")
	p.RequireRetried(t, "GET")
	requireBucketConsistent(t, b)
	importFresh(t, b, ctxDir, out)
}

// Connections reset while blobs upload are retried.
func TestFaultExportConnectionResets(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	p := proxied(t, b)
	p.AddFault(proxytest.Fault{Kind: proxytest.ResetRequest, Method: "PUT", Key: "/blobs/", Bytes: 100, Times: 3})
	ctxDir, out := buildContext(t, dockerfileTwoStage), t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-to", b.specVia(p, "name=main,mode=max"))
	if r.err != nil {
		t.Fatalf("export with connections reset mid-upload: %v", r)
	}
	p.RequireRetried(t, "PUT")
	requireBucketConsistent(t, b)
	importFresh(t, b, ctxDir, out)
}

// An export to a bucket that has disappeared fails the build with one line
// naming the bucket, or, with ignore-error=true, warns and succeeds. A
// previous manifest is never touched.
func TestFaultExportBucketDisappears(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	p := proxied(t, b)
	p.AddFault(proxytest.NoSuchBucket())
	ctxDir := buildContext(t, dockerfileTwoStage)

	r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.specVia(p, "name=main,mode=max"))
	if r.err == nil {
		t.Fatalf("export to a vanished bucket succeeded without ignore-error:\n%s", r.stderr)
	}
	want := fmt.Sprintf("bucket %q does not exist", b.name)
	if line := lastLineWith(r.stderr, want); line == "" {
		t.Fatalf("no line of the output says %s:\n%s", want, r.stderr)
	}

	r = s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.specVia(p, "name=main,mode=max,ignore-error=true"))
	if r.err != nil {
		t.Fatalf("export to a vanished bucket with ignore-error=true failed the build: %v", r)
	}
	if lastLineWith(r.stderr, want) == "" {
		t.Errorf("ignore-error=true: the failure is not reported; want a line saying %s:\n%s", want, r.stderr)
	}
	if n := len(b.keys(t, "")); n != 0 {
		t.Fatalf("%d objects written to the bucket behind the proxy", n)
	}
}

// lastLineWith is the last line of s containing sub ("" when none).
func lastLineWith(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}

// Blob GETs cut short or reset mid-body on import: the reads resume, every
// step is a hit, and the output is the first build's.
func TestFaultImportBrokenBlobBodies(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir, out1 := buildContext(t, dockerfileTwoStage), t.TempDir()
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, out1, "--cache-to", b.spec("name=main,mode=max")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	p := proxied(t, b)
	p.AddFault(proxytest.Fault{Kind: proxytest.Truncate, Method: "GET", Key: "/blobs/", Bytes: 100, Times: 2})
	p.AddFault(proxytest.Fault{Kind: proxytest.ResetResponse, Method: "GET", Key: "/blobs/", Bytes: 300, Times: 2})
	out2 := t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out2, "--cache-from", b.specVia(p, "name=main"))
	if r.err != nil {
		t.Fatalf("import through broken bodies: %v", r)
	}
	requireConsistentOutput(t, out2)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
	requireRunHits(t, r.stderr, 3)
	if n := faulted(p); n == 0 {
		t.Fatalf("no blob GET was broken: the test injected nothing")
	}
}

// Blob GETs that always break off: the steps whose blobs can't be read
// run instead, the build succeeds with consistent output.
func TestFaultImportBlobBodiesBrokenForGood(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.spec("name=main,mode=max")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	for _, kind := range []proxytest.Kind{proxytest.Truncate, proxytest.ResetResponse} {
		p := proxied(t, b)
		p.AddFault(proxytest.Fault{Kind: kind, Method: "GET", Key: "/blobs/", Bytes: 100})
		out := t.TempDir()
		r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-from", b.specVia(p, "name=main"))
		if r.err != nil {
			t.Fatalf("%v: the build failed on unreadable blobs, it must run the steps instead: %v", kind, r)
		}
		requireConsistentOutput(t, out)
		requireWarning(t, r, "s3 cache import")
		if n := faulted(p); n == 0 {
			t.Fatalf("%v: no blob GET was broken: the test injected nothing", kind)
		}
	}
	requireBucketConsistent(t, b)
}

func faulted(p *proxytest.Proxy) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Fault != "" {
			n++
		}
	}
	return n
}

// An import from a bucket that has disappeared builds without the cache
// and says why.
func TestFaultImportBucketDisappears(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.spec("name=main,mode=max")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	p := proxied(t, b)
	p.AddFault(proxytest.NoSuchBucket())
	out := t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-from", b.specVia(p, "name=main"))
	if r.err != nil {
		t.Fatalf("import from a vanished bucket failed the build: %v", r)
	}
	requireConsistentOutput(t, out)
	requireRunHits(t, r.stderr, 0)
	if want := fmt.Sprintf("bucket %q does not exist", b.name); lastLineWith(r.stderr, want) == "" {
		t.Errorf("no line says %s:\n%s", want, r.stderr)
	}
}

// Latency on every request, export and import, changes nothing but time.
func TestFaultLatency(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	p := proxied(t, b)
	p.AddFault(proxytest.Fault{Delay: 50 * time.Millisecond})
	ctxDir, out1, out2 := buildContext(t, dockerfileTwoStage), t.TempDir(), t.TempDir()
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, out1, "--cache-to", b.specVia(p, "name=main,mode=max")); r.err != nil {
		t.Fatalf("export with latency: %v", r)
	}
	requireBucketConsistent(t, b)
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out2, "--cache-from", b.specVia(p, "name=main"))
	if r.err != nil {
		t.Fatalf("import with latency: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
}

// concurrentBuilds runs one `s3cache build` per name at once, each with its
// own engine root (roots[i]) and output (outs[i]), exporting to the bucket
// with touch_refresh=0s so that blobs found in the bucket are touched;
// args(i) adds flags.
func concurrentBuilds(t *testing.T, b bucket, ctxDir string, roots, outs, names []string, args func(i int) []string) {
	t.Helper()
	results := make([]result, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flags := append([]string{"--cache-to", b.spec("name=" + name + ",mode=max,touch_refresh=0s")}, args(i)...)
			results[i] = s3cacheBuild(t, roots[i], ctxDir, outs[i], flags...)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("build %d (%s): %v", i, names[i], r)
		}
	}
}

func tempDirs(t *testing.T, n int) []string {
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	return dirs
}

// Four builds exporting to one name at once, twice (the second time every
// blob is found and touched): the manifest is one build's whole cache, the
// bucket is consistent, and a fresh engine gets every step from it.
func TestConcurrentBuildsExportToOneName(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	const n = 4
	roots, outs := tempDirs(t, n), tempDirs(t, n)
	names := []string{"main", "main", "main", "main"}
	for range 2 {
		concurrentBuilds(t, b, ctxDir, roots, outs, names, func(int) []string { return nil })
		requireBucketConsistent(t, b)
	}
	out := t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-from", b.spec("name=main"))
	if r.err != nil {
		t.Fatalf("import: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireConsistentOutput(t, out)
	same := 0
	for _, o := range outs {
		if filesEqual(t, o, out, "sum") {
			same++
		}
	}
	if same == 0 {
		t.Fatalf("the imported output is none of the builds' outputs")
	}
}

// dockerfileWho is dockerfileTwoStage with a build argument in the build
// stage: builds with different WHO share the base stage and no more.
const dockerfileWho = `FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
ARG WHO
RUN head -c 4096 /dev/urandom > /rand1 && echo "$WHO" > /who
RUN head -c 4096 /dev/urandom > /rand2 && cat /rand1 /rand2 | md5sum > /sum

FROM scratch
COPY --from=build /rand1 /rand2 /sum /who /
`

// Four builds with names of their own that share the base stage's blobs
// (imported from a seed cache) export at once, twice, touching what they
// share: every manifest names only blobs present and whole, and each
// imports to its own build's output.
func TestConcurrentBuildsSharingBlobs(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileWho)
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.spec("name=seed,mode=max")); r.err != nil {
		t.Fatalf("seed: %v", r)
	}
	const n = 4
	roots, outs := tempDirs(t, n), tempDirs(t, n)
	names := []string{"a", "b", "c", "d"}
	for range 2 {
		concurrentBuilds(t, b, ctxDir, roots, outs, names, func(i int) []string {
			return []string{"--cache-from", b.spec("name=seed"), "--build-arg", "WHO=" + names[i]}
		})
		requireBucketConsistent(t, b)
	}
	// The base stage's blobs are in every cache.
	counts := map[string]int{}
	for _, name := range names {
		var m cacheimporttypes.CacheConfig
		dt := (&damagedCache{b: b}).get(t, "manifests/"+name)
		if err := json.Unmarshal(dt, &m); err != nil {
			t.Fatalf("manifest %s: %v", name, err)
		}
		for _, l := range m.Layers {
			counts[l.Blob.String()]++
		}
	}
	shared := 0
	for _, c := range counts {
		if c == n {
			shared++
		}
	}
	if shared == 0 {
		t.Fatalf("no blob is shared by the %d caches: the test exercises no sharing", n)
	}
	for i, name := range names {
		out := t.TempDir()
		r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-from", b.spec("name="+name), "--build-arg", "WHO="+name)
		if r.err != nil {
			t.Fatalf("import %s: %v", name, r)
		}
		requireRunHits(t, r.stderr, 3)
		requireSameFiles(t, outs[i], out, "rand1", "rand2", "sum", "who")
	}
}

func filesEqual(t *testing.T, a, b, file string) bool {
	t.Helper()
	x, err := os.ReadFile(filepath.Join(a, file))
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(filepath.Join(b, file))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// firstExport builds once straight at MinIO, exporting name=main, and
// returns the context, the output and the manifest's bytes.
func firstExport(t *testing.T, b bucket) (ctxDir, out string, manifest []byte) {
	t.Helper()
	ctxDir, out = buildContext(t, dockerfileTwoStage), t.TempDir()
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-to", b.spec("name=main,mode=max")); r.err != nil {
		t.Fatalf("first export: %v", r)
	}
	return ctxDir, out, (&damagedCache{b: b}).get(t, "manifests/main")
}

// requireManifestUnchanged checks that manifests/main still holds before.
func requireManifestUnchanged(t *testing.T, b bucket, before []byte) {
	t.Helper()
	if after := (&damagedCache{b: b}).get(t, "manifests/main"); !bytes.Equal(before, after) {
		t.Fatalf("manifests/main changed after a failed export")
	}
}

// Blob uploads that fail for good fail an export without ignore-error,
// naming the blob, and keep the build green with it; either way the
// previous manifest stays, naming only blobs present, and still serves.
func TestFaultExportFailsKeepsPreviousManifest(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir, out1, before := firstExport(t, b)
	p := proxied(t, b)
	p.AddFault(proxytest.InternalError("PUT", "/blobs/", 0))

	// A fresh root: the RUN steps run again and make new blobs.
	r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.specVia(p, "name=main,mode=max,retry_max_attempts=2"))
	if r.err == nil {
		t.Fatalf("export whose blob uploads all fail succeeded without ignore-error:\n%s", r.stderr)
	}
	if line := lastLineWith(r.stderr, "error: "); !strings.Contains(line, "upload blob sha256:") || !strings.Contains(line, "InternalError") {
		t.Fatalf("the error does not name the failed upload and its cause: %q\n%s", line, r.stderr)
	}
	r = s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.specVia(p, "name=main,mode=max,retry_max_attempts=2,ignore-error=true"))
	if r.err != nil {
		t.Fatalf("ignore-error=true: the failed export failed the build: %v", r)
	}
	if lastLineWith(r.stderr, "upload blob sha256:") == "" {
		t.Errorf("ignore-error=true: the failed export is not reported:\n%s", r.stderr)
	}
	requireManifestUnchanged(t, b, before)
	requireBucketConsistent(t, b)
	importFresh(t, b, ctxDir, out1)
}

// An export interrupted (SIGTERM) while its blobs upload leaves the
// previous manifest as it was.
func TestFaultExportInterrupted(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir, out1, before := firstExport(t, b)
	p := proxied(t, b)

	cmd := exec.Command(s3cacheBin, "build", "--root", t.TempDir(), "--progress", "plain",
		"-o", "type=local,dest="+t.TempDir(), "--cache-to", b.specVia(p, "name=main,mode=max"), ctxDir)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	var once sync.Once
	p.AddFault(proxytest.Fault{Kind: proxytest.Hang, Method: "PUT", Key: "/blobs/", OnRequest: func(*http.Request) {
		once.Do(func() { _ = cmd.Process.Signal(syscall.SIGTERM) })
	}})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("a build interrupted mid-export exited 0:\n%s", stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the interrupted build did not exit:\n%s", stderr.String())
	}
	if countFaulted := faulted(p); countFaulted == 0 {
		t.Fatalf("the build exited before uploading a blob: the test interrupted nothing\n%s", stderr.String())
	}
	requireManifestUnchanged(t, b, before)
	requireBucketConsistent(t, b)
	importFresh(t, b, ctxDir, out1)
}
