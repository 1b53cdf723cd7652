package cli_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/inventory"
)

// dockerfile has a base stage every variant shares and a step of its own.
const dockerfile = `FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base
ARG VARIANT
RUN head -c 65536 /dev/urandom > /rand-$VARIANT
`

// requireBuilds skips (under CI=true: fails) where real builds can't run.
func requireBuilds(t *testing.T) string {
	t.Helper()
	_, runcErr := exec.LookPath("runc")
	busybox, bbErr := os.ReadFile("/bin/busybox")
	if os.Geteuid() != 0 || runcErr != nil || bbErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("real builds need root, runc and /bin/busybox (scripts/install-test-deps.sh)")
		}
		t.Skip("real builds need root, runc and /bin/busybox")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "busybox"), busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var summary = regexp.MustCompile(`(\d+) of (\d+) steps cached`)

// build runs `s3cache build` (embedded engine under root) and returns how
// many steps were cached.
func build(t *testing.T, root, ctxDir, variant string, cacheArgs ...string) int {
	t.Helper()
	args := append([]string{"build", "--root", root, "--progress", "plain", "-o", "type=local,dest=" + t.TempDir(),
		"--build-arg", "VARIANT=" + variant}, cacheArgs...)
	_, stderr, err := run(t, append(args, ctxDir)...)
	if err != nil {
		t.Fatalf("build %s: %v\n%s", variant, err, stderr)
	}
	m := summary.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("build %s: no summary in\n%s", variant, stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestBucketCommandsOnRealBuilds runs the bucket commands on caches that
// real builds exported (mode=max): two caches sharing a base stage, and
// the layer of a third whose manifest is gone.
func TestBucketCommandsOnRealBuilds(t *testing.T) {
	ctxDir := requireBuilds(t)
	b := cachetest.NewBucket(t, "prefix=real/")
	// Each build gets a fresh engine root (an engine's root cannot be
	// reopened in the same process); dev and tmp import main's cache, as a
	// branch build does, so the three share the base stage's blobs.
	build(t, t.TempDir(), ctxDir, "main", "--cache-to", b.With("name=main", "mode=max"))
	for _, v := range []string{"dev", "tmp"} {
		build(t, t.TempDir(), ctxDir, v, "--cache-from", b.With("name=main"), "--cache-to", b.With("name="+v, "mode=max"))
	}
	if err := b.Store.Delete(context.Background(), []string{b.Layout.ManifestKey("tmp")}); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "ls", b.Spec)
	contains(t, "ls", out, "main", "dev")
	mustRun(t, "verify", b.Spec, "--all", "--deep")
	du, err := inventory.DU(context.Background(), b.Store, b.Layout, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after three builds: %d blobs, %d shared, %d unreferenced", du.Blobs.Objects, du.Shared.Objects, du.Unreferenced.Objects)
	if du.Unreferenced.Objects == 0 || du.Shared.Objects == 0 {
		t.Fatalf("du after three builds, one manifest deleted: %+v; want shared base layers and tmp's layer unreferenced", du)
	}

	out = mustRun(t, "prune", b.Spec)
	contains(t, "prune", out, "deleted 0 blobs")
	mustRun(t, "prune", b.Spec, "--grace", "0s")
	after, err := inventory.DU(context.Background(), b.Store, b.Layout, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Unreferenced.Objects != 0 || after.Referenced != du.Referenced {
		t.Fatalf("du after prune --grace 0s: %+v, before: %+v; want only the unreferenced gone", after, du)
	}
	mustRun(t, "verify", b.Spec, "--all", "--deep")

	// The pruned bucket still serves the cache: a fresh engine rebuilds
	// main with every step from it.
	cached := build(t, t.TempDir(), ctxDir, "main", "--cache-from", b.With("name=main"))
	t.Logf("rebuild of main from the pruned cache: %d steps cached", cached)
	if cached < 3 {
		t.Fatalf("rebuild from the pruned cache: %d steps cached, want the COPY and both RUNs", cached)
	}
}
