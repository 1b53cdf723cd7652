package gc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/gc"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }

// objects is the bucket's state: key -> size and modification time.
func objects(t *testing.T, st store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := st.List(context.Background(), "", func(o store.Object) error {
		out[o.Key] = fmt.Sprintf("%d@%s", o.Size, o.LastModified.Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exists(t *testing.T, st store.Store, key string) bool {
	t.Helper()
	_, err := st.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func prune(t *testing.T, b *cachetest.Bucket, opts gc.Options) (*gc.Plan, *gc.Result) {
	t.Helper()
	if opts.KeepStorage == 0 {
		opts.KeepStorage = gc.NoLimit
	}
	pr := gc.New(b.Store, b.Layout, opts)
	plan, err := pr.Plan(context.Background())
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	res, err := pr.Execute(context.Background(), plan)
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	return plan, res
}

// verifyAll fails the test unless every cache's blobs are intact.
func verifyAll(t *testing.T, b *cachetest.Bucket) {
	t.Helper()
	r, err := inventory.Verify(context.Background(), b.Store, b.Layout, inventory.VerifyOptions{All: true, Deep: true}, inventory.Options{})
	if err != nil {
		t.Fatalf("verify --all --deep after prune: %v: %+v", err, r.Problems)
	}
}

// orphan exports a cache and deletes its manifest: its blobs are garbage.
func orphan(t *testing.T, f *cachetest.Factory, b *cachetest.Bucket, ls ...cachetest.Layer) {
	t.Helper()
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=tmp"), ls...)
	if err := b.Store.Delete(context.Background(), []string{b.Layout.ManifestKey("tmp")}); err != nil {
		t.Fatal(err)
	}
}

func TestOrphanSurvivesGraceAndGoesWithoutIt(t *testing.T) {
	b := cachetest.NewBucket(t, "prefix=ci/")
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000, 3000, 4000)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=main"), ls[0], ls[1])
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=dev"), ls[0], ls[2])
	orphan(t, f, b, ls[0], ls[3])

	plan, res := prune(t, b, gc.Options{Grace: gc.DefaultGrace})
	if plan.Sweep.Objects != 0 || plan.Young.Objects != 1 || plan.Young.Bytes != 4000 || res.Deleted.Objects != 0 {
		t.Fatalf("default grace: plan sweep %+v young %+v, deleted %+v; want the orphan kept as young", plan.Sweep, plan.Young, res.Deleted)
	}
	if !exists(t, b.Store, b.Layout.BlobKey(ls[3].Digest())) {
		t.Fatal("orphan deleted within the grace")
	}

	plan, res = prune(t, b, gc.Options{Grace: 0})
	if plan.Sweep.Objects != 1 || res.Deleted.Objects != 1 || res.Deleted.Bytes != 4000 {
		t.Fatalf("grace 0: plan sweep %+v, deleted %+v; want the 4000-byte orphan", plan.Sweep, res.Deleted)
	}
	if exists(t, b.Store, b.Layout.BlobKey(ls[3].Digest())) {
		t.Fatal("orphan survived --grace 0s")
	}
	for _, l := range ls[:3] {
		if !exists(t, b.Store, b.Layout.BlobKey(l.Digest())) {
			t.Errorf("referenced blob %s deleted", l.Digest())
		}
	}
	verifyAll(t, b)
}

func TestDryRunChangesNothing(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000, 3000)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=main"), ls[0], ls[1])
	orphan(t, f, b, ls[2])
	before := objects(t, b.Store)

	pr := gc.New(b.Store, b.Layout, gc.Options{Grace: 0, KeepDuration: time.Nanosecond, KeepStorage: 0})
	plan, err := pr.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Drop) != 1 || plan.Sweep.Objects != 3 {
		t.Fatalf("plan drops %v and sweeps %+v; want main dropped, its 2 blobs and the orphan swept", plan.Drop, plan.Sweep)
	}
	var buf bytes.Buffer
	if err := (&gc.Report{DryRun: true, Plan: plan}).Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"1 to drop", "main", ls[2].Digest(), "dry run: nothing deleted"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("dry-run report lacks %q:\n%s", s, buf.String())
		}
	}
	if after := objects(t, b.Store); !maps.Equal(before, after) {
		t.Fatalf("planning changed the bucket:\nbefore %v\nafter  %v", before, after)
	}
}

func TestKeepDurationDropsCachesNotWrittenSince(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000, 3000)
	shared, old, fresh := ls[0], ls[1], ls[2]
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=old"), shared, old)
	time.Sleep(2500 * time.Millisecond)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=new"), shared, fresh)

	plan, res := prune(t, b, gc.Options{Grace: 0, KeepDuration: 1500 * time.Millisecond})
	if len(plan.Drop) != 1 || plan.Drop[0].Name != "old" || !slices.Equal(res.Dropped, []string{"old"}) {
		t.Fatalf("dropped %+v (executed %v), want only old", plan.Drop, res.Dropped)
	}
	if exists(t, b.Store, b.Layout.ManifestKey("old")) || !exists(t, b.Store, b.Layout.ManifestKey("new")) {
		t.Fatal("manifests after keep-duration: want old gone and new kept")
	}
	if exists(t, b.Store, b.Layout.BlobKey(old.Digest())) {
		t.Error("blob only the dropped cache named survived")
	}
	for _, l := range []cachetest.Layer{shared, fresh} {
		if !exists(t, b.Store, b.Layout.BlobKey(l.Digest())) {
			t.Errorf("blob %s of the kept cache deleted", l.Digest())
		}
	}
	verifyAll(t, b)
}

func TestKeepStorageDropsLeastRecentlyWritten(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	f := cachetest.New()
	ls := f.Layers(t, 4000, 1000, 2000, 3000)
	x, s, y, z := ls[0], ls[1], ls[2], ls[3]
	// c1 (oldest) holds x; c2 s+y; c3 (newest) s+z. Newest first, the
	// referenced bytes grow 4000 (c3), 6000 (+c2), 10000 (+c1).
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=c1"), x)
	time.Sleep(1100 * time.Millisecond)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=c2"), s, y)
	time.Sleep(1100 * time.Millisecond)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=c3"), s, z)

	for _, tc := range []struct {
		limit int64
		drop  []string
	}{
		{10000, nil},
		{9999, []string{"c1"}},
		{6000, []string{"c1"}},
		{5999, []string{"c1", "c2"}},
		{4000, []string{"c1", "c2"}},
		{3999, []string{"c1", "c2", "c3"}},
		{0, []string{"c1", "c2", "c3"}},
	} {
		plan, err := gc.New(b.Store, b.Layout, gc.Options{Grace: 0, KeepStorage: tc.limit}).Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range plan.Drop {
			got = append(got, d.Name)
		}
		if !slices.Equal(got, tc.drop) {
			t.Errorf("keep-storage %d drops %v, want %v", tc.limit, got, tc.drop)
		}
	}

	plan, res := prune(t, b, gc.Options{Grace: 0, KeepStorage: 5999})
	if plan.Referenced.Bytes != 4000 || res.Deleted.Objects != 2 || res.Deleted.Bytes != 6000 {
		t.Fatalf("keep-storage 5999: referenced %+v after drops, deleted %+v; want 4000 kept, x and y (6000) deleted", plan.Referenced, res.Deleted)
	}
	for _, l := range []cachetest.Layer{s, z} {
		if !exists(t, b.Store, b.Layout.BlobKey(l.Digest())) {
			t.Errorf("blob %s of the kept cache c3 deleted", l.Digest())
		}
	}
	verifyAll(t, b)
}

func TestBrokenManifestStopsTheSweepUnlessForced(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=main"), ls[0])
	orphan(t, f, b, ls[1])
	bad := []byte(`{"layers": [{"blob": "` + ls[1].Digest() + `"`)
	if err := b.Store.Put(context.Background(), b.Layout.ManifestKey("bad"), store.BytesBody(bad)); err != nil {
		t.Fatal(err)
	}
	before := objects(t, b.Store)

	pr := gc.New(b.Store, b.Layout, gc.Options{Grace: 0, KeepStorage: gc.NoLimit})
	plan, err := pr.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = pr.Execute(context.Background(), plan)
	var refused *gc.RefusedError
	if !errors.As(err, &refused) || !slices.Equal(refused.Manifests, []string{"bad"}) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("execute with a broken manifest: %v, want a refusal naming bad and --force", err)
	}
	if after := objects(t, b.Store); !maps.Equal(before, after) {
		t.Fatal("a refused prune changed the bucket")
	}

	_, res := prune(t, b, gc.Options{Grace: 0, Force: true})
	if res.Deleted.Objects != 1 || exists(t, b.Store, b.Layout.BlobKey(ls[1].Digest())) {
		t.Fatalf("--force deleted %+v; want the blob only the broken manifest may name", res.Deleted)
	}
	if !exists(t, b.Store, b.Layout.ManifestKey("bad")) || !exists(t, b.Store, b.Layout.BlobKey(ls[0].Digest())) {
		t.Fatal("--force deleted the broken manifest or main's blob")
	}
}

// TestSweepRechecksWithFewestRequests checks that a batch re-checks dense
// shards with a LIST and sparse ones with a HEAD per candidate.
func TestSweepRechecksWithFewestRequests(t *testing.T) {
	l := store.Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}
	ctx := context.Background()
	later := func() time.Time { return time.Now().Add(time.Minute) }
	fill := func(n int) (*storetest.Memory, []string) {
		st := storetest.NewMemory()
		var ds []string
		for i := range n {
			data := []byte(fmt.Sprint("blob ", i))
			d := digest.FromBytes(data).String()
			ds = append(ds, d)
			if err := st.Put(ctx, l.BlobKey(d), store.BytesBody(data)); err != nil {
				t.Fatal(err)
			}
		}
		return st, ds
	}

	// 3000 blobs, no manifest: every blob is garbage, re-checked with a
	// LIST of its shard (the whole prefix: 3 pages) per batch of 500.
	st, _ := fill(3000)
	cs := storetest.NewSpy(st)
	pr := gc.New(cs, l, gc.Options{Grace: 0, KeepStorage: gc.NoLimit, BatchSize: 500, Now: later})
	plan, err := pr.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs.Reset()
	res, err := pr.Execute(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted.Objects != 3000 || cs.Count(storetest.OpDelete) != 6 || cs.Count(storetest.OpStat) != 0 {
		t.Fatalf("deleted %d in %d requests with %d HEADs; want 3000 in 6 and no HEAD", res.Deleted.Objects, cs.Count(storetest.OpDelete), cs.Count(storetest.OpStat))
	}
	// Per batch, a LIST of the shard and one of the manifests, and a
	// closing one of the manifests: far fewer than 3000 HEADs.
	if n := cs.Lists(); n != 6+6+1 {
		t.Fatalf("%d LIST requests to re-check 3000 blobs in 6 batches, want 13", n)
	}

	// 3000 blobs, a manifest naming all but two: the two are HEADed.
	st, ds := fill(3000)
	var layers []string
	for _, d := range ds[2:] {
		layers = append(layers, `{"blob":"`+d+`"}`)
	}
	m := []byte(`{"layers":[` + strings.Join(layers, ",") + `]}`)
	if err := st.Put(ctx, l.ManifestKey("main"), store.BytesBody(m)); err != nil {
		t.Fatal(err)
	}
	cs = storetest.NewSpy(st)
	pr = gc.New(cs, l, gc.Options{Grace: 0, KeepStorage: gc.NoLimit, Now: later})
	plan, err = pr.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs.Reset()
	res, err = pr.Execute(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted.Objects != 2 || cs.Count(storetest.OpStat) != 2 || cs.Count(storetest.OpDelete) != 1 {
		t.Fatalf("deleted %d with %d HEADs in %d requests; want 2 with 2 HEADs in 1", res.Deleted.Objects, cs.Count(storetest.OpStat), cs.Count(storetest.OpDelete))
	}
}

// TestManifestNameEndingInSlashIsLive checks that a manifest whose name
// ends in "/" (our parser refuses such names, upstream writes them) is a
// cache like any other, and only a zero-byte "folder/" marker is not.
func TestManifestNameEndingInSlashIsLive(t *testing.T) {
	b := cachetest.NewBucket(t, "prefix=ci/")
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=tmp"), ls...)
	ctx := context.Background()
	dt, err := store.ReadAll(ctx, b.Store, b.Layout.ManifestKey("tmp"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, dt []byte) {
		t.Helper()
		if err := b.Store.Put(ctx, key, store.BytesBody(dt)); err != nil {
			t.Fatal(err)
		}
	}
	// What upstream's exporter writes for name=main/.
	put(b.Layout.ManifestKey("main/"), dt)
	put(b.Layout.ManifestKey("folder/"), nil)
	if err := b.Store.Delete(ctx, []string{b.Layout.ManifestKey("tmp")}); err != nil {
		t.Fatal(err)
	}

	plan, res := prune(t, b, gc.Options{Grace: 0})
	if plan.Caches != 1 || len(plan.Broken) != 0 || plan.Sweep.Objects != 0 || res.Deleted.Objects != 0 {
		t.Fatalf("plan: %d caches, broken %v, sweep %+v, deleted %+v; want cache main/ seen and its blobs kept",
			plan.Caches, plan.Broken, plan.Sweep, res.Deleted)
	}
	for _, l := range ls {
		if !exists(t, b.Store, b.Layout.BlobKey(l.Digest())) {
			t.Errorf("blob %s of cache main/ deleted", l.Digest())
		}
	}
	r, err := inventory.Ls(ctx, b.Store, b.Layout, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Caches) != 1 || r.Caches[0].Name != "main/" {
		t.Fatalf("ls: %+v; want the one cache main/ (and not the folder marker)", r.Caches)
	}
	verifyAll(t, b)
}

// errTruncated is a listing that could not be completed.
var errTruncated = errors.New("s3 list: truncated page without a continuation token")

// cutListing makes st fail its failAt-th listing (counting from 1) after
// passing on the first object.
func cutListing(st store.Store, failAt int) *storetest.Spy {
	spy := storetest.NewSpy(st)
	var passed int
	spy.Listed = func(storetest.Op, string, store.Object) error {
		if spy.Lists() != failAt {
			return nil
		}
		if passed++; passed > 1 {
			return errTruncated
		}
		return nil
	}
	spy.After = func(op storetest.Op, _ string, err error) error {
		if (op == storetest.OpList || op == storetest.OpListPage) && spy.Lists() == failAt && err == nil {
			return errTruncated
		}
		return err
	}
	return spy
}

// TestIncompleteListingNeverSweeps checks that a listing that fails at any
// point of a prune (the plan's, a batch's re-check or re-mark) stops it
// before a delete that listing should have vetted.
func TestIncompleteListingNeverSweeps(t *testing.T) {
	l := store.Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}
	ctx := context.Background()
	later := func() time.Time { return time.Now().Add(time.Minute) }
	for failAt := 1; failAt <= 4; failAt++ {
		t.Run(fmt.Sprint("list ", failAt), func(t *testing.T) {
			st := storetest.NewMemory()
			var ds []string
			for i := range 3 {
				data := []byte(fmt.Sprint("blob ", i))
				ds = append(ds, digest.FromBytes(data).String())
				if err := st.Put(ctx, l.BlobKey(ds[i]), store.BytesBody(data)); err != nil {
					t.Fatal(err)
				}
			}
			m := []byte(`{"layers":[{"blob":"` + ds[0] + `"}]}`)
			for _, name := range []string{"a", "b"} {
				if err := st.Put(ctx, l.ManifestKey(name), store.BytesBody(m)); err != nil {
					t.Fatal(err)
				}
			}
			before := objects(t, st)
			cs := cutListing(st, failAt)
			// Batches of 1 make each batch re-check with a HEAD and
			// re-mark with a LIST of the manifests.
			pr := gc.New(cs, l, gc.Options{Grace: 0, KeepStorage: gc.NoLimit, BatchSize: 1, Now: later})
			plan, err := pr.Plan(ctx)
			if err == nil {
				_, err = pr.Execute(ctx, plan)
			}
			if cs.Lists() < failAt {
				t.Skipf("prune made only %d listings", cs.Lists())
			}
			if err == nil || !strings.Contains(err.Error(), "truncated page") {
				t.Fatalf("prune after listing %d was cut short: %v; want its error", failAt, err)
			}
			after := objects(t, st)
			if failAt <= 2 && !maps.Equal(before, after) {
				t.Fatalf("prune deleted after an incomplete listing:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestRefusalEscapesNames checks that a manifest name from the bucket is
// escaped in the refusal, Unicode format characters included: U+202E
// would show "bad\u202egpj.exe" as "badexe.jpg".
func TestRefusalEscapesNames(t *testing.T) {
	l := store.Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}
	ctx := context.Background()
	st := storetest.NewMemory()
	for _, name := range []string{"bad\u202egpj.exe", "zero\u200bwidth", "line\nbreak"} {
		bad := []byte(`{"layers": [`)
		if err := st.Put(ctx, l.ManifestKey(name), store.BytesBody(bad)); err != nil {
			t.Fatal(err)
		}
	}
	pr := gc.New(st, l, gc.Options{KeepStorage: gc.NoLimit})
	plan, err := pr.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pr.Execute(ctx, plan)
	if err == nil {
		t.Fatal("a prune with broken manifests swept")
	}
	msg := err.Error()
	for _, raw := range []string{"\u202e", "\u200b", "\n"} {
		if strings.Contains(msg, raw) {
			t.Errorf("refusal holds the raw character %q: %s", raw, msg)
		}
	}
	for _, esc := range []string{`"bad\u202egpj.exe"`, `"zero\u200bwidth"`, `"line\nbreak"`} {
		if !strings.Contains(msg, esc) {
			t.Errorf("refusal lacks %s: %s", esc, msg)
		}
	}
}

// partDeleteStore deletes every key of a request but the first and
// reports the first as failed, as DeleteObjects does per key.
type partDeleteStore struct{ store.Store }

func (p *partDeleteStore) Delete(ctx context.Context, keys []string) error {
	if err := p.Store.Delete(ctx, keys[1:]); err != nil {
		return err
	}
	return &store.DeleteError{Deleted: keys[1:], Err: fmt.Errorf("s3 delete %s: AccessDenied: Access Denied (1 of %d keys in the batch failed)", keys[0], len(keys))}
}

// TestPartlyFailedDeleteIsCounted checks that the blobs a failed
// DeleteObjects did delete are in the result.
func TestPartlyFailedDeleteIsCounted(t *testing.T) {
	l := store.Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}
	ctx := context.Background()
	st := storetest.NewMemory()
	for i := range 3 {
		data := []byte(fmt.Sprint("blob ", i))
		if err := st.Put(ctx, l.BlobKey(digest.FromBytes(data).String()), store.BytesBody(data)); err != nil {
			t.Fatal(err)
		}
	}
	later := func() time.Time { return time.Now().Add(time.Minute) }
	pr := gc.New(&partDeleteStore{st}, l, gc.Options{KeepStorage: gc.NoLimit, Now: later})
	plan, err := pr.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := pr.Execute(ctx, plan)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("execute: %v, want the delete's error", err)
	}
	if res.Deleted.Objects != 2 || res.Deleted.Bytes != 12 {
		t.Fatalf("deleted %+v, want the 2 blobs (12 bytes) the failed request did delete", res.Deleted)
	}
}
