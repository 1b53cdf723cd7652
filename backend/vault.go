package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/moby/buildkit/cache/remotecache"
	"github.com/moby/buildkit/session"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/spec"
)

const sealedPrefix = "s3cache-sealed:"

// Vault keeps secret attribute values in memory while a build runs, so that
// what BuildKit stores (build history records, which hold the frontend's
// attributes including its cache imports) holds only a random reference.
//
// A reference is visible to every client of the daemon (build history is
// not per client), so it must not work as a bearer token: each is bound to
// the session of the request that sealed it and opens only for cache
// exports and imports of that session's builds, and a reference a client
// sends is refused rather than taken for one of ours.
type Vault struct {
	mu      sync.Mutex
	secrets map[string]sealedSecret
}

type sealedSecret struct {
	value   string
	session string // the BuildKit session ID of the request that sealed it
}

// NewVault returns an empty vault.
func NewVault() *Vault { return &Vault{secrets: map[string]sealedSecret{}} }

// Seal replaces the secret attributes in attrs by references bound to the
// request's session and returns the references, to be released when the
// build ends. A value that already looks like a reference is an error
// naming the attribute: only the daemon makes them.
func (v *Vault) Seal(attrs map[string]string, session string) ([]string, error) {
	var refs []string
	for _, k := range spec.SecretAttrs {
		val, ok := attrs[k]
		if !ok || val == "" {
			continue
		}
		if strings.HasPrefix(val, sealedPrefix) {
			v.Release(refs)
			return nil, fmt.Errorf("s3 cache: %s holds a sealed reference (%s...), which the daemon makes itself and never accepts from a client; give the secret", k, sealedPrefix)
		}
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		ref := sealedPrefix + hex.EncodeToString(b[:])
		v.mu.Lock()
		v.secrets[ref] = sealedSecret{value: val, session: session}
		v.mu.Unlock()
		attrs[k] = ref
		refs = append(refs, ref)
	}
	return refs, nil
}

// Release forgets sealed secrets.
func (v *Vault) Release(refs []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range refs {
		delete(v.secrets, r)
	}
}

// Open returns attrs with sealed references replaced by their secrets, for
// a cache export or import of the session group g. A reference that is
// unknown (its build ended, or it was never ours) or was sealed for a
// session outside g is an error naming the attribute.
func (v *Vault) Open(attrs map[string]string, g session.Group) (map[string]string, error) {
	if v == nil {
		return attrs, nil
	}
	var out map[string]string
	for _, k := range spec.SecretAttrs {
		val := attrs[k]
		if !strings.HasPrefix(val, sealedPrefix) {
			continue
		}
		v.mu.Lock()
		s, ok := v.secrets[val]
		v.mu.Unlock()
		if !ok || !inGroup(g, s.session) {
			// Never echo the reference: it may be another build's.
			return nil, fmt.Errorf("s3 cache: %s is a sealed reference that is not this build's (sealed references open only for the build whose request carried the secret)", k)
		}
		if out == nil {
			out = make(map[string]string, len(attrs))
			for k2, v2 := range attrs {
				out[k2] = v2
			}
		}
		out[k] = s.value
	}
	if out == nil {
		return attrs, nil
	}
	return out, nil
}

// inGroup reports whether the session is one of g's. A request without a
// session seals for "", which only a build without one matches.
func inGroup(g session.Group, id string) bool {
	if g == nil {
		return id == ""
	}
	it := g.SessionIterator()
	if it == nil {
		return id == ""
	}
	first := true
	for {
		s := it.NextSession()
		if s == "" {
			return first && id == ""
		}
		first = false
		if s == id {
			return true
		}
	}
}

// ExporterWithVault opens the vault's references for the build's session
// before handing the attributes to next.
func ExporterWithVault(v *Vault, next remotecache.ResolveCacheExporterFunc) remotecache.ResolveCacheExporterFunc {
	return func(ctx context.Context, g session.Group, attrs map[string]string) (remotecache.Exporter, error) {
		opened, err := v.Open(attrs, g)
		if err != nil {
			return nil, err
		}
		return next(ctx, g, opened)
	}
}

// ImporterWithVault is ExporterWithVault for imports.
func ImporterWithVault(v *Vault, next remotecache.ResolveCacheImporterFunc) remotecache.ResolveCacheImporterFunc {
	return func(ctx context.Context, g session.Group, attrs map[string]string) (remotecache.Importer, ocispecs.Descriptor, error) {
		opened, err := v.Open(attrs, g)
		if err != nil {
			return nil, ocispecs.Descriptor{}, err
		}
		return next(ctx, g, opened)
	}
}
