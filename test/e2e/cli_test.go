package e2e

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const dockerfileSecret = `FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN --mount=type=secret,id=token cp /run/secrets/token /seen
FROM scratch
COPY --from=base /seen /
`

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		names = append(names, h.Name)
	}
}

func TestBuildOutputsAndSecret(t *testing.T) {
	requireRoot(t)
	ctxDir := buildContext(t, dockerfileSecret)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("build-secret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := t.TempDir()
	r := runCmd(t, nil, s3cacheBin, "build", "--root", root, "--progress", "plain",
		"--secret", "id=token,src="+tokenFile, "-t", "example/app:1",
		"-o", "type=local,dest="+filepath.Join(dir, "local"),
		"-o", "type=tar,dest="+filepath.Join(dir, "out.tar"),
		ctxDir)
	if r.err != nil {
		t.Fatalf("build: %v", r)
	}
	seen, err := os.ReadFile(filepath.Join(dir, "local", "seen"))
	if err != nil || string(seen) != "build-secret-value" {
		t.Fatalf("the --secret did not reach the RUN mount: %q, %v", seen, err)
	}
	if names := tarNames(t, filepath.Join(dir, "out.tar")); strings.Join(names, " ") != "seen" {
		t.Errorf("tar output holds %v, want [seen]", names)
	}
	r = runCmd(t, nil, s3cacheBin, "build", "--root", root, "--progress", "quiet",
		"--secret", "id=token,src="+tokenFile, "-t", "example/app:1",
		"-o", "type=oci,dest="+filepath.Join(dir, "oci.tar"), ctxDir)
	if r.err != nil {
		t.Fatalf("oci output: %v", r)
	}
	names := strings.Join(tarNames(t, filepath.Join(dir, "oci.tar")), " ")
	if !strings.Contains(names, "index.json") || !strings.Contains(names, "oci-layout") {
		t.Errorf("oci output holds %s, want an OCI layout", names)
	}
}

// Every malformed spec is refused before any work, in one line naming the attribute.
func TestMalformedSpecsRefused(t *testing.T) {
	ctxDir := buildContext(t, dockerfileTwoStage)
	for _, tc := range []struct{ spec, attr string }{
		{"type=s3,bucket=b", "region"},
		{"type=s3,region=r", "bucket"},
		{"type=s3,region=r,bucket=", "bucket"},
		{"type=s3,region=r,bucket=b,touch_refresh=-1h", "touch_refresh"},
		{"type=s3,region=r,bucket=b,upload_parallelism=four", "upload_parallelism"},
		{"type=s3,region=r,bucket=b,retry_max_attempts=0", "retry_max_attempts"},
		{"type=s3,region=r,bucket=b,endpoint_url=ftp://x", "endpoint_url"},
		{`type=s3,region=r,bucket=b,"name=a`, "quote"},
		{"type=s3,region=r,bucket=b,mode=maximal", "mode"},
		{"type=s3,region=r,bucket=b,name=a;;b", "name"},
		{"type=s3,region=r,bucket=b,name=main/", "name"},
		{"type=s3,region=r,bucket=b,use_path_style=yes", "use_path_style"},
	} {
		t.Run(tc.attr, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			r := runCmd(t, nil, s3cacheBin, "build", "--root", root, "--cache-to", tc.spec, ctxDir)
			if r.err == nil {
				t.Fatalf("spec %q accepted", tc.spec)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.attr) {
				t.Errorf("spec %q: want one line naming %q, got:\n%s", tc.spec, tc.attr, r.stderr)
			}
			if _, err := os.Stat(root); err == nil {
				t.Errorf("spec %q: the engine started (created its root) before the spec was refused", tc.spec)
			}
		})
	}
}

func TestRootIsLocked(t *testing.T) {
	requireRoot(t)
	d := ourDaemon(t)
	root := filepath.Join(filepath.Dir(strings.TrimPrefix(d.addr, "unix://")), "root")
	r := s3cacheBuild(t, root, buildContext(t, dockerfileTwoStage), t.TempDir())
	if r.err == nil || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("a build on a daemon's root must be refused: %v", r)
	}
}

func TestDaemonStopsOnSIGTERM(t *testing.T) {
	requireRoot(t)
	d := ourDaemon(t)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exited with %v after SIGTERM:\n%s", err, d.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon still running 30s after SIGTERM")
	}
	if _, err := os.Stat(strings.TrimPrefix(d.addr, "unix://")); err == nil {
		t.Logf("socket left behind (harmless: the next start removes it)")
	}
}

// tlsFiles writes a CA, a server certificate for 127.0.0.1 and a client certificate.
func tlsFiles(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "s3cache test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range []string{"server", "client"} {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		if name == "server" {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	return dir
}

func TestDaemonMutualTLS(t *testing.T) {
	requireRoot(t)
	certs := tlsFiles(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(s3cacheBin, "daemon", "--root", filepath.Join(dir, "root"), "--addr", addr,
		"--tlscert", filepath.Join(certs, "server.pem"), "--tlskey", filepath.Join(certs, "server-key.pem"),
		"--tlscacert", filepath.Join(certs, "ca.pem"))
	log := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })

	buildctl := tool(t, "buildctl")
	tlsArgs := []string{"--addr", addr, "--tlscacert", filepath.Join(certs, "ca.pem"), "--tlscert", filepath.Join(certs, "client.pem"), "--tlskey", filepath.Join(certs, "client-key.pem")}
	var r result
	for i := 0; i < 100; i++ {
		if r = runCmd(t, nil, buildctl, append(tlsArgs, "debug", "workers")...); r.err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.err != nil {
		t.Fatalf("buildctl over mutual TLS: %v\ndaemon log:\n%s", r, log)
	}
	// Without a client certificate the daemon refuses.
	r = runCmd(t, nil, buildctl, "--addr", addr, "--tlscacert", filepath.Join(certs, "ca.pem"), "--timeout", "5", "debug", "workers")
	if r.err == nil {
		t.Fatalf("a client without a certificate was served")
	}
}
