package backend

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/s3cache/s3cache/spec"
)

const sealedPrefix = "s3cache-sealed:"

// Vault keeps secret attribute values in memory while a build runs, so that
// what BuildKit stores (build history records, which hold the frontend's
// attributes including its cache imports) holds only a random reference.
type Vault struct {
	mu      sync.Mutex
	secrets map[string]string
}

// NewVault returns an empty vault.
func NewVault() *Vault { return &Vault{secrets: map[string]string{}} }

// Seal replaces the secret attributes in attrs by references and returns
// the references, to be released when the build ends.
func (v *Vault) Seal(attrs map[string]string) []string {
	var refs []string
	for _, k := range spec.SecretAttrs {
		val, ok := attrs[k]
		if !ok || val == "" || strings.HasPrefix(val, sealedPrefix) {
			continue
		}
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		ref := sealedPrefix + hex.EncodeToString(b[:])
		v.mu.Lock()
		v.secrets[ref] = val
		v.mu.Unlock()
		attrs[k] = ref
		refs = append(refs, ref)
	}
	return refs
}

// Release forgets sealed secrets.
func (v *Vault) Release(refs []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range refs {
		delete(v.secrets, r)
	}
}

// open returns attrs with sealed references replaced by their secrets. An
// unknown reference (the build ended, or it was never ours) becomes empty.
func (v *Vault) open(attrs map[string]string) map[string]string {
	if v == nil {
		return attrs
	}
	var out map[string]string
	for _, k := range spec.SecretAttrs {
		val := attrs[k]
		if !strings.HasPrefix(val, sealedPrefix) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(attrs))
			for k2, v2 := range attrs {
				out[k2] = v2
			}
		}
		v.mu.Lock()
		out[k] = v.secrets[val]
		v.mu.Unlock()
	}
	if out == nil {
		return attrs
	}
	return out
}
