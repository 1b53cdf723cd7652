package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/store"
)

// anonymous=true reads a public bucket without any credentials, and finds
// none to use: not the environment's, not a credentials file's. A private
// bucket refuses it.
func TestAnonymous(t *testing.T) {
	srv := miniotest.Shared(t)
	ctx := testCtx(t)
	public, private := srv.Bucket(t), srv.Bucket(t)
	if err := srv.AllowPublicRead(ctx, public); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{public, private} {
		w := newStore(t, testConfig(srv, b, ""), smallOptions())
		body := store.BytesBody([]byte("manifest"))
		body.Metadata = map[string]string{"s3cache-signature": "v1:x:y"}
		if err := w.Put(ctx, "manifests/main", body); err != nil {
			t.Fatal(err)
		}
	}
	// Credentials the SDK would find, and which MinIO would refuse: an
	// anonymous store must not send them.
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAWRONG")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "missing-config"))
	t.Setenv("AWS_PROFILE", "nosuch")

	anon := func(bucket string) store.Store {
		cfg := testConfig(srv, bucket, "")
		cfg.AccessKeyID, cfg.SecretAccessKey, cfg.Anonymous = "", "", true
		return newStore(t, cfg, smallOptions())
	}
	dt, meta, err := store.ReadAllMetadata(ctx, anon(public), "manifests/main", 1<<20)
	if err != nil {
		t.Fatalf("anonymous read of a public bucket: %v", err)
	}
	if string(dt) != "manifest" || meta["s3cache-signature"] != "v1:x:y" {
		t.Fatalf("read %q with %v", dt, meta)
	}
	if _, err := anon(public).Stat(ctx, "manifests/main"); err != nil {
		t.Fatalf("anonymous HEAD of a public bucket: %v", err)
	}
	if err := anon(public).Put(ctx, "manifests/evil", store.BytesBody([]byte("x"))); err == nil {
		t.Fatal("an anonymous write to a public-read bucket succeeded")
	}
	_, _, err = store.ReadAllMetadata(ctx, anon(private), "manifests/main", 1<<20)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("anonymous read of a private bucket: %v, want access denied", err)
	}
}
