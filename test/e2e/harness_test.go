package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moby/buildkit/client"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// s3cacheBin is the s3cache binary built for this test run.
var s3cacheBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "s3cache-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	s3cacheBin = filepath.Join(dir, "s3cache")
	cmd := exec.Command("go", "build", "-o", s3cacheBin, "github.com/s3cache/s3cache/cmd/s3cache")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build s3cache:", err)
		return 1
	}
	return miniotest.Main(m)
}

// requireRoot skips (or, under CI, fails) tests that run containers.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("runc"); err == nil {
			return
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("end-to-end tests need root and runc (scripts/install-test-deps.sh)")
	}
	t.Skip("end-to-end tests need root and runc")
}

// tool finds a test tool built by scripts/install-test-deps.sh: in
// .tools/bin of the module, then on PATH.
func tool(t *testing.T, name string) string {
	t.Helper()
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: run scripts/install-test-deps.sh", name)
	}
	t.Skipf("%s not found: run scripts/install-test-deps.sh", name)
	return ""
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// Dockerfiles on the offline base: a scratch image holding Debian's
// busybox-static. RUN steps write random bytes, so a step that ran again
// instead of coming from cache changes the output.
const dockerfileTwoStage = `FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
RUN head -c 4096 /dev/urandom > /rand1
RUN head -c 4096 /dev/urandom > /rand2 && cat /rand1 /rand2 | md5sum > /sum

FROM scratch
COPY --from=build /rand1 /rand2 /sum /
`

// buildContext writes a context directory with busybox and the Dockerfile.
func buildContext(t *testing.T, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("read Debian's busybox-static: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// bucket is a fresh MinIO bucket and the spec attributes that reach it.
type bucket struct {
	srv  *miniotest.Server
	name string
}

func newBucket(t *testing.T) bucket {
	srv := miniotest.Shared(t)
	return bucket{srv: srv, name: srv.Bucket(t)}
}

// spec is a type=s3 spec with explicit credentials plus extra attributes.
func (b bucket) spec(extra string) string {
	s := "type=s3," + b.srv.Spec(b.name)
	if extra != "" {
		s += "," + extra
	}
	return s
}

// specNoCreds leaves credentials to the environment of whoever talks to S3.
func (b bucket) specNoCreds(extra string) string {
	s := fmt.Sprintf("type=s3,region=%s,bucket=%s,endpoint_url=%s,use_path_style=true", miniotest.Region, b.name, b.srv.Endpoint)
	if extra != "" {
		s += "," + extra
	}
	return s
}

func (b bucket) keys(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := b.srv.Client("").ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &b.name, Prefix: &prefix})
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, *o.Key)
	}
	sort.Strings(keys)
	return keys
}

// result is what a command printed.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("err: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

func runCmd(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// cleanEnv is the environment without AWS settings, so that each test
// says which credentials each process has.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// s3cacheBuild runs an embedded `s3cache build` with its own engine root.
func s3cacheBuild(t *testing.T, root, ctxDir, out string, args ...string) result {
	t.Helper()
	all := append([]string{"build", "--root", root, "--progress", "plain", "-o", "type=local,dest=" + out}, args...)
	all = append(all, ctxDir)
	return runCmd(t, nil, s3cacheBin, all...)
}

var (
	vertexLine  = regexp.MustCompile(`(?m)^#(\d+) (\[.*)$`)
	cachedLine  = regexp.MustCompile(`(?m)^#(\d+) CACHED$`)
	summaryLine = regexp.MustCompile(`(?m)^  CACHED (\[.*)$`)
)

// cachedSteps reads plain progress output (BuildKit's, buildx's or ours)
// and returns the names of the steps that were cache hits.
func cachedSteps(progress string) map[string]bool {
	names := map[string]string{}
	for _, m := range vertexLine.FindAllStringSubmatch(progress, -1) {
		if _, ok := names[m[1]]; !ok {
			names[m[1]] = m[2]
		}
	}
	out := map[string]bool{}
	for _, m := range cachedLine.FindAllStringSubmatch(progress, -1) {
		if n, ok := names[m[1]]; ok {
			out[n] = true
		}
	}
	// s3cache build's own summary: the plain display can fold a cache
	// load into a plain DONE line when the step's status updates merge.
	for _, m := range summaryLine.FindAllStringSubmatch(progress, -1) {
		out[m[1]] = true
	}
	return out
}

// requireRunHits fails unless every RUN step of the progress was cached.
func requireRunHits(t *testing.T, progress string, wantRuns int) {
	t.Helper()
	cached := cachedSteps(progress)
	runs := 0
	for name := range cached {
		if strings.Contains(name, "RUN ") {
			runs++
		}
	}
	if runs != wantRuns {
		t.Fatalf("%d RUN steps came from cache, want %d; cached: %v\nprogress:\n%s", runs, wantRuns, cached, progress)
	}
}

func requireSameFiles(t *testing.T, a, b string, files ...string) {
	t.Helper()
	for _, f := range files {
		x, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Fatalf("%s differs between the first build and the rebuild from cache", f)
		}
	}
}

// stopProcess interrupts cmd and waits for it to exit, killing it after
// grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// daemon is a running BuildKit daemon (ours or upstream's).
type daemon struct {
	addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// startDaemon runs bin with args plus --root and --addr on a fresh socket,
// with env, and waits until it answers.
func startDaemon(t *testing.T, env []string, bin string, args ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	addr := "unix://" + filepath.Join(dir, "buildkitd.sock")
	args = append(args, "--root", filepath.Join(dir, "root"), "--addr", addr)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	d := &daemon{addr: addr, cmd: cmd, log: log}
	t.Cleanup(func() {
		stopProcess(cmd, 20*time.Second)
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(bin), log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := client.New(ctx, addr)
		if err == nil {
			_, err = c.ListWorkers(ctx)
			c.Close()
		}
		cancel()
		if err == nil {
			return d
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer on %s:\n%s", bin, addr, log.String())
	return nil
}

// buildctlBuild runs buildctl against a daemon with the Dockerfile frontend.
func buildctlBuild(t *testing.T, d *daemon, ctxDir, out string, cacheArgs ...string) result {
	t.Helper()
	args := []string{"--addr", d.addr, "build", "--progress", "plain", "--frontend", "dockerfile.v0",
		"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir,
		"--output", "type=local,dest=" + out}
	args = append(args, cacheArgs...)
	return runCmd(t, nil, tool(t, "buildctl"), args...)
}
