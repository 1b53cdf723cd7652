package storetest

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/s3cache/s3cache/store"
)

func getVersion(t *testing.T, st store.Store, key string) (string, string) {
	t.Helper()
	body, etag, err := st.GetVersion(ctxT(t), key)
	if err != nil {
		t.Fatalf("get version %s: %v", key, err)
	}
	defer body.Close()
	dt, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if etag == "" {
		t.Fatalf("get version %s: no ETag", key)
	}
	return string(dt), etag
}

// NoObject writes only a new object, an ETag only over that version; a
// write that lost either way is ErrPreconditionFailed, names the key, and
// leaves the object as the winner wrote it.
func testPutIf(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	if _, _, err := st.GetVersion(ctx, "m"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetVersion of a missing object: %v, want ErrNotFound", err)
	}
	if err := st.PutIf(ctx, "m", store.BytesBody([]byte("first")), store.NoObject); err != nil {
		t.Fatalf("create: %v", err)
	}
	err := st.PutIf(ctx, "m", store.BytesBody([]byte("second create")), store.NoObject)
	if !errors.Is(err, store.ErrPreconditionFailed) || !strings.Contains(err.Error(), "m") {
		t.Fatalf("create over an object: %v, want ErrPreconditionFailed naming the key", err)
	}
	dt, etag := getVersion(t, st, "m")
	if dt != "first" {
		t.Fatalf("object holds %q after a refused create", dt)
	}
	if err := st.PutIf(ctx, "m", store.BytesBody([]byte("second")), etag); err != nil {
		t.Fatalf("replace the version read: %v", err)
	}
	if err := st.PutIf(ctx, "m", store.BytesBody([]byte("stale")), etag); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("replace a version no longer there: %v, want ErrPreconditionFailed", err)
	}
	dt, etag = getVersion(t, st, "m")
	if dt != "second" {
		t.Fatalf("object holds %q, want the winner's", dt)
	}
	// A plain Put in between changes the version too.
	put(t, st, "m", []byte("third"))
	if err := st.PutIf(ctx, "m", store.BytesBody([]byte("stale")), etag); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("replace a version overwritten since: %v, want ErrPreconditionFailed", err)
	}
	// So does a delete.
	_, etag = getVersion(t, st, "m")
	if err := st.Delete(ctx, []string{"m"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutIf(ctx, "m", store.BytesBody([]byte("stale")), etag); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("replace a version deleted since: %v, want ErrPreconditionFailed", err)
	}
}

// Writers racing from one version: exactly one wins.
func testPutIfRace(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	for _, from := range []string{"none", "version"} {
		key, etag := "new", store.NoObject
		if from == "version" {
			key = "old"
			put(t, st, key, []byte("base"))
			_, etag = getVersion(t, st, key)
		}
		const writers = 8
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				errs[i] = st.PutIf(ctx, key, store.BytesBody([]byte{byte('a' + i)}), etag)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrPreconditionFailed):
				t.Errorf("from %s: a losing writer's error is not ErrPreconditionFailed: %v", from, err)
			}
		}
		if won != 1 {
			t.Fatalf("from %s: %d writers won, want 1", from, won)
		}
	}
}
