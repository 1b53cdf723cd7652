package store

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/spec"
)

func TestFullBodyShort(t *testing.T) {
	b := &fullBody{rc: io.NopCloser(strings.NewReader("abc")), left: 5, key: "k"}
	got, err := io.ReadAll(b)
	if string(got) != "abc" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %q, %v; want abc and io.ErrUnexpectedEOF", got, err)
	}
	b = &fullBody{rc: io.NopCloser(strings.NewReader("abc")), left: 3, key: "k"}
	if got, err := io.ReadAll(b); string(got) != "abc" || err != nil {
		t.Fatalf("full body: %q, %v", got, err)
	}
}

func TestCopySource(t *testing.T) {
	for key, want := range map[string]string{
		"blobs/sha256:ab": "bkt/blobs/sha256:ab",
		"a b/c+d/e?f#g%":  "bkt/a%20b/c%2Bd/e%3Ff%23g%25",
		"ü":               "bkt/%C3%BC",
	} {
		if got := copySource("bkt", key); got != want {
			t.Errorf("copySource(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.PartSize != 32*mib || o.MultipartThreshold != 32*mib || o.PartConcurrency != 4 ||
		o.CopyThreshold != 5*gib || o.CopyPartSize != 512*mib || o.DeleteBatch != 1000 || o.Now == nil {
		t.Fatalf("defaults: %+v", o)
	}
	o = Options{PartSize: 1, CopyPartSize: 1, DeleteBatch: 5000}.withDefaults()
	if o.PartSize != minPartSize || o.CopyPartSize != minPartSize || o.DeleteBatch != 1000 {
		t.Fatalf("clamped: %+v", o)
	}
}

// Stores share one HTTP client (and its connection pool) per pool size.
func TestHTTPClientShared(t *testing.T) {
	cfg := spec.Config{UploadParallelism: 4}
	a := httpClient(cfg, Options{}.withDefaults())
	b := httpClient(cfg, Options{}.withDefaults())
	if a != b {
		t.Fatal("two stores of the same parallelism got different HTTP clients")
	}
	if c := httpClient(spec.Config{UploadParallelism: 16}, Options{}.withDefaults()); c == a {
		t.Fatal("a store of higher parallelism got the smaller pool")
	}
}
