package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// The image as buildx's drivers run it: `make image`'s tarball loaded into
// a Docker engine of the test's own, the container started with the
// arguments buildx's docker-container driver passes, reached through the
// remote driver's docker-container:// endpoint (`buildctl dial-stdio` in
// the container), the cache in MinIO with the client's credentials. A
// second container, with fresh state, builds from the bucket.
func TestImageWithBuildxDockerContainerEndpoint(t *testing.T) {
	requireRoot(t)
	eng := startDockerEngine(t)
	b := newBucket(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}

	tarball := filepath.Join(t.TempDir(), "s3cache-image.tar")
	const image = "s3cache:e2e"
	mk := exec.Command(filepath.Join(root, "scripts", "make-image.sh"))
	mk.Env = append(cleanEnv(), "IMAGE="+image, "OUT="+tarball, "S3CACHE="+s3cacheBin, "S3CACHE_ROOT="+t.TempDir())
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	if r := eng.docker(t, "load", "-i", tarball); r.err != nil || !strings.Contains(r.stdout, image) {
		t.Fatalf("docker load: %v", r)
	}

	// What buildx's docker-container driver passes (buildx v0.36.1,
	// driver/docker-container getBuildkitFlags and builder
	// parseBuildkitdFlags): --config at /etc/buildkit/buildkitd.toml when
	// the builder has a config file, then network.host allowed.
	cfgDir := t.TempDir()
	toml := "debug = true\n\n[worker.oci]\n  enabled = true\n  gc = true\n"
	if err := os.WriteFile(filepath.Join(cfgDir, "buildkitd.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	driverArgs := []string{"--config", "/etc/buildkit/buildkitd.toml", "--allow-insecure-entitlement=network.host"}

	dockerConfig := t.TempDir()
	clientEnv := []string{
		"DOCKER_HOST=" + eng.host,
		"DOCKER_CONFIG=" + dockerConfig,
		"BUILDX_CONFIG=" + filepath.Join(dockerConfig, "buildx"),
		"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey,
	}
	buildx := func(args ...string) result {
		t.Helper()
		return runCmd(t, clientEnv, tool(t, "buildx"), args...)
	}
	ctxDir := buildContext(t, dockerfileTwoStage)
	s3 := b.specNoCreds("name=image")

	build := func(n int, out string, cacheArgs ...string) result {
		t.Helper()
		name := fmt.Sprintf("s3cache-image-%d", n)
		eng.runBuilder(t, name, image, cfgDir, driverArgs)
		if r := eng.docker(t, "exec", name, "buildkitd", "--version"); r.err != nil || len(strings.Fields(r.stdout)) != 4 ||
			!strings.HasPrefix(strings.Fields(r.stdout)[2], "v0.") {
			t.Fatalf("buildkitd --version in the image, which buildx's driver reads as four fields: %v", r)
		}
		if r := buildx("create", "--name", name, "--driver", "remote", "docker-container://"+name); r.err != nil {
			t.Fatalf("buildx create: %v", r)
		}
		args := append([]string{"build", "--builder", name, "--progress", "plain", "-o", "type=local,dest=" + out}, cacheArgs...)
		return buildx(append(args, ctxDir)...)
	}
	out1, out2 := t.TempDir(), t.TempDir()
	r := build(1, out1, "--cache-to", s3+",mode=max", "--cache-from", s3)
	if r.err != nil {
		t.Fatalf("buildx build with --cache-to: %v", r)
	}
	if keys := b.keys(t, "manifests/"); strings.Join(keys, " ") != "manifests/image" {
		t.Fatalf("manifests after the export from the image: %v", keys)
	}
	r = build(2, out2, "--cache-from", s3)
	if r.err != nil {
		t.Fatalf("buildx build with --cache-from: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
	if logs := eng.docker(t, "logs", "s3cache-image-1"); !strings.Contains(logs.stdout+logs.stderr, "level=debug") {
		t.Errorf("debug = true in buildkitd.toml gave no debug log:\n%s", logs.stderr)
	}
}

// dockerEngine is a dockerd of the test's own: its own data root, exec
// root and socket, no iptables or bridge, stopped at the end.
type dockerEngine struct {
	host string // DOCKER_HOST
}

func startDockerEngine(t *testing.T) *dockerEngine {
	t.Helper()
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dockerd not found: scripts/install-test-deps.sh installs Debian's docker.io")
		}
		t.Skip("dockerd not found: scripts/install-test-deps.sh installs Debian's docker.io")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("docker CLI not found beside dockerd")
	}
	// Short paths: containerd's sockets live under the exec root.
	dir, err := os.MkdirTemp("", "s3c-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	e := &dockerEngine{host: "unix://" + sock}
	cmd := exec.Command(dockerd,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", e.host,
		"--iptables=false", "--bridge=none",
		"--containerd-namespace", "s3cache-test",
		"--containerd-plugins-namespace", "s3cache-test-plugins")
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	t.Cleanup(func() {
		stopProcess(cmd, 30*time.Second)
		if t.Failed() {
			t.Logf("dockerd log:\n%s", log.String())
		}
		_ = os.RemoveAll(dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r := e.docker(t, "version"); r.err == nil {
			return e
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("dockerd did not answer on %s:\n%s", e.host, log.String())
	return nil
}

func (e *dockerEngine) docker(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, []string{"DOCKER_HOST=" + e.host}, "docker", args...)
}

// runBuilder starts image as container name the way buildx's
// docker-container driver does, but for --privileged, which this machine
// refuses (its bounding set lacks a capability): every capability but
// SYS_RESOURCE, no seccomp or AppArmor profile, the host's cgroup
// namespace with the cgroup filesystem writable, and host networking to
// reach MinIO on loopback. It waits as the driver does, until `buildctl
// debug workers` answers in the container.
func (e *dockerEngine) runBuilder(t *testing.T, name, image, cfgDir string, args []string) {
	t.Helper()
	run := []string{"run", "-d", "--name", name, "--init", "--network", "host",
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
		"-v", name + "_state:/var/lib/buildkit",
		"-v", cfgDir + ":/etc/buildkit:ro",
		image}
	if r := e.docker(t, append(run, args...)...); r.err != nil {
		t.Fatalf("docker run %s: %v", image, r)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs := e.docker(t, "logs", name)
			t.Logf("%s logs:\n%s%s", name, logs.stdout, logs.stderr)
		}
		e.docker(t, "rm", "-f", "-v", name)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if r := e.docker(t, "exec", name, "buildctl", "debug", "workers"); r.err == nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	logs := e.docker(t, "logs", name)
	t.Fatalf("buildkitd in %s did not answer `buildctl debug workers`:\n%s%s", name, logs.stdout, logs.stderr)
}
