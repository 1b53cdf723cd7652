package backend

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/session"

	"github.com/s3cache/s3cache/spec"
)

func TestVaultSealsSecretsForTheBuild(t *testing.T) {
	v := NewVault()
	attrs := map[string]string{"region": "r", "access_key_id": "AK", "secret_access_key": "SK", "session_token": "TOK", "signing_key": "SIGN"}
	refs, err := v.Seal(attrs, "session-a")
	if err != nil || len(refs) != 3 {
		t.Fatalf("sealed %d values (%v), want the secret key, the token and the signing key", len(refs), err)
	}
	for _, k := range spec.SecretAttrs {
		if !strings.HasPrefix(attrs[k], sealedPrefix) {
			t.Errorf("%s = %q, want a sealed reference", k, attrs[k])
		}
	}
	if attrs["access_key_id"] != "AK" || attrs["region"] != "r" {
		t.Errorf("non-secret attributes changed: %v", attrs)
	}
	opened, err := v.Open(attrs, session.NewGroup("session-a"))
	if err != nil || opened["secret_access_key"] != "SK" || opened["session_token"] != "TOK" || opened["signing_key"] != "SIGN" {
		t.Errorf("open = %v, %v; want the original secrets", opened, err)
	}
	if !strings.HasPrefix(attrs["secret_access_key"], sealedPrefix) {
		t.Errorf("open modified its input")
	}
	v.Release(refs)
	if got, err := v.Open(attrs, session.NewGroup("session-a")); err == nil {
		t.Errorf("after release a reference still opens to %q", got["secret_access_key"])
	}
	var nilVault *Vault
	if got, err := nilVault.Open(map[string]string{"secret_access_key": "x"}, nil); err != nil || got["secret_access_key"] != "x" {
		t.Errorf("a nil vault must pass attributes through")
	}
}

// TestVaultReferenceIsNoBearerToken is the attack: client B copies the
// sealed reference of A's running build (visible in build history) into
// its own spec. Neither B's request nor B's build may turn it into A's
// secret.
func TestVaultReferenceIsNoBearerToken(t *testing.T) {
	v := NewVault()
	a := map[string]string{"access_key_id": "AK-A", "secret_access_key": "SK-A", "session_token": "TOK-A"}
	if _, err := v.Seal(a, "session-a"); err != nil {
		t.Fatal(err)
	}
	stolen := map[string]string{"access_key_id": "AK-A", "secret_access_key": a["secret_access_key"], "session_token": a["session_token"]}

	// B's request: the daemon seals what a client sends, and a reference
	// is not something a client sends.
	b := map[string]string{"secret_access_key": "SK-B", "session_token": stolen["session_token"]}
	refs, err := v.Seal(b, "session-b")
	if err == nil || !strings.Contains(err.Error(), "session_token") || len(refs) != 0 {
		t.Fatalf("seal of a client's copied reference: refs %v, %v; want an error naming session_token", refs, err)
	}
	if strings.Contains(err.Error(), stolen["session_token"]) || strings.Contains(err.Error(), "SK-B") {
		t.Errorf("the error echoes a reference or a secret: %v", err)
	}
	v.mu.Lock()
	n := len(v.secrets)
	v.mu.Unlock()
	if n != 2 {
		t.Errorf("vault holds %d secrets after the refused seal, want A's 2 (B's partial seal released)", n)
	}

	// B's build, reached without going through the engine's Solve (a
	// frontend's own cache imports): the reference is not B's session's.
	for _, g := range []session.Group{session.NewGroup("session-b"), session.NewGroup(), nil} {
		got, err := v.Open(stolen, g)
		if err == nil {
			t.Fatalf("open for another session: %v, want an error", got)
		}
		if !strings.Contains(err.Error(), "secret_access_key") || strings.Contains(err.Error(), stolen["secret_access_key"]) || strings.Contains(err.Error(), "SK-A") {
			t.Errorf("error must name the attribute and neither the reference nor the secret: %v", err)
		}
	}
	// A's own build still opens it; with B's session in the group too.
	if got, err := v.Open(stolen, session.NewGroup("session-b", "session-a")); err != nil || got["secret_access_key"] != "SK-A" {
		t.Errorf("open for A's session: %v, %v", got, err)
	}
}

func TestPolicy(t *testing.T) {
	cfg := func(kv ...string) spec.Config {
		attrs := map[string]string{"region": "r", "bucket": "ci-main"}
		for i := 0; i+1 < len(kv); i += 2 {
			attrs[kv[i]] = kv[i+1]
		}
		c, err := spec.FromAttrs(attrs)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	keys := []string{"access_key_id", "AK", "secret_access_key", "SK"}
	tests := []struct {
		name    string
		policy  Policy
		cfg     spec.Config
		wantErr string // "" allows
	}{
		{"zero policy allows all", Policy{}, cfg("endpoint_url", "http://10.0.0.1:9000"), ""},
		{"endpoint listed", Policy{AllowEndpoints: []string{"http://minio:9000"}}, cfg("endpoint_url", "http://MINIO:9000/"), ""},
		{"endpoint default port", Policy{AllowEndpoints: []string{"https://s3.example.com"}}, cfg("endpoint_url", "https://s3.example.com:443"), ""},
		{"endpoint other port", Policy{AllowEndpoints: []string{"http://minio:9000"}}, cfg("endpoint_url", "http://minio:9001"), `endpoint_url "http://minio:9001" is not allowed`},
		{"endpoint other scheme", Policy{AllowEndpoints: []string{"https://minio:9000"}}, cfg("endpoint_url", "http://minio:9000"), "endpoint_url"},
		{"aws not listed", Policy{AllowEndpoints: []string{"http://minio:9000"}}, cfg(), "endpoint_url is required"},
		{"aws listed", Policy{AllowEndpoints: []string{AWSEndpoint}}, cfg(), ""},
		{"aws listed, endpoint not", Policy{AllowEndpoints: []string{AWSEndpoint}}, cfg("endpoint_url", "http://169.254.169.254"), "endpoint_url"},
		{"bucket listed", Policy{AllowBuckets: []string{"ci-main"}}, cfg(), ""},
		{"bucket pattern", Policy{AllowBuckets: []string{"other", "ci-*"}}, cfg(), ""},
		{"bucket not listed", Policy{AllowBuckets: []string{"prod"}}, cfg(), `bucket "ci-main" is not allowed`},
		{"credentials required, none", Policy{RequireCredentials: true}, cfg(), "access_key_id and secret_access_key are required"},
		{"credentials required, given", Policy{RequireCredentials: true}, cfg(keys...), ""},
		{"credentials required, anonymous", Policy{RequireCredentials: true}, cfg("anonymous", "true"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.policy.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			err := tt.policy.Check(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check: %v, want allowed", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n")):
				t.Fatalf("check: %v, want one line containing %q", err, tt.wantErr)
			}
		})
	}
	for _, bad := range []Policy{
		{AllowEndpoints: []string{"minio:9000"}},
		{AllowEndpoints: []string{"ftp://minio"}},
		{AllowEndpoints: []string{"http://user:pw@minio"}},
		{AllowBuckets: []string{""}},
		{AllowBuckets: []string{"ci-["}},
	} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "--s3-allow-") {
			t.Errorf("Validate(%+v) = %v, want an error naming the flag", bad, err)
		}
	}
}
