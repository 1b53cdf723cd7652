package spec

import (
	"strings"
	"testing"

	"github.com/s3cache/s3cache/signature"
)

// Keys made by s3cache keygen, for tests only.
const (
	testSigningKeySeed = "63sBVAKw8T2d1BScuFUSm9zzO-aAy0wDZhnLQuPVPfc"
	testSigningKey     = "s3cache-ed25519-private:" + testSigningKeySeed
	testPublicKey      = "s3cache-ed25519-public:lX6QSTYWTdfz52EgKGpDW5oNoEh_1TDXOHcOPAtdA8s" // testSigningKey's
	testOtherPublicKey = "s3cache-ed25519-public:JbHL52NhdkpgYRLZSt5_LXzb5un7iSus6iiNEjYqXAk"
)

func mustPublicKey(t *testing.T, text string) signature.PublicKey {
	t.Helper()
	k, err := signature.ParsePublicKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSigningAttrs(t *testing.T) {
	clearEnv(t)
	base := []string{"region", "r", "bucket", "b"}
	with := func(kv ...string) map[string]string { return attrs(append(append([]string{}, base...), kv...)...) }
	valid := []struct {
		name  string
		attrs map[string]string
		check func(t *testing.T, c Config)
	}{
		{"unset keeps upstream behaviour", with(), func(t *testing.T, c Config) {
			if !c.SigningKey.IsZero() || c.VerifyKeys != nil || c.Anonymous {
				t.Fatalf("got %#v", c)
			}
		}},
		{"signing_key", with("signing_key", testSigningKey), func(t *testing.T, c Config) {
			if c.SigningKey.Public().Text() != testPublicKey {
				t.Fatalf("signing key's public key %s, want %s", c.SigningKey.Public(), testPublicKey)
			}
		}},
		{"signing_key with a newline, as $(cat ci.key) keeps none but a file read may", with("signing_key", testSigningKey+"\n"), func(t *testing.T, c Config) {
			if c.SigningKey.IsZero() {
				t.Fatal("no key")
			}
		}},
		{"one verify_key", with("verify_key", testPublicKey), func(t *testing.T, c Config) {
			if len(c.VerifyKeys) != 1 || c.VerifyKeys[0].Text() != testPublicKey {
				t.Fatalf("got %v", c.VerifyKeys)
			}
		}},
		{"two verify_keys", with("verify_key", testPublicKey+";"+testOtherPublicKey), func(t *testing.T, c Config) {
			if len(c.VerifyKeys) != 2 || c.VerifyKeys[1].Text() != testOtherPublicKey {
				t.Fatalf("got %v", c.VerifyKeys)
			}
		}},
		{"anonymous", with("anonymous", "true", "verify_key", testPublicKey), func(t *testing.T, c Config) {
			if !c.Anonymous || c.HasCredentials() {
				t.Fatalf("got %#v", c)
			}
		}},
		{"anonymous false with credentials", with("anonymous", "false", "access_key_id", "AKIA", "secret_access_key", testSecret), func(t *testing.T, c Config) {
			if c.Anonymous || !c.HasCredentials() {
				t.Fatalf("got %#v", c)
			}
		}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromAttrs(tt.attrs)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
			back, err := FromAttrs(c.Attrs())
			if err != nil {
				t.Fatalf("FromAttrs(Attrs()): %v", err)
			}
			if back.String() != c.String() || back.SigningKey.Text() != c.SigningKey.Text() {
				t.Fatalf("Attrs does not round trip:\n%s\n%s", back, c)
			}
		})
	}

	invalid := []struct {
		name  string
		attrs map[string]string
		want  []string
	}{
		{"signing_key empty", with("signing_key", ""), []string{"signing_key", "not an s3cache private key"}},
		{"signing_key a public key", with("signing_key", testPublicKey), []string{"signing_key", "this is a public key"}},
		{"signing_key truncated", with("signing_key", testSigningKey[:40]), []string{"signing_key", "malformed"}},
		{"verify_key empty", with("verify_key", ""), []string{"verify_key must be one or more public keys", "key 1 is empty"}},
		{"verify_key trailing ;", with("verify_key", testPublicKey+";"), []string{"verify_key", "key 2 is empty"}},
		{"verify_key a private key", with("verify_key", testSigningKey), []string{"verify_key", "this is a private key"}},
		{"verify_key garbage", with("verify_key", "ssh-ed25519 AAAA"), []string{"verify_key", "not an s3cache public key"}},
		{"anonymous bad", with("anonymous", "yes"), []string{"anonymous must be a boolean", `got "yes"`}},
		{"anonymous with access_key_id", with("anonymous", "true", "access_key_id", "AKIA", "secret_access_key", testSecret), []string{"anonymous=true", "remove access_key_id"}},
		{"anonymous with session_token", with("anonymous", "1", "access_key_id", "AKIA", "secret_access_key", testSecret, "session_token", testToken), []string{"anonymous=true", "remove access_key_id"}},
		{"anonymous with empty secret_access_key", with("anonymous", "true", "secret_access_key", ""), []string{"anonymous=true", "remove secret_access_key"}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromAttrs(tt.attrs)
			if err == nil {
				t.Fatal("accepted")
			}
			checkError(t, err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testSigningKeySeed) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestForExport(t *testing.T) {
	clearEnv(t)
	c, err := FromAttrs(attrs("region", "r", "bucket", "b", "anonymous", "true"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.ForExport()
	if err == nil || !strings.Contains(err.Error(), "anonymous=true is for --cache-from only") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("ForExport: %v, want a one-line error naming anonymous", err)
	}
	c.Anonymous = false
	if err := c.ForExport(); err != nil {
		t.Fatal(err)
	}
}
