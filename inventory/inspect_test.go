package inventory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/inventory"
)

// A merged manifest holds several writers' results on one record: inspect
// counts them and shows the oldest and newest createdAt, in the table and
// in JSON; a record whose results lack createdAt shows none.
func TestInspectShowsResultsAndTheirAges(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000)
	// The export puts the blobs in the bucket; the manifest is replaced.
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=main"), ls[0], ls[1])
	t1 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Hour), t1.Add(48*time.Hour)
	cfg := cacheimporttypes.CacheConfig{
		Layers: []cacheimporttypes.CacheLayer{
			{Blob: digest.Digest(ls[0].Digest()), ParentIndex: -1},
			{Blob: digest.Digest(ls[1].Digest()), ParentIndex: 0},
		},
		Records: []cacheimporttypes.CacheRecord{
			{
				Digest: digest.FromString("merged"),
				Results: []cacheimporttypes.CacheResult{
					{LayerIndex: 1, CreatedAt: t3},
					{LayerIndex: 0, CreatedAt: t1},
				},
				ChainedResults: []cacheimporttypes.ChainedResult{{LayerIndexes: []int{0, 1}, CreatedAt: t2}},
			},
			{Digest: digest.FromString("undated"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 0}}},
		},
	}
	dt, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	put(t, b.Store, b.Layout.ManifestKey("main"), dt)

	rs, err := inventory.Inspect(context.Background(), b.Store, b.Layout, []string{"main"}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]inventory.RecordInfo{}
	for _, r := range rs.Caches[0].RecordList {
		recs[r.Digest] = r
	}
	m := recs[digest.FromString("merged").String()]
	if m.Results != 3 || m.Oldest == nil || !m.Oldest.Equal(t1) || m.Newest == nil || !m.Newest.Equal(t3) {
		t.Fatalf("merged record: %+v, want 3 results from %v to %v", m, t1, t3)
	}
	if u := recs[digest.FromString("undated").String()]; u.Results != 1 || u.Oldest != nil || u.Newest != nil {
		t.Fatalf("undated record: %+v, want 1 result and no ages", u)
	}

	var buf bytes.Buffer
	if err := rs.Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	table := buf.String()
	row := digest.FromString("merged").String() + "  0       3        2026-11-01 12:00:00Z  2026-11-03 12:00:00Z"
	for _, s := range []string{"RESULTS  OLDEST", "NEWEST", row} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	buf.Reset()
	if err := rs.Write(&buf, inventory.FormatJSON); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"oldest_created": "2026-11-01T12:00:00Z"`, `"newest_created": "2026-11-03T12:00:00Z"`} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("JSON lacks %s:\n%s", s, buf.String())
		}
	}
}
