package inventory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/signature"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// signedCaches: main and dev signed by key, other by another key,
// unsigned by none, and copied holds main's manifest and signature under
// another name.
func signedCaches(t *testing.T) (*storetest.Memory, store.Layout, signature.PrivateKey) {
	t.Helper()
	mem := storetest.NewMemory()
	layout := store.Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}
	key, err := signature.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := signature.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000)
	spec := func(name string, k signature.PrivateKey) map[string]string {
		s := "type=s3,region=r,bucket=b,name=" + name
		if !k.IsZero() {
			s += ",signing_key=" + k.Text()
		}
		return cachetest.Attrs(t, s)
	}
	f.Export(t, cachetest.Through(mem), spec("main", key), ls...)
	f.Export(t, cachetest.Through(mem), spec("dev", key), ls[0])
	f.Export(t, cachetest.Through(mem), spec("other", other), ls[1])
	f.Export(t, cachetest.Through(mem), spec("unsigned", signature.PrivateKey{}), ls[1])
	dt, meta, err := store.ReadAllMetadata(context.Background(), mem, layout.ManifestKey("main"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	body := store.BytesBody(dt)
	body.Metadata = meta
	if err := mem.Put(context.Background(), layout.ManifestKey("copied"), body); err != nil {
		t.Fatal(err)
	}
	return mem, layout, key
}

func TestVerifyReportsSignatures(t *testing.T) {
	mem, layout, key := signedCaches(t)
	ctx := context.Background()
	opts := inventory.Options{VerifyKeys: []signature.PublicKey{key.Public()}}
	r, err := inventory.Verify(ctx, mem, layout, inventory.VerifyOptions{All: true}, opts)
	var pe *inventory.ProblemsError
	if !errors.As(err, &pe) || pe.N != 2 {
		t.Fatalf("verify --all: %v, want 2 problems (copied, other)", err)
	}
	bad := map[string]string{}
	for _, p := range r.Problems {
		if p.Kind != inventory.ProblemBadSignature {
			t.Errorf("unexpected problem %+v", p)
			continue
		}
		bad[p.Caches[0]] = p.Detail
	}
	if !strings.Contains(bad["copied"], "signed for another name") || !strings.Contains(bad["other"], "not a verify key") {
		t.Errorf("bad signatures: %v", bad)
	}
	states := map[string]inventory.Signature{}
	for _, s := range r.Signatures {
		states[s.Cache] = s.Signature
	}
	id := key.Public().ID()
	for name, want := range map[string]string{"main": inventory.SignatureSigned, "dev": inventory.SignatureSigned,
		"unsigned": inventory.SignatureUnsigned, "copied": inventory.SignatureBad, "other": inventory.SignatureBad} {
		if states[name].State != want {
			t.Errorf("%s: signature %+v, want %s", name, states[name], want)
		}
	}
	if states["main"].Key != id {
		t.Errorf("main signed by %q, want %q", states["main"].Key, id)
	}
	var buf bytes.Buffer
	if err := r.Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"CACHE", "SIGNATURE", "signed by key " + id, "unsigned", "bad-signature", "bad signature: "} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}

	// By name, a good one passes.
	if _, err := inventory.Verify(ctx, mem, layout, inventory.VerifyOptions{Names: []string{"main", "unsigned"}}, opts); err != nil {
		t.Fatalf("verify main: %v", err)
	}
	// Without verify keys nothing is a problem; signatures are reported unverified.
	r, err = inventory.Verify(ctx, mem, layout, inventory.VerifyOptions{All: true}, inventory.Options{})
	if err != nil {
		t.Fatalf("verify --all without verify_key: %v", err)
	}
	for _, s := range r.Signatures {
		want := inventory.SignatureUnverified
		if s.Cache == "unsigned" {
			want = inventory.SignatureUnsigned
		}
		if s.Signature.State != want {
			t.Errorf("%s without keys: %+v, want %s", s.Cache, s.Signature, want)
		}
	}
}

func TestInspectShowsSignature(t *testing.T) {
	mem, layout, key := signedCaches(t)
	opts := inventory.Options{VerifyKeys: []signature.PublicKey{key.Public()}}
	r, err := inventory.Inspect(context.Background(), mem, layout, []string{"main", "copied"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"signature:    signed by key " + key.Public().ID(), "signature:    bad signature: by key " + key.Public().ID()} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("inspect lacks %q:\n%s", s, buf.String())
		}
	}
	buf.Reset()
	if err := r.Write(&buf, inventory.FormatJSON); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Caches []struct {
			Signature inventory.Signature `json:"signature"`
		} `json:"caches"`
	}
	if err := json.Unmarshal(buf.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	if len(decoded.Caches) != 2 || decoded.Caches[0].Signature != (inventory.Signature{State: "signed", Key: key.Public().ID()}) {
		t.Errorf("inspect JSON lacks the signature:\n%s", buf.String())
	}
}
