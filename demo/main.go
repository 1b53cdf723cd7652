// Command demo is `make demo`: it starts MinIO on loopback, builds the
// example with --cache-to type=s3, wipes the engine's state, rebuilds with
// --cache-from and shows which steps came from the bucket.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	bin, err := filepath.Abs("bin/s3cache")
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s missing: run make build first: %w", bin, err)
	}
	work, err := os.MkdirTemp("", "s3cache-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step("starting MinIO on loopback")
	srv, err := miniotest.Start()
	if err != nil {
		return err
	}
	defer srv.Stop()
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, "build-cache"); err != nil {
		return err
	}
	fmt.Printf("    MinIO at %s, bucket build-cache\n", srv.Endpoint)

	ctxDir := filepath.Join(work, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	if err := copyFile("examples/demo/Dockerfile", filepath.Join(ctxDir, "Dockerfile"), 0o644); err != nil {
		return err
	}
	if err := copyFile("/bin/busybox", filepath.Join(ctxDir, "busybox"), 0o755); err != nil {
		return fmt.Errorf("Debian's busybox-static is the offline base image: %w", err)
	}

	spec := fmt.Sprintf("type=s3,region=%s,bucket=build-cache,endpoint_url=%s,use_path_style=true,name=main", miniotest.Region, srv.Endpoint)
	root := filepath.Join(work, "engine")
	// Credentials come from the environment, as on a CI machine.
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY="+miniotest.SecretKey)

	step("build 1: empty engine, --cache-to " + spec + ",mode=max")
	first, err := build(bin, env, "--root", root, "--cache-to", spec+",mode=max", "-o", "type=local,dest="+filepath.Join(work, "out1"), ctxDir)
	if err != nil {
		return err
	}

	step("wiping the engine's local state (" + root + ")")
	if err := os.RemoveAll(root); err != nil {
		return err
	}

	step("build 2: fresh engine, --cache-from " + spec)
	second, err := build(bin, env, "--root", root, "--cache-from", spec, "-o", "type=local,dest="+filepath.Join(work, "out2"), ctxDir)
	if err != nil {
		return err
	}

	a, err := os.ReadFile(filepath.Join(work, "out1", "app.bin"))
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(work, "out2", "app.bin"))
	if err != nil {
		return err
	}
	step("result")
	fmt.Printf("    build 1 (cold):         %6.2fs\n", first.Seconds())
	fmt.Printf("    build 2 (from bucket):  %6.2fs\n", second.Seconds())
	fmt.Printf("    outputs byte-identical: %v (the RUN steps write random bytes, so only cache hits reproduce them)\n", bytes.Equal(a, b))
	if !bytes.Equal(a, b) {
		return fmt.Errorf("the rebuild did not come from the bucket")
	}
	return nil
}

var summary = regexp.MustCompile(`(?m)^(s3cache: build finished.*|  CACHED .*)$`)

// build runs s3cache build and prints its cache summary.
func build(bin string, env []string, args ...string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.Command(bin, append([]string{"build", "--progress", "plain"}, args...)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stdout, &stderr
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		os.Stderr.Write(stderr.Bytes())
		return d, fmt.Errorf("s3cache build: %w", err)
	}
	for _, line := range summary.FindAllString(stderr.String(), -1) {
		fmt.Println("    " + line)
	}
	return d, nil
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }

func copyFile(src, dst string, mode os.FileMode) error {
	dt, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, dt, mode)
}
