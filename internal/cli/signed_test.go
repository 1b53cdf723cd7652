package cli_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/signature"
	"github.com/s3cache/s3cache/store"
)

// verify and inspect take verify_key in the spec: a manifest copied to
// another name is a bad signature, and verify --all exits 1 on it.
func TestVerifyAndInspectCheckSignatures(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	key, err := signature.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := cachetest.New()
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=main", "signing_key="+key.Text()), f.Layers(t, 1000)...)
	ctx := context.Background()
	dt, meta, err := store.ReadAllMetadata(ctx, b.Store, b.Layout.ManifestKey("main"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	body := store.BytesBody(dt)
	body.Metadata = meta
	if err := b.Store.Put(ctx, b.Layout.ManifestKey("copy"), body); err != nil {
		t.Fatal(err)
	}
	verify := "verify_key=" + key.Public().Text()
	id := key.Public().ID()

	out := mustRun(t, "verify", b.With("name=main", verify))
	contains(t, "verify main", out, "signed by key "+id, "ok: 1 cache")

	out, _, err = run(t, "verify", "--all", b.With(verify))
	var pe *inventory.ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("verify --all with a copied manifest: %v, want a problems error (exit 1)", err)
	}
	contains(t, "verify --all", out, "bad-signature", "copy", "signed for another name")

	out = mustRun(t, "inspect", b.With("name=main;copy", verify))
	contains(t, "inspect", out, "signature:    signed by key "+id, "signature:    bad signature")
	if strings.Contains(out, key.Text()) {
		t.Fatal("inspect printed a private key")
	}
}
