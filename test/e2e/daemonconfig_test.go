package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// `s3cache daemon --config` takes its listening addresses, TLS files and
// root from buildkitd.toml, as BuildKit's Kubernetes examples give them (a
// unix socket and a mutual-TLS tcp address together), and its registry
// hosts: an image pull goes to the [registry."docker.io"] mirror, over
// plain HTTP as that mirror's table says.
func TestDaemonConfigFile(t *testing.T) {
	requireRoot(t)
	var mu sync.Mutex
	var pulled []string
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		pulled = append(pulled, r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer mirror.Close()
	mirrorHost := strings.TrimPrefix(mirror.URL, "http://")

	dir := t.TempDir()
	addr := "unix://" + filepath.Join(dir, "from-config.sock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr := "tcp://" + l.Addr().String()
	l.Close()
	certs := tlsFiles(t)
	root := filepath.Join(dir, "root-from-config")
	cfg := filepath.Join(dir, "buildkitd.toml")
	body := fmt.Sprintf(`root = %q
[grpc]
address = [%q, %q]
[grpc.tls]
cert = %q
key = %q
ca = %q
[worker.oci]
max-parallelism = 2
[[worker.oci.gcpolicy]]
all = true
reservedSpace = "1GB"
[registry."docker.io"]
mirrors = [%q]
[registry.%q]
http = true
`, root, addr, tcpAddr, filepath.Join(certs, "server.pem"), filepath.Join(certs, "server-key.pem"), filepath.Join(certs, "ca.pem"),
		mirrorHost, mirrorHost)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(s3cacheBin, "daemon", "--config", cfg)
	cmd.Env = cleanEnv()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopProcess(cmd, 20*time.Second)
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	}()
	answered := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !answered; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if c, err := client.New(ctx, addr); err == nil {
			_, err = c.ListWorkers(ctx)
			answered = err == nil
			c.Close()
		}
		cancel()
		if !answered {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !answered {
		t.Fatalf("the daemon did not answer on the config's address %s", addr)
	}
	if _, err := os.Stat(filepath.Join(root, "s3cache.lock")); err != nil {
		t.Fatalf("the daemon does not keep its state in the config's root: %v", err)
	}
	buildctl := tool(t, "buildctl")
	if r := runCmd(t, nil, buildctl, "--addr", tcpAddr, "--tlscacert", filepath.Join(certs, "ca.pem"),
		"--tlscert", filepath.Join(certs, "client.pem"), "--tlskey", filepath.Join(certs, "client-key.pem"), "debug", "workers"); r.err != nil {
		t.Fatalf("buildctl over the config's mutual TLS address: %v", r)
	}
	if r := runCmd(t, nil, buildctl, "--addr", tcpAddr, "--tlscacert", filepath.Join(certs, "ca.pem"), "--timeout", "5", "debug", "workers"); r.err == nil {
		t.Fatal("a client without a certificate was served on the config's TLS address")
	}

	// Nothing serves the image: the build fails, after asking the mirror.
	ctxDir := buildContext(t, "FROM docker.io/library/alpine:3.20\nRUN true\n")
	r := runCmd(t, nil, buildctl, "--addr", addr, "build", "--progress", "plain", "--frontend", "dockerfile.v0",
		"--local", "context="+ctxDir, "--local", "dockerfile="+ctxDir)
	if r.err == nil {
		t.Fatalf("a build from an image nothing serves succeeded:\n%s", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.ContainsFunc(pulled, func(p string) bool { return strings.HasPrefix(p, "/v2/library/alpine/manifests/") }) {
		t.Fatalf("the mirror got %q, want a manifest request for library/alpine:\n%s", pulled, r)
	}
}
