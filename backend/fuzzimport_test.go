package backend

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	v1 "github.com/moby/buildkit/cache/remotecache/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/store/storetest"
)

// FuzzImport runs the whole import path on a bucket the fuzzer writes: the
// manifest's bytes, and the objects. Each object is stored under its own
// digest, and the i-th also under the i-th layer's blob key when that has
// none, so a layer may find its blob, wrong bytes of any size, or nothing.
// The manifest is read, sanitised, checked against the bucket and parsed
// into chains; BuildKit's key storage hands out each result's descriptors,
// whose missing blobs are fetched into a content store; and every layer's
// descriptor as the manifest wrote it, unchecked, is fetched as well, so
// no size or digest in a manifest can upset the fetch itself.
//
// Properties: no panic or hang; a manifest that decodes and sanitises
// imports (damage costs steps, not the import); no blob is committed, or
// reported fetched, unless its bytes match its digest; a failed fetch
// leaves no ingest behind.
func FuzzImport(f *testing.F) {
	// One content store per fuzzing process, emptied after each input: a
	// fresh one each time costs more than the input.
	root := f.TempDir()
	cs, err := local.NewStore(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{}`), []byte{})
	f.Fuzz(func(t *testing.T, manifestJSON, objects []byte) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		t.Cleanup(func() { emptyContentStore(t, cs) })
		w := &verifyingWorker{Worker: contentWorker{cs: containerdsnapshot.NewContentStore(cs, "fuzz")}, warnf: func(context.Context, string, ...any) {}}

		mem := storetest.NewMemory()
		imp := memImporter(t, mem, nil)
		putObject(t, mem, imp.layout.ManifestKey("main"), manifestJSON)
		var config cacheimporttypes.CacheConfig
		decoded := manifest.Decode(manifestJSON, &config) == nil
		parts := bytes.Split(objects, []byte{'|'})
		if len(objects) == 0 {
			parts = nil
		}
		for i, p := range parts {
			putObject(t, mem, imp.layout.BlobKey(digest.FromBytes(p).String()), p)
			if decoded && i < len(config.Layers) {
				key := imp.layout.BlobKey(config.Layers[i].Blob.String())
				if _, err := mem.Stat(ctx, key); err != nil {
					putObject(t, mem, key, p)
				}
			}
		}
		_, _, sanitizeErr := manifest.Sanitize(config)

		cc, err := imp.Load(ctx)
		if err != nil {
			if decoded && sanitizeErr == nil {
				t.Fatalf("a manifest that decodes and sanitises does not import: %v", err)
			}
			return
		}
		keys, results, err := v1.NewCacheKeyStorage(cc, w)
		if err != nil {
			t.Fatalf("imported chains refused by BuildKit's key storage: %v", err)
		}
		var remotes []*solver.Remote
		err = keys.Walk(func(id string) error {
			return keys.WalkResults(id, func(res solver.CacheResult) error {
				rs, err := results.LoadRemotes(ctx, res, nil, nil)
				remotes = append(remotes, rs...)
				return err
			})
		})
		if err != nil {
			t.Fatalf("descriptors of the imported results: %v", err)
		}
		for _, r := range remotes {
			missing, err := w.missing(ctx, r)
			if err != nil {
				t.Fatalf("missing blobs: %v", err)
			}
			err = w.fetch(ctx, r.Provider, missing)
			requireFetched(t, cs, missing, err)
		}
		if !decoded {
			return
		}
		provider := &blobProvider{store: mem, layout: imp.layout}
		for _, l := range config.Layers {
			desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: l.Blob}
			if l.Annotations != nil {
				desc.Size = l.Annotations.Size
			}
			missing := []ocispecs.Descriptor{desc}
			if _, err := cs.Info(ctx, desc.Digest); err == nil {
				missing = nil
			}
			err := w.fetch(ctx, provider, missing)
			requireFetched(t, cs, missing, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("the import took a minute: %v", ctx.Err())
		}
	})
}

// requireFetched checks a fetch of descs that returned err: each blob it
// reports fetched is in the content store at its size; every blob there
// matches its digest; and no ingest is left.
func requireFetched(t *testing.T, cs content.Store, descs []ocispecs.Descriptor, err error) {
	t.Helper()
	ctx := context.Background()
	if err == nil {
		for _, d := range descs {
			info, err := cs.Info(ctx, d.Digest)
			if err != nil {
				t.Fatalf("blob %s fetched but not in the content store: %v", d.Digest, err)
			}
			if info.Size != d.Size {
				t.Fatalf("blob %s fetched with %d bytes, its descriptor says %d", d.Digest, info.Size, d.Size)
			}
		}
	}
	for _, info := range blobsIn(t, cs) {
		dt, err := content.ReadBlob(ctx, cs, ocispecs.Descriptor{Digest: info.Digest, Size: info.Size})
		if err != nil {
			t.Fatalf("read committed blob %s: %v", info.Digest, err)
		}
		if got := info.Digest.Algorithm().FromBytes(dt); got != info.Digest {
			t.Fatalf("blob %s committed with bytes of digest %s", info.Digest, got)
		}
	}
	requireNoIngests(t, cs)
}

// blobsIn lists the blobs committed to cs.
func blobsIn(t *testing.T, cs content.Store) []content.Info {
	var infos []content.Info
	err := cs.Walk(context.Background(), func(info content.Info) error {
		infos = append(infos, info)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // a store yet without blobs
		t.Fatalf("list the content store: %v", err)
	}
	return infos
}

// emptyContentStore deletes every blob and ingest of cs.
func emptyContentStore(t *testing.T, cs content.Store) {
	ctx := context.Background()
	for _, info := range blobsIn(t, cs) {
		if err := cs.Delete(ctx, info.Digest); err != nil {
			t.Fatal(err)
		}
	}
	st, err := cs.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if err := cs.Abort(ctx, s.Ref); err != nil {
			t.Fatal(err)
		}
	}
}
