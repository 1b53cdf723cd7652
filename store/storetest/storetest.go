// Package storetest is the conformance suite every store.Store must pass,
// and an in-memory Store that passes it, for tests of the store's users.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3cache/s3cache/store"
)

// Config describes the implementation under test.
type Config struct {
	// LargeSize is an object size that the implementation uploads in parts
	// (default 1 MiB + 1).
	LargeSize int64
}

// Run runs the suite; newStore returns a Store on fresh, empty storage and
// must be safe to call from parallel subtests.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, cfg Config) {
	if cfg.LargeSize <= 0 {
		cfg.LargeSize = 1<<20 + 1
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, st store.Store)
	}{
		{"PutStatGet", testPutStatGet},
		{"RangedGet", testRangedGet},
		{"Missing", testMissing},
		{"List", testList},
		{"ListPage", testListPage},
		{"Overwrite", testOverwrite},
		{"Large", func(t *testing.T, st store.Store) { testLarge(t, st, cfg.LargeSize) }},
		{"FailedPutKeepsOld", func(t *testing.T, st store.Store) { testFailedPut(t, st, cfg.LargeSize) }},
		{"ZeroBytes", testZeroBytes},
		{"Touch", testTouch},
		{"Delete", testDelete},
		{"Canceled", func(t *testing.T, st store.Store) { testCanceled(t, st, cfg.LargeSize) }},
		{"PutIf", testPutIf},
		{"PutIfRace", testPutIfRace},
		{"Metadata", func(t *testing.T, st store.Store) { testMetadata(t, st, cfg.LargeSize) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// Data returns n reproducible pseudo-random bytes.
func Data(n int64, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// blobKey is a key shaped like the cache's blob keys, ':' included.
func blobKey(seed byte) string {
	return fmt.Sprintf("blobs/sha256:%x", Data(32, seed))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, st store.Store, key string, data []byte) {
	t.Helper()
	if err := st.Put(ctxT(t), key, store.BytesBody(data)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, st store.Store, key string, off, n int64) []byte {
	t.Helper()
	body, err := st.Get(ctxT(t), key, off, n)
	if err != nil {
		t.Fatalf("get %s [%d,+%d): %v", key, off, n, err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read %s [%d,+%d): %v", key, off, n, err)
	}
	return b
}

func stat(t *testing.T, st store.Store, key string) store.Object {
	t.Helper()
	o, err := st.Stat(ctxT(t), key)
	if err != nil {
		t.Fatalf("stat %s: %v", key, err)
	}
	return o
}

func list(t *testing.T, st store.Store, prefix string) []store.Object {
	t.Helper()
	var objs []store.Object
	if err := st.List(ctxT(t), prefix, func(o store.Object) error {
		objs = append(objs, o)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return objs
}

func equal(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d bytes (contents differ: %v)", what, len(got), len(want), len(got) == len(want))
	}
}

func testPutStatGet(t *testing.T, st store.Store) {
	key, data := blobKey(1), Data(1000, 1)
	put(t, st, key, data)
	o := stat(t, st, key)
	if o.Key != key || o.Size != int64(len(data)) || o.LastModified.IsZero() {
		t.Fatalf("stat = %+v, want key %s, size %d, a modification time", o, key, len(data))
	}
	equal(t, "get", get(t, st, key, 0, -1), data)
}

func testRangedGet(t *testing.T, st store.Store) {
	key, data := blobKey(2), Data(1000, 2)
	put(t, st, key, data)
	for _, r := range []struct{ off, n, wantEnd int64 }{
		{0, -1, 1000},
		{0, 1000, 1000},
		{0, 1, 1},
		{0, 10, 10},
		{100, 50, 150},
		{500, -1, 1000},
		{990, 10, 1000},
		{999, -1, 1000},
		{990, 100, 1000}, // past the end: the rest
	} {
		got := get(t, st, key, r.off, r.n)
		equal(t, fmt.Sprintf("get [%d,+%d)", r.off, r.n), got, data[r.off:r.wantEnd])
	}
	if got := get(t, st, key, 10, 0); len(got) != 0 {
		t.Fatalf("get of length 0 returned %d bytes", len(got))
	}
}

func testMissing(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	key := blobKey(3)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s of a missing key: err = %v, want ErrNotFound", op, err)
		}
		if !strings.Contains(err.Error(), key) {
			t.Fatalf("%s error does not name the key: %v", op, err)
		}
	}
	_, err := st.Stat(ctx, key)
	check("stat", err)
	_, err = st.Get(ctx, key, 0, -1)
	check("get", err)
	_, err = st.Get(ctx, key, 5, 10)
	check("ranged get", err)
	check("touch", st.Touch(ctx, key, 10))
}

func testList(t *testing.T, st store.Store) {
	keys := []string{"a/1", "a/2", "a/10", "a/sub/x", "ab", "b/1"}
	for i, k := range keys {
		put(t, st, k, Data(int64(10+i), byte(i)))
	}
	size := func(k string) int64 { return int64(10 + slices.Index(keys, k)) }
	check := func(prefix string, want []string) {
		t.Helper()
		objs := list(t, st, prefix)
		var got []string
		for _, o := range objs {
			got = append(got, o.Key)
			if o.Size != size(o.Key) || o.LastModified.IsZero() {
				t.Errorf("list %q: %+v, want size %d and a modification time", prefix, o, size(o.Key))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("list %q = %q, want %q", prefix, got, want)
		}
	}
	check("a/", []string{"a/1", "a/10", "a/2", "a/sub/x"})
	check("a", []string{"a/1", "a/10", "a/2", "a/sub/x", "ab"})
	check("", []string{"a/1", "a/10", "a/2", "a/sub/x", "ab", "b/1"})
	check("c/", nil)

	stop := errors.New("stop")
	calls := 0
	err := st.List(ctxT(t), "", func(store.Object) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("list with a failing callback: err = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

// testListPage pages through a listing in pages of several sizes.
func testListPage(t *testing.T, st store.Store) {
	pl := st
	var want []string
	for i := range 7 {
		k := fmt.Sprintf("p/%02d", i)
		want = append(want, k)
		put(t, st, k, Data(int64(i), byte(i)))
	}
	put(t, st, "q/0", Data(1, 1))
	for _, limit := range []int{1, 3, 7, 1000} {
		var got []string
		token, pages := "", 0
		for {
			objs, next, err := pl.ListPage(ctxT(t), "p/", token, limit)
			if err != nil {
				t.Fatalf("list page %d of %d: %v", pages, limit, err)
			}
			pages++
			if len(objs) > limit {
				t.Fatalf("page of %d objects with a limit of %d", len(objs), limit)
			}
			for _, o := range objs {
				got = append(got, o.Key)
				if o.Size != int64(slices.Index(want, o.Key)) || o.LastModified.IsZero() {
					t.Errorf("list page: %+v, want its size and a modification time", o)
				}
			}
			if next == "" {
				break
			}
			if pages > len(want)+1 {
				t.Fatalf("listing in pages of %d does not end", limit)
			}
			token = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages of %d listed %q, want %q", limit, got, want)
		}
	}
	objs, next, err := pl.ListPage(ctxT(t), "none/", "", 10)
	if err != nil || len(objs) != 0 || next != "" {
		t.Fatalf("empty listing: %v, %q, %v", objs, next, err)
	}
}

func testOverwrite(t *testing.T, st store.Store) {
	key := "manifests/buildkit"
	put(t, st, key, Data(300, 4))
	v2 := Data(200, 5)
	put(t, st, key, v2)
	equal(t, "get after overwrite", get(t, st, key, 0, -1), v2)
	if o := stat(t, st, key); o.Size != 200 {
		t.Fatalf("size after overwrite = %d, want 200", o.Size)
	}
}

func testLarge(t *testing.T, st store.Store, size int64) {
	key, data := blobKey(6), Data(size, 6)
	put(t, st, key, data)
	if o := stat(t, st, key); o.Size != size {
		t.Fatalf("size = %d, want %d", o.Size, size)
	}
	equal(t, "get", get(t, st, key, 0, -1), data)
	off := size/2 - 1000
	equal(t, "ranged get", get(t, st, key, off, 5000), data[off:off+5000])
	equal(t, "tail get", get(t, st, key, size-7, -1), data[size-7:])
}

// failingReader fails every read that reaches failAt.
type failingReader struct {
	r      io.ReaderAt
	failAt int64
}

var errRead = errors.New("storetest: read failed")

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.failAt {
		return 0, errRead
	}
	return f.r.ReadAt(p, off)
}

func testFailedPut(t *testing.T, st store.Store, large int64) {
	key, old := blobKey(7), Data(100, 7)
	put(t, st, key, old)
	for _, size := range []int64{1000, large} {
		r := failingReader{bytes.NewReader(Data(size, 8)), size - size/3}
		if err := st.Put(ctxT(t), key, store.NewBody(r, size)); err == nil {
			t.Fatalf("put of %d bytes from a failing reader succeeded", size)
		}
		equal(t, fmt.Sprintf("get after the failed put of %d bytes", size), get(t, st, key, 0, -1), old)
	}
}

func testZeroBytes(t *testing.T, st store.Store) {
	key := blobKey(9)
	put(t, st, key, nil)
	if o := stat(t, st, key); o.Size != 0 {
		t.Fatalf("size = %d, want 0", o.Size)
	}
	if b := get(t, st, key, 0, -1); len(b) != 0 {
		t.Fatalf("get returned %d bytes, want 0", len(b))
	}
	if objs := list(t, st, key); len(objs) != 1 || objs[0].Size != 0 {
		t.Fatalf("list = %+v, want the one empty object", objs)
	}
}

func testTouch(t *testing.T, st store.Store) {
	key, data := blobKey(10), Data(2000, 10)
	put(t, st, key, data)
	before := stat(t, st, key)
	time.Sleep(1100 * time.Millisecond) // modification times have second resolution
	if err := st.Touch(ctxT(t), key, int64(len(data))); err != nil {
		t.Fatalf("touch: %v", err)
	}
	after := stat(t, st, key)
	if !after.LastModified.After(before.LastModified) {
		t.Fatalf("touch: modification time %v, was %v", after.LastModified, before.LastModified)
	}
	if after.Size != before.Size {
		t.Fatalf("touch: size %d, was %d", after.Size, before.Size)
	}
	equal(t, "get after touch", get(t, st, key, 0, -1), data)
}

func testDelete(t *testing.T, st store.Store) {
	var keys []string
	for i := range 8 {
		k := blobKey(byte(20 + i))
		keys = append(keys, k)
		put(t, st, k, Data(10, byte(i)))
	}
	ctx := ctxT(t)
	if err := st.Delete(ctx, nil); err != nil {
		t.Fatalf("delete of no keys: %v", err)
	}
	doomed := append(slices.Clone(keys[:6]), blobKey(90), blobKey(91))
	if err := st.Delete(ctx, doomed); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var got []string
	for _, o := range list(t, st, "") {
		got = append(got, o.Key)
	}
	want := slices.Sorted(slices.Values(keys[6:]))
	if !slices.Equal(got, want) {
		t.Fatalf("after delete: list = %q, want %q", got, want)
	}
	if _, err := st.Stat(ctx, keys[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stat of a deleted key: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, doomed); err != nil {
		t.Fatalf("delete of missing keys: %v", err)
	}
}

func testCanceled(t *testing.T, st store.Store, large int64) {
	key, data := blobKey(11), Data(100, 11)
	put(t, st, key, data)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: err = %v, want context.Canceled", op, err)
		}
	}
	_, err := st.Stat(ctx, key)
	check("stat", err)
	_, err = st.Get(ctx, key, 0, -1)
	check("get", err)
	check("list", st.List(ctx, "", func(store.Object) error { return nil }))
	check("put", st.Put(ctx, blobKey(12), store.NewBody(bytes.NewReader(data), 100)))
	big := Data(large, 13)
	check("large put", st.Put(ctx, blobKey(13), store.NewBody(bytes.NewReader(big), large)))
	check("touch", st.Touch(ctx, key, 100))
	check("delete", st.Delete(ctx, []string{key}))
	// Nothing above may have taken effect.
	equal(t, "get", get(t, st, key, 0, -1), data)
	if objs := list(t, st, ""); len(objs) != 1 {
		t.Fatalf("after canceled calls: %d objects, want 1", len(objs))
	}
}
