package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// What fastDecode accepts, encoding/json accepts and decodes the same;
// and it takes the manifests BuildKit and s3cache write.
func FuzzFastDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/manifests/*")
	for _, file := range files {
		if dt, err := os.ReadFile(file); err == nil {
			f.Add(dt)
		}
	}
	for _, s := range []string{
		`{}`, ` {"layers":[]} `, `{"records":[],"layers":[]}`,
		`{"layers":[{"blob":"sha256:aa","parent":-1,"annotations":{}},{"parent":0,"annotations":{"mediaType":"x","diffID":"sha256:bb","size":12,"createdAt":"2026-12-01T09:00:00.123456789+02:00"}}]}`,
		`{"records":[{"digest":"sha256:cc","inputs":[[],[{"selector":"s","link":0},{"link":-3}]],"chains":[{"layers":[],"createdAt":"0001-01-01T00:00:00Z"},{"layers":[1,2],"createdAt":"2026-01-01T00:00:00Z"}],"layers":[{"layer":0,"createdAt":"2026-01-01T00:00:00Z"}]}]}`,
		`{"layers":[{"parent":01}]}`, `{"layers":[{"parent":1.0}]}`, `{"layers":[{"parent":1e2}]}`, `{"layers":[{"parent":-0}]}`,
		`{"layers":[{"parent":9223372036854775808}]}`, `{"Layers":[]}`, `{"layers":null}`, `{"layers":[],"layers":[]}`,
		`{"layers":[{"blob":"a\u0041"}]}`, `{"layers":[{"annotations":{"createdAt":"2026-13-01T00:00:00Z"}}]}`, `{} x`, `{"records":[{"digest":"é"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, dt []byte) {
		fast, ok := fastDecode(dt)
		var slow cacheimporttypes.CacheConfig
		err := decodeJSON(dt, &slow)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fastDecode accepted what encoding/json refuses (%v): %q", err, dt)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fastDecode decoded %q\nas   %#v\nnot  %#v", dt, fast, slow)
		}
	})
}

// The manifests in testdata, written by BuildKit and by s3cache, take the
// fast path.
func TestFastDecodeTakesWrittenManifests(t *testing.T) {
	files, _ := filepath.Glob("testdata/manifests/*")
	if len(files) == 0 {
		t.Fatal("no manifests in testdata")
	}
	for _, file := range files {
		dt, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fastDecode(dt); !ok {
			t.Errorf("%s: not decoded by the fast path", file)
		}
	}
}

// What Encode writes (a merged manifest) takes the fast path back.
func TestFastDecodeTakesWhatEncodeWrites(t *testing.T) {
	created := time.Date(2026, 12, 1, 9, 0, 0, 123456789, time.FixedZone("x", 3600))
	cfg := cacheimporttypes.CacheConfig{
		Layers: []cacheimporttypes.CacheLayer{
			{Blob: digest.FromString("a"), ParentIndex: -1, Annotations: &cacheimporttypes.LayerAnnotations{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", DiffID: digest.FromString("da"), Size: 512, CreatedAt: created}},
			{Blob: digest.FromString("b"), ParentIndex: 0},
		},
		Records: []cacheimporttypes.CacheRecord{
			{Digest: digest.FromString("r0"), Results: []cacheimporttypes.CacheResult{{LayerIndex: 0, CreatedAt: created}}},
			{Digest: digest.FromString("r1"), Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 0, Selector: "sha256:sel"}}, {{LinkIndex: 0}}},
				ChainedResults: []cacheimporttypes.ChainedResult{{LayerIndexes: []int{0, 1}, CreatedAt: created}}},
		},
	}
	dt, err := Encode(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := fastDecode(dt)
	if !ok {
		t.Fatalf("fast path refused %s", dt)
	}
	var want cacheimporttypes.CacheConfig
	if err := decodeJSON(dt, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fast path decoded %#v, encoding/json %#v", got, want)
	}
}
