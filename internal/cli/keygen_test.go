package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/signature"
)

func TestKeygen(t *testing.T) {
	base := filepath.Join(t.TempDir(), "ci")
	out := mustRun(t, "keygen", base)
	keyText, err := os.ReadFile(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	pubText, err := os.ReadFile(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{base + ".key": 0o600, base + ".pub": 0o644} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if strings.Count(string(keyText), "\n") != 1 || strings.Count(string(pubText), "\n") != 1 {
		t.Errorf("key files are not one line each: %q, %q", keyText, pubText)
	}
	priv, err := signature.ParsePrivateKey(string(keyText))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.ParsePublicKey(string(pubText))
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf(".pub is not .key's public key: %v", err)
	}
	contains(t, "keygen output", out, pub.ID())
	if strings.Contains(out, strings.TrimSpace(string(keyText))) {
		t.Fatal("keygen printed the private key")
	}

	// An existing pair is kept unless --force.
	_, _, err = run(t, "keygen", base)
	if err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("keygen over an existing pair: %v, want an error saying it exists", err)
	}
	if again, _ := os.ReadFile(base + ".key"); string(again) != string(keyText) {
		t.Fatal("a refused keygen changed the key")
	}
	mustRun(t, "keygen", "--force", base)
	if again, _ := os.ReadFile(base + ".key"); string(again) == string(keyText) {
		t.Fatal("keygen --force kept the old key")
	}
}
