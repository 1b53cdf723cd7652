package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// hostileSizes are layer sizes a manifest may claim for a blob of n bytes
// that are not its size.
func hostileSizes(n int64) []struct {
	name string
	size int64
} {
	return []struct {
		name string
		size int64
	}{
		{"negative", -5},
		{"most negative", math.MinInt64},
		{"zero", 0},
		{"one short", n - 1},
		{"one over", n + 1},
		{"a chunk over", n + fetchChunk},
		{"huge", 1 << 62},
		{"largest", math.MaxInt64},
	}
}

// memImporter is an importer of the cache named "main" in a bucket in memory.
func memImporter(t *testing.T, mem *storetest.Memory, logf func(string, ...any)) *Importer {
	t.Helper()
	opts := Options{
		NewStore: func(context.Context, spec.Config) (store.Store, error) { return mem, nil },
		Logf:     logf,
	}
	imp, _, err := ResolveCacheImporterFunc(opts)(t.Context(), nil, map[string]string{"region": "r", "bucket": "b", "name": "main"})
	if err != nil {
		t.Fatal(err)
	}
	return imp.(*Importer)
}

func putObject(t *testing.T, mem *storetest.Memory, key string, data []byte) {
	t.Helper()
	if err := mem.Put(t.Context(), key, store.BytesBody(data)); err != nil {
		t.Fatal(err)
	}
}

// oneLayerManifest is a cache of one step whose result is one layer.
func oneLayerManifest(blob digest.Digest, size int64) []byte {
	cfg := cacheimporttypes.CacheConfig{
		Layers: []cacheimporttypes.CacheLayer{{
			Blob:        blob,
			ParentIndex: -1,
			Annotations: &cacheimporttypes.LayerAnnotations{
				MediaType: ocispecs.MediaTypeImageLayerGzip,
				DiffID:    digest.FromString("diff"),
				Size:      size,
				CreatedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
			},
		}},
		Records: []cacheimporttypes.CacheRecord{{
			Digest:  digest.FromString("step"),
			Results: []cacheimporttypes.CacheResult{{LayerIndex: 0}},
		}},
	}
	dt, _ := json.Marshal(cfg)
	return dt
}

// importedBlobs are the blobs of every result the chains hold.
func importedBlobs(t *testing.T, cc *v1.CacheChains) []ocispecs.Descriptor {
	t.Helper()
	cfg, provider, err := cc.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var descs []ocispecs.Descriptor
	for _, l := range cfg.Layers {
		descs = append(descs, provider[l.Blob].Descriptor)
	}
	return descs
}

// A layer whose manifest size is not its blob's size (negative, zero,
// off by one, absurd) is a damaged layer: dropped with a warning, a cache
// miss, before any fetch could be asked to read that many bytes.
func TestImportDropsLayersOfWrongSize(t *testing.T) {
	data := bytes.Repeat([]byte("layer "), 1000)
	blob := digest.FromBytes(data)
	cases := append(hostileSizes(int64(len(data))), struct {
		name string
		size int64
	}{"exact", int64(len(data))})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := storetest.NewMemory()
			var mu sync.Mutex
			var logs []string
			imp := memImporter(t, mem, func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				logs = append(logs, fmt.Sprintf(format, args...))
			})
			putObject(t, mem, imp.layout.BlobKey(blob.String()), data)
			putObject(t, mem, imp.layout.ManifestKey("main"), oneLayerManifest(blob, tc.size))
			cc, err := imp.Load(t.Context())
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			got := importedBlobs(t, cc)
			if tc.size == int64(len(data)) {
				if len(got) != 1 || got[0].Size != tc.size {
					t.Fatalf("imported %v, want the layer of the right size", got)
				}
				return
			}
			if len(got) != 0 {
				t.Fatalf("a layer of size %d for a blob of %d bytes was imported: %v", tc.size, len(data), got)
			}
			warned := false
			for _, l := range logs {
				warned = warned || strings.Contains(l, blob.String()) && strings.Contains(l, fmt.Sprint(tc.size))
			}
			if !warned {
				t.Errorf("no warning naming the blob and size %d: %q", tc.size, logs)
			}
		})
	}
}

// Whatever size a descriptor claims, a fetch from the bucket fails with an
// error (never a panic, a hang or an allocation of that size), commits
// nothing and leaves no partial ingest behind.
func TestFetchSurvivesImpossibleSizes(t *testing.T) {
	data := bytes.Repeat([]byte("blob "), 3000)
	dgst := digest.FromBytes(data)
	mem := storetest.NewMemory()
	layout := store.Layout{BlobsPrefix: "blobs/"}
	putObject(t, mem, layout.BlobKey(dgst.String()), data)
	provider := &blobProvider{store: mem, layout: layout}
	for _, tc := range hostileSizes(int64(len(data))) {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cs, w := newFetchWorker(t)
			desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: dgst, Size: tc.size}
			err := w.fetch(ctx, provider, []ocispecs.Descriptor{desc})
			if err == nil {
				t.Fatalf("a fetch of %d bytes as %d succeeded", len(data), tc.size)
			}
			if ctx.Err() != nil {
				t.Fatalf("the fetch took until the deadline: %v", err)
			}
			if !strings.Contains(err.Error(), dgst.String()) {
				t.Errorf("error %q does not name the blob", err)
			}
			if _, err := cs.Info(ctx, dgst); err == nil {
				t.Errorf("the blob was committed")
			}
			requireNoIngests(t, cs)
		})
	}
}

// A fetch that fails, by a read or by the digest, aborts its ingest: the
// partial blob does not stay on the engine's disk.
func TestFailedFetchAbortsIngest(t *testing.T) {
	data := bytes.Repeat([]byte("s3cache "), 1<<17) // 1 MiB
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
	for _, tc := range []struct {
		name     string
		provider content.Provider
	}{
		{"connection reset", func() content.Provider {
			p := &flakyProvider{data: data, cut: 300000}
			p.failing.Store(true)
			return p
		}()},
		{"wrong bytes", &memProvider{blobs: map[digest.Digest][]byte{desc.Digest: bytes.Repeat([]byte("S3CACHE "), 1<<17)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, w := newFetchWorker(t)
			if err := w.fetch(t.Context(), tc.provider, []ocispecs.Descriptor{desc}); err == nil {
				t.Fatal("the fetch succeeded")
			}
			requireNoIngests(t, cs)
		})
	}
}

func requireNoIngests(t *testing.T, cs content.Store) {
	t.Helper()
	st, err := cs.ListStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		t.Errorf("ingest %s left with %d of %d bytes", s.Ref, s.Offset, s.Total)
	}
}

// A descriptor without a digest the content store can check is refused:
// the store commits bytes under no digest unchecked.
func TestFetchRefusesUncheckableDigests(t *testing.T) {
	data := []byte("abc")
	for _, dgst := range []digest.Digest{"", "md5:900150983cd24fb0d6963f7d28e17f72", "sha256:zz", "sha256:" + digest.Digest(strings.Repeat("0", 63))} {
		t.Run(fmt.Sprintf("%q", dgst), func(t *testing.T) {
			mem := storetest.NewMemory()
			layout := store.Layout{BlobsPrefix: "blobs/"}
			putObject(t, mem, layout.BlobKey(dgst.String()), data)
			cs, w := newFetchWorker(t)
			desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: dgst, Size: int64(len(data))}
			if err := w.fetch(t.Context(), &blobProvider{store: mem, layout: layout}, []ocispecs.Descriptor{desc}); err == nil {
				t.Fatalf("a fetch of blob %q succeeded", dgst)
			}
			if infos := blobsIn(t, cs); len(infos) > 0 {
				t.Errorf("committed %v", infos)
			}
			requireNoIngests(t, cs)
		})
	}
}
