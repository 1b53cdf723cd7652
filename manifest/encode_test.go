package manifest_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"

	"github.com/s3cache/s3cache/manifest"
)

// Encode writes what json.Marshal writes, byte for byte, or fails where it
// fails, for any config a manifest can decode to.
func FuzzEncode(f *testing.F) {
	files, _ := filepath.Glob("testdata/manifests/*")
	for _, file := range files {
		if dt, err := os.ReadFile(file); err == nil {
			f.Add(dt)
		}
	}
	for _, s := range []string{
		`{}`,
		`{"layers":[{"blob":"sha256:aa","parent":-1},{"parent":0,"annotations":{"createdAt":"2026-12-01T09:00:00.123456789+02:00"}}]}`,
		`{"records":[{"digest":"d<>&\u2028\"\\\u0001é","inputs":[null,[],[{"selector":"s\u00e9","link":0},{"link":-3}]],"chains":[{"layers":null,"createdAt":"0001-01-01T00:00:00Z"},{"layers":[1,2],"createdAt":"2026-01-01T00:00:00Z"}],"layers":[{"layer":0,"createdAt":"2026-01-01T00:00:00Z"}]}]}`,
		`{"layers":[{"annotations":{"mediaType":"x","diffID":"sha256:bb","size":-5,"createdAt":"2026-01-01T00:00:00-00:30"}}],"records":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, dt []byte) {
		var cfg cacheimporttypes.CacheConfig
		if err := manifest.Decode(dt, &cfg); err != nil {
			return
		}
		want, wantErr := json.Marshal(cfg)
		got, err := manifest.Encode(&cfg)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("Encode error %v, json.Marshal error %v", err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("Encode wrote\n%s\njson.Marshal\n%s", got, want)
		}
	})
}

// A time json.Marshal refuses (year 10000) is an error, not a manifest.
func TestEncodeRefusesWhatJSONRefuses(t *testing.T) {
	cfg := cacheimporttypes.CacheConfig{Records: []cacheimporttypes.CacheRecord{{
		Digest:  "sha256:aa",
		Results: []cacheimporttypes.CacheResult{{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}}}
	if _, err := json.Marshal(cfg); err == nil {
		t.Fatal("json.Marshal accepted year 10000")
	}
	if dt, err := manifest.Encode(&cfg); err == nil {
		t.Errorf("Encode accepted year 10000: %s", dt)
	}
}
