package gc_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3cache/s3cache/gc"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// These tests interleave a prune and an export deterministically, pausing
// one of them at a chosen request, to check each step of the protocol in
// the package comment. In each, blobs A and B were uploaded by a cache
// whose manifest is gone, longer ago than prune's grace of 1s; the export
// writes cache "new" of B (reused) and C (uploaded).

// hooked is st calling before(op, key) ahead of every request.
func hooked(st store.Store, before func(op storetest.Op, key string)) *storetest.Spy {
	spy := storetest.NewSpy(st)
	spy.Before = func(_ context.Context, op storetest.Op, key string) error {
		before(op, key)
		return nil
	}
	return spy
}

// gate pauses the first caller of pause until release.
type gate struct {
	once             sync.Once
	reached, release chan struct{}
}

func newGate() *gate { return &gate{reached: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) pause() {
	g.once.Do(func() {
		close(g.reached)
		<-g.release
	})
}

func (g *gate) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

type raceFixture struct {
	b       *cachetest.Bucket
	f       *cachetest.Factory
	a, x, c cachetest.Layer // x is the reused blob B
}

func newRace(t *testing.T) *raceFixture {
	t.Helper()
	r := &raceFixture{b: cachetest.NewBucket(t, ""), f: cachetest.New()}
	ls := r.f.Layers(t, 1000, 2000, 3000)
	r.a, r.x, r.c = ls[0], ls[1], ls[2]
	orphan(t, r.f, r.b, r.a, r.x)
	time.Sleep(1500 * time.Millisecond) // older than the grace
	return r
}

// export runs the export of "new" in the background through st.
func (r *raceFixture) export(t *testing.T, st store.Store, touchRefresh string) <-chan error {
	t.Helper()
	opts := cachetest.Through(st)
	attrs := r.b.Attrs(t, "name=new", "touch_refresh="+touchRefresh)
	errc := make(chan error, 1)
	go func() { errc <- r.f.ExportE(context.Background(), opts, attrs, r.x, r.c) }()
	return errc
}

// prune runs a prune with a 1s grace in the background through st.
func (r *raceFixture) prune(st store.Store) <-chan pruneResult {
	out := make(chan pruneResult, 1)
	go func() {
		pr := gc.New(st, r.b.Layout, gc.Options{Grace: time.Second, KeepStorage: gc.NoLimit})
		plan, err := pr.Plan(context.Background())
		if err != nil {
			out <- pruneResult{err: err}
			return
		}
		res, err := pr.Execute(context.Background(), plan)
		out <- pruneResult{res: res, err: err}
	}()
	return out
}

type pruneResult struct {
	res *gc.Result
	err error
}

func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func (r *raceFixture) checkIntact(t *testing.T) {
	t.Helper()
	if !exists(t, r.b.Store, r.b.Layout.BlobKey(r.x.Digest())) {
		t.Error("the reused blob is gone")
	}
	if exists(t, r.b.Store, r.b.Layout.BlobKey(r.a.Digest())) {
		t.Error("the garbage blob A survived")
	}
	verifyAll(t, r.b)
}

// pauseAt returns a hook that pauses at the first request of op on key.
func pauseAt(g *gate, op storetest.Op, key string) func(storetest.Op, string) {
	return func(o storetest.Op, k string) {
		if o == op && k == key {
			g.pause()
		}
	}
}

// pauseAtNth pauses at the nth request of op on key.
func pauseAtNth(g *gate, op storetest.Op, key string, n int) func(storetest.Op, string) {
	var mu sync.Mutex
	seen := 0
	return func(o storetest.Op, k string) {
		if o != op || k != key {
			return
		}
		mu.Lock()
		seen++
		hit := seen == n
		mu.Unlock()
		if hit {
			g.pause()
		}
	}
}

// The export touched B after the prune's plan and before its re-check:
// the re-check finds B young and keeps it, so the export has nothing to repair.
func TestRacePruneRechecksABlobTouchedAfterThePlan(t *testing.T) {
	r := newRace(t)
	pg, eg := newGate(), newGate()
	// The re-check is a HEAD per candidate or a LIST of their shard,
	// whichever is fewer requests; the plan lists only the whole prefix.
	pst := hooked(r.b.Store, func(op storetest.Op, key string) {
		if op == "stat" && strings.HasPrefix(key, r.b.Layout.BlobsDir()) ||
			op == "list" && strings.HasPrefix(key, r.b.Layout.BlobsDir()) && key != r.b.Layout.BlobsDir() {
			pg.pause()
		}
	})
	pr := r.prune(pst)
	pg.wait(t, "the prune to re-check")

	var mu sync.Mutex
	puts := 0
	est := hooked(r.b.Store, func(op storetest.Op, key string) {
		if op == "put" && key == r.b.Layout.BlobKey(r.x.Digest()) {
			mu.Lock()
			puts++
			mu.Unlock()
		}
		if op == "put" && key == r.b.Layout.ManifestKey("new") {
			eg.pause()
		}
	})
	exp := r.export(t, est, "1s")
	eg.wait(t, "the export to reach its manifest")
	close(pg.release)
	p := wait(t, pr, "prune")
	if p.err != nil || p.res.Deleted.Objects != 1 || p.res.Refreshed != 1 {
		t.Fatalf("prune: %v, %+v; want A deleted and B kept as refreshed", p.err, p.res)
	}
	close(eg.release)
	if err := wait(t, exp, "export"); err != nil {
		t.Fatal(err)
	}
	if puts != 0 {
		t.Errorf("the export uploaded B %d times; the prune should have left it alone", puts)
	}
	r.checkIntact(t)
}

// The export touched B (older than its touch_refresh) before the prune
// listed the bucket: B is young, and the grace keeps it.
func TestRacePruneSparesABlobAnExportTouched(t *testing.T) {
	r := newRace(t)
	g := newGate()
	exp := r.export(t, hooked(r.b.Store, pauseAt(g, "put", r.b.Layout.ManifestKey("new"))), "1s")
	g.wait(t, "the export to reach its manifest")

	p := wait(t, r.prune(r.b.Store), "prune")
	if p.err != nil || p.res.Deleted.Objects != 1 {
		t.Fatalf("prune: %v, %+v; want A deleted only", p.err, p.res)
	}
	close(g.release)
	if err := wait(t, exp, "export"); err != nil {
		t.Fatal(err)
	}
	r.checkIntact(t)
}

// The prune deleted B after the export found it and before its touch:
// the touch fails with not found and the export uploads B again.
func TestRaceExportUploadsABlobDeletedBeforeItsTouch(t *testing.T) {
	r := newRace(t)
	g := newGate()
	exp := r.export(t, hooked(r.b.Store, pauseAt(g, "touch", r.b.Layout.BlobKey(r.x.Digest()))), "1s")
	g.wait(t, "the export to touch B")

	p := wait(t, r.prune(r.b.Store), "prune")
	if p.err != nil || p.res.Deleted.Objects != 2 {
		t.Fatalf("prune: %v, %+v; want A and B deleted", p.err, p.res)
	}
	close(g.release)
	if err := wait(t, exp, "export"); err != nil {
		t.Fatal(err)
	}
	r.checkIntact(t)
}

// The prune re-checked B (old), then the export touched it and reached its
// manifest, then the prune deleted B: the export's re-check after writing
// its manifest finds B gone and uploads it again.
func TestRaceExportRechecksABlobDeletedAfterItsTouch(t *testing.T) {
	r := newRace(t)
	pg, eg := newGate(), newGate()
	// The prune lists the manifests once to plan, then again to re-mark
	// after re-checking the batch: pause there.
	pst := hooked(r.b.Store, pauseAtNth(pg, "list", r.b.Layout.ManifestsDir(), 2))
	pr := r.prune(pst)
	pg.wait(t, "the prune to re-mark")

	exp := r.export(t, hooked(r.b.Store, pauseAt(eg, "put", r.b.Layout.ManifestKey("new"))), "1s")
	eg.wait(t, "the export to reach its manifest")
	close(pg.release)
	p := wait(t, pr, "prune")
	if p.err != nil || p.res.Deleted.Objects != 2 || len(p.res.Races) != 0 {
		t.Fatalf("prune: %v, %+v; want A and B deleted", p.err, p.res)
	}
	close(eg.release)
	if err := wait(t, exp, "export"); err != nil {
		t.Fatal(err)
	}
	r.checkIntact(t)
}

// The export, not touching B (young for its touch_refresh), wrote its
// manifest after the prune's plan and before its re-marking: the prune
// sees the manifest and keeps B.
func TestRacePruneRemarksAManifestWrittenMeanwhile(t *testing.T) {
	r := newRace(t)
	pg := newGate()
	pst := hooked(r.b.Store, pauseAtNth(pg, "list", r.b.Layout.ManifestsDir(), 2))
	pr := r.prune(pst)
	pg.wait(t, "the prune to re-mark")

	if err := wait(t, r.export(t, r.b.Store, "24h"), "export"); err != nil {
		t.Fatal(err)
	}
	close(pg.release)
	p := wait(t, pr, "prune")
	if p.err != nil || p.res.Deleted.Objects != 1 || p.res.Rescued != 1 {
		t.Fatalf("prune: %v, %+v; want A deleted and B rescued", p.err, p.res)
	}
	r.checkIntact(t)
}

// The residual window: the export's touch, manifest and re-check all fall
// between the prune's re-marking and its delete. The prune deletes B, then
// reports the race; verify names B, and the next export repairs it.
func TestRacePruneReportsAnExportInsideItsLastWindow(t *testing.T) {
	r := newRace(t)
	pg := newGate()
	// The prune drops no cache: its first delete is the batch of A and B.
	pst := hooked(r.b.Store, func(op storetest.Op, _ string) {
		if op == "delete" {
			pg.pause()
		}
	})
	pr := r.prune(pst)
	pg.wait(t, "the prune to delete")

	if err := wait(t, r.export(t, r.b.Store, "1s"), "export"); err != nil {
		t.Fatal(err)
	}
	close(pg.release)
	p := wait(t, pr, "prune")
	want := []gc.Race{{Cache: "new", Blob: r.x.Digest()}}
	if p.err != nil || !slices.Equal(p.res.Races, want) || len(p.res.Warnings) != 1 || !strings.Contains(p.res.Warnings[0], r.x.Digest()) {
		t.Fatalf("prune: %v, %+v; want the race on B reported", p.err, p.res)
	}
	vr, err := inventory.Verify(context.Background(), r.b.Store, r.b.Layout, inventory.VerifyOptions{Names: []string{"new"}}, inventory.Options{})
	if err == nil || len(vr.Problems) != 1 || vr.Problems[0].Blob != r.x.Digest() {
		t.Fatalf("verify after the race: %v, %+v; want B missing", err, vr)
	}
	r.f.Export(t, cachetest.ExportOptions{}, r.b.Attrs(t, "name=new"), r.x, r.c)
	r.checkIntact(t)
}

// An export uploaded C, then took longer than the grace to reach its
// manifest (here its clock jumps 31 minutes, past the exporter's re-check
// age, as the prune's grace of 1s stands for one of an hour): the prune
// deleted C as an old unnamed blob, and the export's re-check after its
// manifest finds C gone and uploads it again.
func TestRaceExportRechecksABlobItUploaded(t *testing.T) {
	b, f := cachetest.NewBucket(t, ""), cachetest.New()
	c := f.Layers(t, 3000)[0]
	g := newGate()
	var late atomic.Bool
	opts := cachetest.Through(hooked(b.Store, pauseAt(g, "put", b.Layout.ManifestKey("new"))))
	opts.Now = func() time.Time {
		if late.Load() {
			return time.Now().Add(31 * time.Minute)
		}
		return time.Now()
	}
	exp := make(chan error, 1)
	go func() { exp <- f.ExportE(context.Background(), opts, b.Attrs(t, "name=new"), c) }()
	g.wait(t, "the export to reach its manifest")
	time.Sleep(1500 * time.Millisecond) // C is older than the grace

	r := &raceFixture{b: b, f: f}
	p := wait(t, r.prune(b.Store), "prune")
	if p.err != nil || p.res.Deleted.Objects != 1 {
		t.Fatalf("prune: %v, %+v; want C deleted", p.err, p.res)
	}
	late.Store(true)
	close(g.release)
	if err := wait(t, exp, "export"); err != nil {
		t.Fatal(err)
	}
	if !exists(t, b.Store, b.Layout.BlobKey(c.Digest())) {
		t.Fatal("the blob the export uploaded is gone, and its manifest names it")
	}
	verifyAll(t, b)
}
