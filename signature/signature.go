// Package signature signs cache manifests with Ed25519 and verifies them.
//
// A signature covers the manifest's bytes and the name it is written
// under, so a manifest copied to another name, or changed by one byte, no
// longer verifies. It travels as one S3 user metadata value on the
// manifest's own PUT (MetadataKey), so it cannot go missing or be swapped
// apart from the bytes it signs. Keys are one line of text each, as
// `s3cache keygen` writes them and the signing_key / verify_key attributes
// take them.
//
// Everything read from a bucket (the metadata value) or a client (key
// text) is untrusted: parsing is strict and bounded, and never panics.
package signature

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MetadataKey is the S3 user metadata key (x-amz-meta-s3cache-signature)
// that holds a manifest's signature. S3 returns metadata keys lower-case.
const MetadataKey = "s3cache-signature"

const (
	privatePrefix = "s3cache-ed25519-private:"
	publicPrefix  = "s3cache-ed25519-public:"
	// valueVersion starts a metadata value: v1:<key id>:<signature>.
	valueVersion = "v1"
	// context separates these signatures from any other use of a key.
	signContext = "s3cache manifest signature v1\x00"
	// maxValueLen bounds the metadata value parsed (a good one is 108 bytes).
	maxValueLen = 256
)

var b64 = base64.RawURLEncoding

// Reasons a manifest is not accepted; check them with errors.Is.
var (
	// ErrUnsigned: the manifest carries no signature.
	ErrUnsigned = errors.New("unsigned")
	// ErrUnknownKey: a well-formed signature by a key that is none of the
	// verify keys.
	ErrUnknownKey = errors.New("signed by a key that is not a verify key")
	// ErrBadSignature: the signature is malformed, or does not match the
	// bytes and name (changed since it was signed, or copied from another
	// name).
	ErrBadSignature = errors.New("bad signature")
)

// PrivateKey signs manifests. Its String never shows the key.
type PrivateKey struct {
	key ed25519.PrivateKey
}

// PublicKey verifies manifests.
type PublicKey struct {
	key ed25519.PublicKey
}

// Generate returns a new key pair from rand (crypto/rand.Reader if nil).
func Generate(rand io.Reader) (PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return PrivateKey{key: priv}, nil
}

// ParsePrivateKey parses the text of a .key file (surrounding white space
// allowed). Its errors never contain the text.
func ParsePrivateKey(text string) (PrivateKey, error) {
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(text, privatePrefix)
	if !ok {
		if strings.HasPrefix(text, publicPrefix) {
			return PrivateKey{}, errors.New("this is a public key (.pub); signing needs the private one (.key)")
		}
		return PrivateKey{}, fmt.Errorf("not an s3cache private key (want %s<base64>, as s3cache keygen writes)", privatePrefix)
	}
	seed, err := b64.DecodeString(rest)
	if err != nil || len(seed) != ed25519.SeedSize {
		return PrivateKey{}, fmt.Errorf("malformed s3cache private key: want %d bytes of base64url after the prefix", ed25519.SeedSize)
	}
	return PrivateKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// ParsePublicKey parses the text of a .pub file.
func ParsePublicKey(text string) (PublicKey, error) {
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(text, publicPrefix)
	if !ok {
		if strings.HasPrefix(text, privatePrefix) {
			// Don't echo it: it is a secret given in the wrong place.
			return PublicKey{}, errors.New("this is a private key (.key), which must stay with the writers; give the public one (.pub)")
		}
		return PublicKey{}, fmt.Errorf("not an s3cache public key (want %s<base64>, as s3cache keygen writes), got %q", publicPrefix, clip(text))
	}
	raw, err := b64.DecodeString(rest)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("malformed s3cache public key %q: want %d bytes of base64url after the prefix", clip(text), ed25519.PublicKeySize)
	}
	return PublicKey{key: ed25519.PublicKey(raw)}, nil
}

// ParsePublicKeys parses one or more public keys separated by ';'.
func ParsePublicKeys(text string) ([]PublicKey, error) {
	var keys []PublicKey
	for i, part := range strings.Split(text, ";") {
		if strings.TrimSpace(part) == "" {
			return nil, fmt.Errorf("key %d is empty", i+1)
		}
		k, err := ParsePublicKey(part)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// IsZero reports whether k is no key.
func (k PrivateKey) IsZero() bool { return k.key == nil }

// Public is k's public key.
func (k PrivateKey) Public() PublicKey {
	if k.key == nil {
		return PublicKey{}
	}
	return PublicKey{key: k.key.Public().(ed25519.PublicKey)}
}

// Text is the key as a .key file holds it: a secret.
func (k PrivateKey) Text() string {
	if k.key == nil {
		return ""
	}
	return privatePrefix + b64.EncodeToString(k.key.Seed())
}

// String never shows the key, so that printing a config cannot leak it.
func (k PrivateKey) String() string {
	if k.key == nil {
		return ""
	}
	return "<redacted>"
}

// GoString is String, for %#v.
func (k PrivateKey) GoString() string { return k.String() }

// Text is the key as a .pub file holds it.
func (k PublicKey) Text() string {
	if k.key == nil {
		return ""
	}
	return publicPrefix + b64.EncodeToString(k.key)
}

func (k PublicKey) String() string { return k.Text() }

// ID is a short fingerprint of the key (16 hex digits of its SHA-256),
// which reports name it by.
func (k PublicKey) ID() string {
	if k.key == nil {
		return ""
	}
	sum := sha256.Sum256(k.key)
	return hex.EncodeToString(sum[:8])
}

// Equal reports whether k and o are the same key.
func (k PublicKey) Equal(o PublicKey) bool { return k.key.Equal(o.key) }

// message is what is signed: a context string, the name with its length,
// and the SHA-256 of the manifest. Hashing first keeps the Ed25519 input
// small whatever the manifest's size; the length prefix keeps name and
// bytes from sliding into each other.
func message(name string, data []byte) []byte {
	sum := sha256.Sum256(data)
	m := make([]byte, 0, len(signContext)+8+len(name)+len(sum))
	m = append(m, signContext...)
	m = binary.BigEndian.AppendUint64(m, uint64(len(name)))
	m = append(m, name...)
	return append(m, sum[:]...)
}

// Sign returns the metadata value that signs data written under name.
func Sign(k PrivateKey, name string, data []byte) (string, error) {
	if k.key == nil {
		return "", errors.New("sign manifest: no key")
	}
	sig := ed25519.Sign(k.key, message(name, data))
	return valueVersion + ":" + k.Public().ID() + ":" + b64.EncodeToString(sig), nil
}

// Verify checks value (the metadata value read with the manifest, "" if
// there was none) against data, name and keys, and returns the key that
// signed it. The error says why not: ErrUnsigned, ErrUnknownKey (naming
// the signer's key ID) or ErrBadSignature.
func Verify(keys []PublicKey, name string, data []byte, value string) (PublicKey, error) {
	if value == "" {
		return PublicKey{}, ErrUnsigned
	}
	id, sig, err := parseValue(value)
	if err != nil {
		return PublicKey{}, err
	}
	msg := message(name, data)
	for _, k := range keys {
		if k.key != nil && k.ID() == id {
			if ed25519.Verify(k.key, msg, sig) {
				return k, nil
			}
			return PublicKey{}, fmt.Errorf("%w: by key %s, but not over these bytes and this name (changed since it was signed, or signed for another name)", ErrBadSignature, id)
		}
	}
	// The ID is only a hint: a forger can claim any. Trying every key
	// costs little and never accepts what no key signed.
	for _, k := range keys {
		if k.key != nil && ed25519.Verify(k.key, msg, sig) {
			return k, nil
		}
	}
	return PublicKey{}, fmt.Errorf("%w (key %s)", ErrUnknownKey, id)
}

// Signer returns the key ID a metadata value claims, without verifying
// anything, for reports that have no verify key.
func Signer(value string) (string, error) {
	id, _, err := parseValue(value)
	return id, err
}

// parseValue splits v1:<id>:<sig> strictly.
func parseValue(value string) (id string, sig []byte, err error) {
	if len(value) > maxValueLen {
		return "", nil, fmt.Errorf("%w: malformed (%d bytes)", ErrBadSignature, len(value))
	}
	parts := strings.Split(value, ":")
	if len(parts) != 3 || parts[0] != valueVersion {
		return "", nil, fmt.Errorf("%w: malformed (want %s:<key id>:<signature>)", ErrBadSignature, valueVersion)
	}
	id = parts[1]
	if len(id) != 16 || !isLowerHex(id) {
		return "", nil, fmt.Errorf("%w: malformed key id", ErrBadSignature)
	}
	sig, err = b64.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", nil, fmt.Errorf("%w: malformed (truncated or not base64url)", ErrBadSignature)
	}
	return id, sig, nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	const n = 40
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
