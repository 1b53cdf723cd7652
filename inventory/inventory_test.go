package inventory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }

// twoCaches exports main = layers 0,1,2 and dev = layers 0,1,3 (sizes
// 1000..4000), so 0 and 1 are shared.
func twoCaches(t *testing.T, b *cachetest.Bucket) []cachetest.Layer {
	t.Helper()
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000, 3000, 4000)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=main"), ls[0], ls[1], ls[2])
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=dev"), ls[0], ls[1], ls[3])
	return ls
}

func put(t *testing.T, st store.Store, key string, data []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, store.BytesBody(data)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func TestLsTotalsAndUniqueBytes(t *testing.T) {
	b := cachetest.NewBucket(t, "prefix=team/")
	twoCaches(t, b)
	put(t, b.Store, b.Layout.ManifestKey("bad"), []byte(`{"layers": [`))
	ctx := context.Background()

	r, err := inventory.Ls(ctx, b.Store, b.Layout, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]inventory.CacheSummary{}
	for _, c := range r.Caches {
		got[c.Name] = c
	}
	want := map[string][4]int64{ // layers, records, total, unique
		"main": {3, 3, 6000, 3000},
		"dev":  {3, 3, 7000, 4000},
	}
	for name, w := range want {
		c := got[name]
		if int64(c.Layers) != w[0] || int64(c.Records) != w[1] || c.TotalBytes != w[2] || c.UniqueBytes != w[3] || c.Error != "" {
			t.Errorf("%s: %+v, want layers %d records %d total %d unique %d", name, c, w[0], w[1], w[2], w[3])
		}
		if c.LastWritten.IsZero() || c.Key != "team/manifests/"+name {
			t.Errorf("%s: key %q, last written %v", name, c.Key, c.LastWritten)
		}
	}
	if c := got["bad"]; c.Error == "" || r.Broken != 1 {
		t.Errorf("broken manifest: %+v (broken=%d), want an error", c, r.Broken)
	}

	var buf bytes.Buffer
	if err := r.Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	table := buf.String()
	for _, s := range []string{"NAME", "main", "dev", "5.9 KiB", "bad: decode cache config", "1 of 3 manifests cannot be read"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	buf.Reset()
	if err := r.Write(&buf, inventory.FormatJSON); err != nil {
		t.Fatal(err)
	}
	var decoded inventory.LsReport
	if err := json.Unmarshal(buf.Bytes(), &decoded); err != nil || len(decoded.Caches) != 3 {
		t.Fatalf("JSON: %v, %d caches:\n%s", err, len(decoded.Caches), buf.String())
	}
}

func TestInspectShowsLayersRecordsAndSharing(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	ls := twoCaches(t, b)
	ctx := context.Background()

	rs, err := inventory.Inspect(ctx, b.Store, b.Layout, []string{"main"}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rs.Caches[0]
	if r.Name != "main" || len(r.LayerList) != 3 || len(r.RecordList) != 3 || r.SharedBytes != 3000 || r.UniqueBytes != 3000 {
		t.Fatalf("inspect main: %+v", r)
	}
	byDigest := map[string]int{}
	for i, l := range ls {
		byDigest[l.Digest()] = i
	}
	for _, l := range r.LayerList {
		i, ok := byDigest[l.Digest]
		if !ok || i == 3 || l.Size != ls[i].Desc.Size || l.MediaType != ls[i].Desc.MediaType || l.Created == nil {
			t.Errorf("layer %+v: want one of main's layers with its size, media type and created", l)
			continue
		}
		wantShared := []string{"dev"}
		if i == 2 {
			wantShared = []string{}
		}
		if !slices.Equal(l.SharedWith, wantShared) {
			t.Errorf("layer %d shared with %v, want %v", i, l.SharedWith, wantShared)
		}
	}
	var buf bytes.Buffer
	if err := rs.Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"cache:        main", ls[2].Digest(), "application/vnd.oci.image.layer.v1.tar+gzip", "SHARED WITH", "records: 3"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}

	_, err = inventory.Inspect(ctx, b.Store, b.Layout, []string{"nope"}, inventory.Options{})
	if !errors.Is(err, inventory.ErrNoCache) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("inspect of a missing name: %v, want ErrNoCache naming it", err)
	}
}

func TestDUCountsReferencedSharedAndUnreferenced(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	ls := twoCaches(t, b)
	ctx := context.Background()
	orphan := bytes.Repeat([]byte("o"), 500)
	put(t, b.Store, b.Layout.BlobKey(digest.FromBytes(orphan).String()), orphan)
	put(t, b.Store, b.Layout.BlobsDir()+"README", []byte("not a blob"))
	put(t, b.Store, b.Layout.ManifestKey("bad"), []byte(`nonsense`))
	if err := b.Store.Delete(ctx, []string{b.Layout.BlobKey(ls[3].Digest())}); err != nil {
		t.Fatal(err)
	}

	r, err := inventory.DU(ctx, b.Store, b.Layout, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got inventory.Count, objects int, bytes int64) {
		t.Helper()
		if got.Objects != objects || got.Bytes != bytes {
			t.Errorf("%s = %+v, want %d objects, %d bytes", what, got, objects, bytes)
		}
	}
	check("blobs", r.Blobs, 4, 6500)
	check("referenced", r.Referenced, 3, 6000)
	check("shared", r.Shared, 2, 3000)
	check("unreferenced", r.Unreferenced, 1, 500)
	check("missing", r.Missing, 1, 4000)
	check("other", r.Other, 1, 10)
	if r.Manifests.Objects != 3 || r.Broken != 1 {
		t.Errorf("manifests %+v, broken %d; want 3 and 1", r.Manifests, r.Broken)
	}
	var buf bytes.Buffer
	if err := r.Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"unreferenced", "shared", "1 referenced blobs (3.9 KiB) are missing", "1 manifests cannot be read"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}
}

func TestVerifyFindsEachKindOfDamage(t *testing.T) {
	b := cachetest.NewBucket(t, "")
	ls := twoCaches(t, b)
	ctx := context.Background()
	verify := func(vo inventory.VerifyOptions) (*inventory.VerifyReport, error) {
		t.Helper()
		return inventory.Verify(ctx, b.Store, b.Layout, vo, inventory.Options{})
	}

	for _, vo := range []inventory.VerifyOptions{{Names: []string{"main"}}, {All: true}, {All: true, Deep: true}} {
		r, err := verify(vo)
		if err != nil || len(r.Problems) != 0 {
			t.Fatalf("verify %+v of intact caches: %v, %+v", vo, err, r)
		}
		if vo.Deep && r.BytesRead != 10000 {
			t.Errorf("deep verify read %d bytes, want the 10000 of the four blobs", r.BytesRead)
		}
	}

	// Layer 0 (shared) deleted, layer 2 truncated, layer 3 same size but other bytes.
	if err := b.Store.Delete(ctx, []string{b.Layout.BlobKey(ls[0].Digest())}); err != nil {
		t.Fatal(err)
	}
	put(t, b.Store, b.Layout.BlobKey(ls[2].Digest()), ls[2].Data[:100])
	put(t, b.Store, b.Layout.BlobKey(ls[3].Digest()), bytes.Repeat([]byte("x"), len(ls[3].Data)))

	r, err := verify(inventory.VerifyOptions{Names: []string{"main", "gone"}})
	var pe *inventory.ProblemsError
	if !errors.As(err, &pe) || pe.N != 3 {
		t.Fatalf("verify main;gone: %v, want 3 problems; report %+v", err, r)
	}
	kinds := map[string]inventory.Problem{}
	for _, p := range r.Problems {
		kinds[p.Kind+" "+p.Blob] = p
	}
	if p, ok := kinds["missing-blob "+ls[0].Digest()]; !ok || !slices.Equal(p.Caches, []string{"main"}) {
		t.Errorf("no missing-blob problem for %s naming main: %+v", ls[0].Digest(), r.Problems)
	}
	if _, ok := kinds["size-mismatch "+ls[2].Digest()]; !ok {
		t.Errorf("no size-mismatch for the truncated %s: %+v", ls[2].Digest(), r.Problems)
	}
	if _, ok := kinds["missing-cache "]; !ok {
		t.Errorf("no missing-cache problem for name gone: %+v", r.Problems)
	}

	// Only a deep verify reads the bytes of layer 3.
	r, err = verify(inventory.VerifyOptions{All: true})
	if !errors.As(err, &pe) || pe.N != 2 {
		t.Fatalf("verify --all: %v, want 2 problems: %+v", err, r.Problems)
	}
	if p := r.Problems[0]; p.Blob != ls[0].Digest() && r.Problems[1].Blob != ls[0].Digest() {
		t.Errorf("the shared missing blob is not reported: %+v", r.Problems)
	}
	r, err = verify(inventory.VerifyOptions{All: true, Deep: true})
	if !errors.As(err, &pe) || pe.N != 3 {
		t.Fatalf("verify --all --deep: %v, want 3 problems: %+v", err, r.Problems)
	}
	var buf bytes.Buffer
	if err := r.Write(&buf, inventory.FormatTable); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"missing-blob", "size-mismatch", "digest-mismatch", ls[0].Digest(), ls[2].Digest(), ls[3].Digest(), "dev, main", "3 problems"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, buf.String())
		}
	}

	put(t, b.Store, b.Layout.ManifestKey("bad"), []byte(`{"layers": 7}`))
	r, err = verify(inventory.VerifyOptions{Names: []string{"bad"}})
	if !errors.As(err, &pe) || len(r.Problems) != 1 || r.Problems[0].Kind != inventory.ProblemBrokenManifest {
		t.Fatalf("verify of a broken manifest: %v, %+v", err, r)
	}
}

// TestLayoutsWithNestedPrefixes reads buckets whose manifests and blobs
// prefixes contain one another: blobs are told from manifests by their
// digest names.
func TestLayoutsWithNestedPrefixes(t *testing.T) {
	d := digest.FromString("layer").String()
	manifest := []byte(`{"layers":[{"blob":"` + d + `","annotations":{"size":5,"createdAt":"2026-01-01T00:00:00Z"}}],"records":[{"digest":"sha256:aa","layers":[{"layer":0,"createdAt":"2026-01-01T00:00:00Z"}]}]}`)
	for _, l := range []store.Layout{
		{Prefix: "p/", BlobsPrefix: "blobs/", ManifestsPrefix: ""},
		{Prefix: "p/", BlobsPrefix: "", ManifestsPrefix: "manifests/"},
		{Prefix: "p/", BlobsPrefix: "", ManifestsPrefix: ""},
	} {
		st := storetest.NewMemory()
		put(t, st, l.BlobKey(d), []byte("12345"))
		put(t, st, l.ManifestKey("main"), manifest)
		put(t, st, l.ManifestKey("team/x"), manifest)
		put(t, st, "elsewhere/obj", []byte("x"))
		inv, err := inventory.Load(context.Background(), st, l, true, inventory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range inv.Manifests {
			names = append(names, m.Name)
			if m.Broken() {
				t.Errorf("layout %+v: manifest %s broken: %v", l, m.Name, m.Err)
			}
		}
		if !slices.Equal(names, []string{"main", "team/x"}) || len(inv.Blobs) != 1 || inv.Blobs[d].Size != 5 {
			t.Errorf("layout %+v: manifests %v, blobs %v", l, names, inv.Blobs)
		}
		if got := inv.RefBy(d); !slices.Equal(got, []string{"main", "team/x"}) {
			t.Errorf("layout %+v: %s named by %v", l, d, got)
		}
	}
}
