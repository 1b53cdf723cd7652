package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

func blobKey(i int) string {
	return fmt.Sprintf("blobs/sha256:%x", sha256.Sum256([]byte(fmt.Sprint(i))))
}

// bucketWith holds ours blobs of their own under blobs/ plus unrelated
// ones, behind a spy that counts the requests.
func bucketWith(t *testing.T, ours, unrelated int) (*storetest.Spy, []string) {
	t.Helper()
	m := storetest.NewMemory()
	ctx := context.Background()
	var keys []string
	for i := range ours {
		keys = append(keys, blobKey(i))
		if err := m.Put(ctx, blobKey(i), store.BytesBody([]byte("ours"))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range unrelated {
		if err := m.Put(ctx, blobKey(-1-i), store.BytesBody([]byte("other"))); err != nil {
			t.Fatal(err)
		}
	}
	return storetest.NewSpy(m), keys
}

// probe asks a fresh Prober which of keys exist under dir, HEADs 4 at a time.
func probe(ctx context.Context, st store.Store, where, dir string, keys []string, warn func(error)) *store.Index {
	return probeWith(ctx, store.NewProber(), st, where, dir, keys, warn)
}

func probeWith(ctx context.Context, p *store.Prober, st store.Store, where, dir string, keys []string, warn func(error)) *store.Index {
	return p.Probe(ctx, st, store.Query{Dir: dir, Keys: keys, Parallel: 4, Where: where, Warn: warn})
}

// answers checks every key is found with its size, through the index.
func answers(t *testing.T, x *store.Index, keys []string, size int64) {
	t.Helper()
	for _, k := range keys {
		obj, err := x.Stat(context.Background(), k)
		if err != nil || obj.Size != size {
			t.Fatalf("stat %s: %v, size %d; want size %d", k, err, obj.Size, size)
		}
	}
	if _, err := x.Stat(context.Background(), "blobs/sha256:ffff"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stat of an absent blob: %v, want ErrNotFound", err)
	}
}

func TestProbeOneListingForAWarmExport(t *testing.T) {
	st, keys := bucketWith(t, 62, 0)
	x := probe(context.Background(), st, "", "blobs/", keys, nil)
	if !x.Complete() {
		t.Fatal("a listing of 62 objects should complete")
	}
	answers(t, x, keys, 4)
	if st.Count(storetest.OpStat) != 0 || st.Count(storetest.OpListPage) != 1 {
		t.Fatalf("%d HEADs and %d LIST pages, want 0 and 1", st.Count(storetest.OpStat), st.Count(storetest.OpListPage))
	}
}

func TestProbeColdExportNeedsNoHEADs(t *testing.T) {
	_, keys := bucketWith(t, 62, 0)
	empty := storetest.NewSpy(storetest.NewMemory())
	x := probe(context.Background(), empty, "", "blobs/", keys, nil)
	for _, k := range keys {
		if _, err := x.Stat(context.Background(), k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("stat %s in an empty prefix: %v, want ErrNotFound", k, err)
		}
	}
	if empty.Count(storetest.OpStat) != 0 {
		t.Fatalf("%d HEADs in an empty prefix, want none", empty.Count(storetest.OpStat))
	}
}

// A prefix crowded with unrelated blobs: the listing stops after its first
// page and the keys it did not reach get HEADs.
func TestProbeCrowdedPrefixFallsBackToHEADs(t *testing.T) {
	st, keys := bucketWith(t, 62, 10000)
	x := probe(context.Background(), st, "", "blobs/", keys, nil)
	if x.Complete() {
		t.Fatal("the listing of 10,062 objects for 62 keys should stop early")
	}
	if st.Count(storetest.OpListPage) != 1 {
		t.Fatalf("%d LIST pages, want 1", st.Count(storetest.OpListPage))
	}
	answers(t, x, keys, 4)
	covered := 0
	for _, k := range keys {
		if k <= x.Through() {
			covered++
		}
	}
	// One more HEAD for the absent key of answers.
	if want := len(keys) - covered + 1; st.Count(storetest.OpStat) != want {
		t.Fatalf("%d HEADs, want %d (the keys past the first page)", st.Count(storetest.OpStat), want)
	}
}

// Many keys against a crowded prefix: listing it all is cheaper than a
// HEAD each, so the listing goes on to the end.
func TestProbeManyKeysListEverything(t *testing.T) {
	st, keys := bucketWith(t, 3000, 5000)
	x := probe(context.Background(), st, "", "blobs/", keys, nil)
	// 8,000 objects end exactly at a page, so the listing may stop there
	// rather than ask for an empty ninth page: either way it covers them all.
	if !x.Complete() && x.Through() < slices.Max(keys) {
		t.Fatalf("listing stopped at %s; 8 pages are cheaper than 750 rounds of HEADs", x.Through())
	}
	answers(t, x, keys, 4)
	// At most the absent key of answers is HEADed, where the listing stopped.
	if st.Count(storetest.OpStat) > 1 || st.Count(storetest.OpListPage) != 8 {
		t.Fatalf("%d HEADs and %d LIST pages, want at most 1 (the absent key) and 8", st.Count(storetest.OpStat), st.Count(storetest.OpListPage))
	}
}

func TestProbeListingDeniedFallsBackToHEADs(t *testing.T) {
	st, keys := bucketWith(t, 10, 0)
	st.Before = func(_ context.Context, op storetest.Op, _ string) error {
		if op == storetest.OpList || op == storetest.OpListPage {
			return errors.New("AccessDenied")
		}
		return nil
	}
	var warned error
	x := probe(context.Background(), st, "", "blobs/", keys, func(err error) { warned = err })
	if warned == nil {
		t.Fatal("a failed listing was not reported")
	}
	answers(t, x, keys, 4)
	if st.Count(storetest.OpStat) != len(keys)+1 {
		t.Fatalf("%d HEADs, want one per key", st.Count(storetest.OpStat))
	}
}

func TestProbeStopsAtTheLastKeyItNeeds(t *testing.T) {
	// Our keys all sort before the unrelated ones: the listing stops at the
	// first page boundary past them.
	m := storetest.NewMemory()
	ctx := context.Background()
	var keys []string
	for i := range 5 {
		k := fmt.Sprintf("blobs/sha256:0000%060x", i)
		keys = append(keys, k)
		_ = m.Put(ctx, k, store.BytesBody([]byte("ours")))
	}
	for i := range 3000 {
		_ = m.Put(ctx, fmt.Sprintf("blobs/sha256:8%063x", i), store.BytesBody([]byte("other")))
	}
	st := storetest.NewSpy(m)
	x := probe(ctx, st, "", "blobs/", keys, nil)
	answers(t, x, keys, 4)
	if st.Count(storetest.OpListPage) != 1 || st.Count(storetest.OpStat) != 1 {
		t.Fatalf("%d LIST pages and %d HEADs, want 1 and 1 (the absent key)", st.Count(storetest.OpListPage), st.Count(storetest.OpStat))
	}
}

func TestKeyspaceFraction(t *testing.T) {
	for _, tt := range []struct {
		name           string
		covered, total int
		want           float64
	}{
		{"sha256:8000000000000000aaaa", 0, 10, 0.5},
		{"sha256:4000000000000000", 0, 10, 0.25},
		{"sha256:ffffffffffffffff", 0, 10, 1},
		{"not-a-digest", 4, 9, 4.5 / 9.5},
		{"sha256:0000000000000000", 0, 1, 1.0 / 3},
	} {
		if got := store.KeyspaceFraction(tt.name, tt.covered, tt.total); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("store.KeyspaceFraction(%q, %d, %d) = %v, want %v", tt.name, tt.covered, tt.total, got, tt.want)
		}
	}
}

// Listed a page at a time, a warm or cold export's prefix takes one small page.
func TestProbePagedSmallPrefix(t *testing.T) {
	for _, ours := range []int{62, 0} {
		st, keys := bucketWith(t, 62, 0)
		if ours == 0 {
			st = storetest.NewSpy(storetest.NewMemory())
		}
		x := probe(context.Background(), st, "", "blobs/", keys, nil)
		if !x.Complete() || st.Count(storetest.OpListPage) != 1 || st.Count(storetest.OpStat) != 0 || st.PageLimits()[0] != 4*62 {
			t.Fatalf("%d of ours: complete %v after %d pages (limits %v) and %d HEADs, want one page of 248 and no HEAD", ours, x.Complete(), st.Count(storetest.OpListPage), st.PageLimits(), st.Count(storetest.OpStat))
		}
		if ours > 0 {
			answers(t, x, keys, 4)
		}
	}
}

// A few keys in a prefix crowded with 10,000 other blobs: one page of 100
// tells the listing would be long, and HEADs do the rest.
func TestProbePagedCrowdedPrefix(t *testing.T) {
	st, keys := bucketWith(t, 12, 10000)
	x := probe(context.Background(), st, "", "blobs/", keys, nil)
	answers(t, x, keys, 4)
	if st.Count(storetest.OpListPage) != 1 || st.ObjectsListed() != 100 {
		t.Fatalf("%d pages of %d objects, want 1 of 100", st.Count(storetest.OpListPage), st.ObjectsListed())
	}
	if st.Count(storetest.OpStat) > len(keys)+1 {
		t.Fatalf("%d HEADs for %d keys", st.Count(storetest.OpStat), len(keys))
	}
}

// Many keys in a crowded prefix: the listing goes on in full pages.
func TestProbePagedManyKeys(t *testing.T) {
	st, keys := bucketWith(t, 3000, 5000)
	x := probe(context.Background(), st, "", "blobs/", keys, nil)
	answers(t, x, keys, 4)
	if !x.Complete() || st.Count(storetest.OpStat) != 0 || st.Count(storetest.OpListPage) != 8 || st.PageLimits()[1] != 1000 {
		t.Fatalf("complete %v, %d HEADs, %d pages (limits %v); want a complete listing in 8 pages and no HEAD", x.Complete(), st.Count(storetest.OpStat), st.Count(storetest.OpListPage), st.PageLimits())
	}
}

// A prefix a listing found crowded is not listed again for a few keys: the
// next lookup sends its HEADs at once. More keys than HEADs can check
// cheaply still list, and a prefix that listed completely is not
// remembered.
func TestProbeRemembersCrowdedPrefix(t *testing.T) {
	where := t.Name()
	prober := store.NewProber()
	st, keys := bucketWith(t, 12, 10000)
	answers(t, probeWith(context.Background(), prober, st, where, "blobs/", keys, nil), keys, 4)
	if st.Count(storetest.OpListPage) != 1 {
		t.Fatalf("first lookup: %d pages, want 1", st.Count(storetest.OpListPage))
	}
	objects, ok := prober.Remembered(where, time.Now())
	if !ok || objects < 5000 || objects > 20000 {
		t.Fatalf("remembered %v objects (%v) for a prefix of 10012", objects, ok)
	}

	st.Reset()
	answers(t, probeWith(context.Background(), prober, st, where, "blobs/", keys, nil), keys, 4)
	if st.Count(storetest.OpListPage) != 0 || st.Count(storetest.OpStat) != len(keys)+1 { // answers also asks for an absent blob
		t.Fatalf("second lookup: %d pages and %d HEADs, want none and %d", st.Count(storetest.OpListPage), st.Count(storetest.OpStat), len(keys)+1)
	}
	// Anyone else's prefix is listed as before.
	st.Reset()
	probeWith(context.Background(), prober, st, where+"-other", "blobs/", keys, nil)
	if st.Count(storetest.OpListPage) != 1 {
		t.Fatalf("another prefix: %d pages, want 1", st.Count(storetest.OpListPage))
	}
	// Forgotten after store.CrowdedTTL.
	if _, ok := prober.Remembered(where, time.Now().Add(store.CrowdedTTL+time.Second)); ok {
		t.Fatal("a crowded prefix is remembered past store.CrowdedTTL")
	}

	small, smallKeys := bucketWith(t, 12, 50)
	prober.Remember(where, 10000, time.Now())
	prober.Remember(where, 0, time.Now())
	probeWith(context.Background(), prober, small, where, "blobs/", smallKeys, nil)
	if _, ok := prober.Remembered(where, time.Now()); ok || small.Count(storetest.OpListPage) != 1 {
		t.Fatalf("a prefix listed completely: remembered %v, %d pages", ok, small.Count(storetest.OpListPage))
	}
}
