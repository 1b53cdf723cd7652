package storetest

import (
	"errors"
	"io"
	"maps"
	"testing"

	"github.com/s3cache/s3cache/store"
)

func getMetadata(t *testing.T, st store.Store, key string) (string, map[string]string) {
	t.Helper()
	body, meta, err := st.GetMetadata(ctxT(t), key)
	if err != nil {
		t.Fatalf("get metadata %s: %v", key, err)
	}
	defer body.Close()
	dt, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(dt), meta
}

// Metadata given to Put and PutIf comes back with the bytes, keys
// lower-case, in one PUT and in a multipart upload; a write without
// metadata leaves none behind.
func testMetadata(t *testing.T, st store.Store, largeSize int64) {
	ctx := ctxT(t)
	sig := map[string]string{"s3cache-signature": "v1:0123456789abcdef:c2lnbmF0dXJl"}
	body := store.BytesBody([]byte("signed"))
	body.Metadata = sig
	if err := st.Put(ctx, "m", body); err != nil {
		t.Fatal(err)
	}
	dt, meta := getMetadata(t, st, "m")
	if dt != "signed" || !maps.Equal(meta, sig) {
		t.Fatalf("put: got %q with %v, want %q with %v", dt, meta, "signed", sig)
	}
	put(t, st, "m", []byte("unsigned"))
	if dt, meta = getMetadata(t, st, "m"); dt != "unsigned" || len(meta) != 0 {
		t.Fatalf("overwritten without metadata: got %q with %v", dt, meta)
	}
	_, etag := getVersion(t, st, "m")
	body = store.BytesBody([]byte("signed again"))
	body.Metadata = map[string]string{"S3cache-Signature": "x"}
	if err := st.PutIf(ctx, "m", body, etag); err != nil {
		t.Fatal(err)
	}
	if dt, meta = getMetadata(t, st, "m"); dt != "signed again" || !maps.Equal(meta, map[string]string{"s3cache-signature": "x"}) {
		t.Fatalf("conditional put: got %q with %v", dt, meta)
	}
	large := Data(largeSize, 3) // uploaded in parts
	body = store.BytesBody(large)
	body.Metadata = sig
	if err := st.Put(ctx, "large", body); err != nil {
		t.Fatal(err)
	}
	if dt, meta = getMetadata(t, st, "large"); dt != string(large) || !maps.Equal(meta, sig) {
		t.Fatalf("large put: %d bytes with %v", len(dt), meta)
	}
	if _, _, err := st.GetMetadata(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMetadata of a missing object: %v, want ErrNotFound", err)
	}
}
