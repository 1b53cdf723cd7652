package backend

import (
	"strings"
	"testing"

	"github.com/s3cache/s3cache/spec"
)

func TestVaultSealsSecretsForTheBuild(t *testing.T) {
	v := NewVault()
	attrs := map[string]string{"region": "r", "access_key_id": "AK", "secret_access_key": "SK", "session_token": "TOK"}
	refs := v.Seal(attrs)
	if len(refs) != 2 {
		t.Fatalf("sealed %d values, want the secret key and the token", len(refs))
	}
	for _, k := range spec.SecretAttrs {
		if !strings.HasPrefix(attrs[k], sealedPrefix) {
			t.Errorf("%s = %q, want a sealed reference", k, attrs[k])
		}
	}
	if attrs["access_key_id"] != "AK" || attrs["region"] != "r" {
		t.Errorf("non-secret attributes changed: %v", attrs)
	}
	opened := v.open(attrs)
	if opened["secret_access_key"] != "SK" || opened["session_token"] != "TOK" {
		t.Errorf("open = %v, want the original secrets", opened)
	}
	if !strings.HasPrefix(attrs["secret_access_key"], sealedPrefix) {
		t.Errorf("open modified its input")
	}
	v.Release(refs)
	if got := v.open(attrs)["secret_access_key"]; got != "" {
		t.Errorf("after release a reference still opens to %q", got)
	}
	var nilVault *Vault
	if got := nilVault.open(map[string]string{"secret_access_key": "x"}); got["secret_access_key"] != "x" {
		t.Errorf("a nil vault must pass attributes through")
	}
}
