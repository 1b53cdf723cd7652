package signature

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func newKey(t testing.TB) PrivateKey {
	t.Helper()
	k, err := Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyText(t *testing.T) {
	k := newKey(t)
	priv, err := ParsePrivateKey(k.Text() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if priv.Text() != k.Text() {
		t.Fatal("private key does not round trip through its text")
	}
	pub, err := ParsePublicKey(" " + k.Public().Text() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(k.Public()) || pub.ID() != k.Public().ID() || len(pub.ID()) != 16 {
		t.Fatalf("public key does not round trip: %s vs %s", pub, k.Public())
	}
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, k.Text()[len(privatePrefix):]) {
			t.Fatalf("printing a private key shows it: %s", s)
		}
	}
}

func TestParseErrors(t *testing.T) {
	k := newKey(t)
	secret := k.Text()[len(privatePrefix):]
	tests := []struct {
		name, text, want string
		private          bool
	}{
		{"private empty", "", "not an s3cache private key", true},
		{"private given a public key", k.Public().Text(), "this is a public key", true},
		{"private short", privatePrefix + "AAAA", "malformed", true},
		{"private not base64", privatePrefix + strings.Repeat("!", 43), "malformed", true},
		{"private truncated", k.Text()[:len(k.Text())-2], "malformed", true},
		{"public empty", "", "not an s3cache public key", false},
		{"public given the private key", k.Text(), "this is a private key", false},
		{"public truncated", k.Public().Text()[:30], "malformed", false},
		{"public padded base64", k.Public().Text() + "=", "malformed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.private {
				_, err = ParsePrivateKey(tt.text)
			} else {
				_, err = ParsePublicKey(tt.text)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret[:10]) {
				t.Fatalf("error shows the private key: %v", err)
			}
		})
	}
}

func TestParsePublicKeys(t *testing.T) {
	a, b := newKey(t).Public(), newKey(t).Public()
	keys, err := ParsePublicKeys(a.Text() + ";" + b.Text())
	if err != nil || len(keys) != 2 || !keys[0].Equal(a) || !keys[1].Equal(b) {
		t.Fatalf("got %v, %v", keys, err)
	}
	for _, bad := range []string{"", ";", a.Text() + ";", a.Text() + ";x"} {
		if _, err := ParsePublicKeys(bad); err == nil {
			t.Errorf("ParsePublicKeys(%q) accepted", bad)
		}
	}
}

func TestSignVerify(t *testing.T) {
	k, other := newKey(t), newKey(t)
	data := []byte(`{"layers":[],"records":[]}`)
	value, err := Sign(k, "main", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(value) > maxValueLen {
		t.Fatalf("value of %d bytes", len(value))
	}
	got, err := Verify([]PublicKey{other.Public(), k.Public()}, "main", data, value)
	if err != nil || !got.Equal(k.Public()) {
		t.Fatalf("Verify = %v, %v; want the signing key", got, err)
	}
	changed := bytes.Clone(data)
	changed[3] ^= 1
	otherValue, _ := Sign(other, "main", data)
	// A forger may claim the verify key's ID with its own signature.
	forged := valueVersion + ":" + k.Public().ID() + ":" + strings.Split(otherValue, ":")[2]
	tests := []struct {
		name  string
		keys  []PublicKey
		cname string
		data  []byte
		value string
		want  error
	}{
		{"one byte changed", []PublicKey{k.Public()}, "main", changed, value, ErrBadSignature},
		{"other name", []PublicKey{k.Public()}, "branch", data, value, ErrBadSignature},
		{"name and bytes slid", []PublicKey{k.Public()}, "mai", append([]byte("n"), data...), value, ErrBadSignature},
		{"other key", []PublicKey{k.Public()}, "main", data, otherValue, ErrUnknownKey},
		{"claims the key's id", []PublicKey{k.Public()}, "main", data, forged, ErrBadSignature},
		{"unsigned", []PublicKey{k.Public()}, "main", data, "", ErrUnsigned},
		{"truncated", []PublicKey{k.Public()}, "main", data, value[:len(value)-4], ErrBadSignature},
		{"garbage", []PublicKey{k.Public()}, "main", data, "hello", ErrBadSignature},
		{"other version", []PublicKey{k.Public()}, "main", data, "v2" + value[2:], ErrBadSignature},
		{"huge", []PublicKey{k.Public()}, "main", data, strings.Repeat("a", 1<<20), ErrBadSignature},
		{"no keys", nil, "main", data, value, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.keys, tt.cname, tt.data, tt.value)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes echoes the untrusted value", len(err.Error()))
			}
		})
	}
	if id, err := Signer(value); err != nil || id != k.Public().ID() {
		t.Fatalf("Signer = %q, %v", id, err)
	}
	if _, err := Sign(PrivateKey{}, "main", data); err == nil {
		t.Fatal("signing with no key succeeded")
	}
}

// FuzzVerify: no metadata value, name or manifest panics Verify, and
// nothing but the signature made for them verifies.
func FuzzVerify(f *testing.F) {
	k := newKey(f)
	good, _ := Sign(k, "main", []byte("{}"))
	f.Add("main", []byte("{}"), good)
	f.Add("main", []byte("{}"), "")
	f.Add("mai", []byte("n{}"), good)
	f.Add("main", []byte("{}"), good[:len(good)-1])
	f.Add("main", []byte("{}"), "v1::")
	f.Add("main", []byte("{}"), "v1:"+k.Public().ID()+":"+strings.Repeat("A", 86))
	pub := []PublicKey{k.Public()}
	f.Fuzz(func(t *testing.T, name string, data []byte, value string) {
		got, err := Verify(pub, name, data, value)
		if err == nil {
			if !got.Equal(k.Public()) || name != "main" || string(data) != "{}" {
				t.Fatalf("verified %q over %q as %q", value, data, name)
			}
		}
		_, _ = Signer(value)
		_, _ = ParsePublicKeys(value)
		_, _ = ParsePrivateKey(value)
	})
}
