package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// upstreamDaemon runs buildkitd built from the BuildKit module in go.mod.
func upstreamDaemon(t *testing.T) *daemon {
	return startDaemon(t, nil, tool(t, "buildkitd"), "--oci-worker=true", "--containerd-worker=false")
}

func ourDaemon(t *testing.T, env ...string) *daemon {
	return startDaemon(t, env, s3cacheBin, "daemon")
}

// (e) upstream buildkitd and our engine import each other's cache from the
// same bucket with every RUN a hit, with default and custom prefixes.
func TestInteropWithUpstreamBuildkitd(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct{ name, attrs string }{
		{"default-prefixes", "name=interop"},
		{"custom-prefixes", "name=interop,prefix=team/a/,blobs_prefix=b/,manifests_prefix=m/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("ours-to-upstream", func(t *testing.T) {
				b := newBucket(t)
				ctxDir := buildContext(t, dockerfileTwoStage)
				out1, out2 := t.TempDir(), t.TempDir()
				// Ours through the embedded engine.
				if r := s3cacheBuild(t, t.TempDir(), ctxDir, out1, "--cache-to", b.spec(tc.attrs+",mode=max")); r.err != nil {
					t.Fatalf("our export: %v", r)
				}
				up := upstreamDaemon(t)
				r := buildctlBuild(t, up, ctxDir, out2, "--import-cache", b.spec(tc.attrs))
				if r.err != nil {
					t.Fatalf("upstream import: %v", r)
				}
				requireRunHits(t, r.stderr, 3)
				requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
			})
			t.Run("upstream-to-ours", func(t *testing.T) {
				b := newBucket(t)
				ctxDir := buildContext(t, dockerfileTwoStage)
				out1, out2 := t.TempDir(), t.TempDir()
				up := upstreamDaemon(t)
				if r := buildctlBuild(t, up, ctxDir, out1, "--export-cache", b.spec(tc.attrs+",mode=max")); r.err != nil {
					t.Fatalf("upstream export: %v", r)
				}
				// (f) Ours as a daemon, driven by upstream's buildctl.
				ours := ourDaemon(t)
				r := buildctlBuild(t, ours, ctxDir, out2, "--import-cache", b.spec(tc.attrs))
				if r.err != nil {
					t.Fatalf("our import: %v", r)
				}
				requireRunHits(t, r.stderr, 3)
				requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
			})
		})
	}
}

// (f) buildctl against `s3cache daemon`: export, then import into a new
// daemon root.
func TestBuildctlAgainstOurDaemon(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	out1, out2 := t.TempDir(), t.TempDir()
	d1 := ourDaemon(t)
	if r := buildctlBuild(t, d1, ctxDir, out1, "--export-cache", b.spec("name=ctl,mode=max")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	d2 := ourDaemon(t)
	r := buildctlBuild(t, d2, ctxDir, out2, "--import-cache", b.spec("name=ctl"))
	if r.err != nil {
		t.Fatalf("import: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
	// Like BuildKit's own pulls, the import shows each blob it fetches, with
	// its bytes, and the unpacking of its layer.
	if !blobProgress.MatchString(r.stderr) || !strings.Contains(r.stderr, "extracting sha256:") {
		t.Fatalf("the import's progress shows no blob fetched and unpacked:\n%s", r.stderr)
	}
}

// blobProgress is a blob download line of buildctl's plain progress.
var blobProgress = regexp.MustCompile(`(?m)^#\d+ sha256:[0-9a-f]{64} [0-9.]+[kMG]?B / [0-9.]+[kMG]?B .*done$`)

// The daemon's --debugaddr serves Go's profiling endpoints, as buildkitd's
// does; an address it can't listen on fails the start, naming it.
func TestDaemonDebugAddr(t *testing.T) {
	requireRoot(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	startDaemon(t, nil, s3cacheBin, "daemon", "--debugaddr", addr)
	for _, path := range []string{"/debug/pprof/", "/debug/vars"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
	}

	dir := t.TempDir()
	r := runCmd(t, nil, s3cacheBin, "daemon", "--root", filepath.Join(dir, "root"),
		"--addr", "unix://"+filepath.Join(dir, "sock"), "--debugaddr", addr)
	if r.err == nil || !strings.Contains(r.stderr, "debug address "+addr) {
		t.Fatalf("a daemon whose debug address is taken: %v, want a failed start naming %s", r, addr)
	}
	if _, err := os.Stat(filepath.Join(dir, "root")); !os.IsNotExist(err) {
		t.Fatalf("a daemon that failed to start touched its root: %v", err)
	}
}

// (d) docker buildx with the remote driver against `s3cache daemon`, the
// seed's synopsis, with credentials only in the client's environment.
func TestBuildxRemoteDriverWithClientCredentials(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	dockerConfig := t.TempDir()
	clientEnv := []string{
		"DOCKER_CONFIG=" + dockerConfig,
		"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey,
	}
	// As users run it: `docker buildx`, the plugin under the docker CLI, where
	// the CLI is installed; else the same buildx binary standalone.
	buildxCmd := []string{tool(t, "buildx")}
	if docker, err := exec.LookPath("docker"); err == nil {
		plugins := filepath.Join(dockerConfig, "cli-plugins")
		if err := os.MkdirAll(plugins, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(buildxCmd[0], filepath.Join(plugins, "docker-buildx")); err != nil {
			t.Fatal(err)
		}
		buildxCmd = []string{docker, "buildx"}
	}
	buildx := func(args ...string) result {
		t.Helper()
		return runCmd(t, clientEnv, buildxCmd[0], append(buildxCmd[1:], args...)...)
	}
	s3 := b.specNoCreds("name=buildx")

	builders := 0
	build := func(d *daemon, out string, cacheArgs ...string) result {
		t.Helper()
		builders++
		name := fmt.Sprintf("s3cache-%d", builders)
		if r := buildx("create", "--name", name, "--driver", "remote", d.addr); r.err != nil {
			t.Fatalf("buildx create: %v", r)
		}
		args := append([]string{"build", "--builder", name, "--progress", "plain", "-o", "type=local,dest=" + out}, cacheArgs...)
		return buildx(append(args, ctxDir)...)
	}

	// The daemons have no AWS credentials of their own.
	out1, out2 := t.TempDir(), t.TempDir()
	r := build(ourDaemon(t), out1, "--cache-to", s3+",mode=max", "--cache-from", s3)
	if r.err != nil {
		t.Fatalf("buildx build with --cache-to: %v", r)
	}
	if keys := b.keys(t, "manifests/"); strings.Join(keys, " ") != "manifests/buildx" {
		t.Fatalf("manifests after buildx export: %v", keys)
	}
	r = build(ourDaemon(t), out2, "--cache-from", s3)
	if r.err != nil {
		t.Fatalf("buildx build with --cache-from: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
	if strings.Contains(r.stderr+r.stdout, miniotest.SecretKey) {
		t.Errorf("buildx output shows the secret key")
	}
}
