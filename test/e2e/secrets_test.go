package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// Planted secrets: a wrong key and token (exports fail with them) and the
// real MinIO secret (exports succeed). None may appear in any output, log,
// error or the daemon's state, build history included.
const (
	plantedSecret = "PLANTED-secret-4f9a1c"
	plantedToken  = "PLANTED-token-7d3e2b"
	// A valid signing key (its own text, as s3cache keygen writes it); the
	// scans look for its secret part.
	plantedSigningSeed = "8P534C3MjXhsR-tUIX_uuBrpxvwP_8aQH-8HhD1BpNI"
	plantedSigningKey  = "s3cache-ed25519-private:" + plantedSigningSeed
)

func requireNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{plantedSecret, plantedToken, plantedSigningSeed, miniotest.SecretKey} {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a secret (%s...)", what, s[:8])
		}
	}
}

func TestSecretsNeverShown(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	good := b.spec("name=s,mode=max,signing_key=" + plantedSigningKey)
	bad := "type=s3,region=us-east-1,bucket=" + b.name + ",endpoint_url=" + b.srv.Endpoint +
		",use_path_style=true,access_key_id=AKIAPLANTED,secret_access_key=" + plantedSecret + ",session_token=" + plantedToken + ",retry_max_attempts=1" +
		",signing_key=" + plantedSigningKey

	// The embedded engine with debug logs: a good export and import, a
	// failing export, the same with ignore-error, and a spec refused.
	for i, args := range [][]string{
		{"--debug", "--cache-to", good},
		{"--debug", "--cache-from", good},
		{"--debug", "--cache-to", bad},
		{"--debug", "--cache-to", bad + ",ignore-error=true", "--cache-from", bad},
		{"--cache-to", bad + ",upload_parallelism=zero"},
		{"--cache-to", bad + ",upload_paralelism=2"},
		{"--cache-to", bad + "x"},                                  // a malformed signing key
		{"--cache-from", bad + ",verify_key=" + plantedSigningKey}, // a private key given to verify
		{"--cache-to", bad + ",signing_ky=" + plantedSigningKey},   // unknown attribute
	} {
		r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), args...)
		if i < 2 && r.err != nil {
			t.Fatalf("build with good credentials: %v", r.err)
		}
		if i == 1 {
			requireRunHits(t, r.stderr, 3)
		}
		requireNoSecret(t, "s3cache build "+strings.Join(args[:len(args)-1], " "), r.stdout+r.stderr)
	}

	// Our daemon with debug logs, driven by buildctl; then its state on disk.
	d := startDaemon(t, nil, s3cacheBin, "daemon", "--debug")
	for i, spec := range []string{good, bad, bad + ",ignore-error=true"} {
		r := buildctlBuild(t, d, ctxDir, t.TempDir(), "--export-cache", spec, "--import-cache", spec)
		if i == 0 {
			// The daemon resolved the sealed secret: the import hit.
			if r.err != nil {
				t.Fatalf("buildctl with good credentials: %v", r.err)
			}
			requireRunHits(t, r.stderr, 3)
		}
		requireNoSecret(t, "buildctl output", r.stdout+r.stderr)
	}
	r := runCmd(t, nil, tool(t, "buildctl"), "--addr", d.addr, "debug", "histories")
	requireNoSecret(t, "build history listing", r.stdout+r.stderr)
	requireNoSecret(t, "daemon log", d.log.String())
	root := filepath.Join(filepath.Dir(strings.TrimPrefix(d.addr, "unix://")), "root")
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		dt, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, s := range []string{plantedSecret, plantedToken, plantedSigningSeed, miniotest.SecretKey} {
			if bytes.Contains(dt, []byte(s)) {
				t.Errorf("daemon state file %s holds a secret (%s...)", strings.TrimPrefix(path, root), s[:8])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
