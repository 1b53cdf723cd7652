package backend_test

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/signature"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

func genKey(t *testing.T) signature.PrivateKey {
	t.Helper()
	k, err := signature.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signedBucket is an in-memory bucket where key signed two caches of
// different steps, "main" and "good".
type signedBucket struct {
	mem        *storetest.Memory
	key, other signature.PrivateKey
	main, good []cachetest.Layer
}

func newSignedBucket(t *testing.T) *signedBucket {
	t.Helper()
	b := &signedBucket{mem: storetest.NewMemory(), key: genKey(t), other: genKey(t)}
	f := cachetest.New()
	b.main, b.good = f.Layers(t, 100, 200, 300), f.Layers(t, 400, 500)
	f.Export(t, cachetest.Through(b.mem), mergeAttrs(t, "signing_key="+b.key.Text()), b.main...)
	f.Export(t, cachetest.Through(b.mem), cachetest.Attrs(t, "region=us-east-1,bucket=b,name=good,signing_key="+b.key.Text()), b.good...)
	return b
}

// get returns the manifest under name and its metadata.
func (b *signedBucket) get(t *testing.T, name string) ([]byte, map[string]string) {
	t.Helper()
	dt, meta, err := store.ReadAllMetadata(t.Context(), b.mem, mergeLayout.ManifestKey(name), manifest.DefaultMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	return dt, meta
}

func (b *signedBucket) put(t *testing.T, name string, dt []byte, meta map[string]string) {
	t.Helper()
	body := store.BytesBody(dt)
	body.Metadata = meta
	if err := b.mem.Put(t.Context(), mergeLayout.ManifestKey(name), body); err != nil {
		t.Fatal(err)
	}
}

// load imports name=names with verify_key=keys and returns the blobs of
// the results the import found and the warnings it gave.
func (b *signedBucket) load(t *testing.T, names, keys string) (map[digest.Digest]bool, []string) {
	t.Helper()
	logs := &logLines{}
	opts := backend.Options{NewStore: cachetest.Through(b.mem).NewStore, Logf: logs.logf}
	attrs := cachetest.Attrs(t, `region=us-east-1,bucket=b,"name=`+names+`","verify_key=`+keys+`"`)
	imp, _, err := backend.ResolveCacheImporterFunc(opts)(t.Context(), nil, attrs)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := imp.(*backend.Importer).Load(t.Context())
	steps := map[digest.Digest]bool{}
	if err != nil {
		return steps, append(logs.matching(""), "load error: "+err.Error())
	}
	cfg, _, err := cc.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Records {
		for _, res := range r.Results {
			steps[cfg.Layers[res.LayerIndex].Blob] = true
		}
	}
	return steps, logs.matching("")
}

func TestSignedRoundTrip(t *testing.T) {
	b := newSignedBucket(t)
	_, meta := b.get(t, "main")
	if !strings.HasPrefix(meta[signature.MetadataKey], "v1:"+b.key.Public().ID()+":") {
		t.Fatalf("manifest metadata %v, want a signature by %s", meta, b.key.Public().ID())
	}
	steps, warnings := b.load(t, "main", b.other.Public().Text()+";"+b.key.Public().Text())
	requireSteps(t, steps, b.main, true)
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	// Without verify_key a signed manifest imports as any other.
	logs := &logLines{}
	opts := backend.Options{NewStore: cachetest.Through(b.mem).NewStore, Logf: logs.logf}
	requireSteps(t, importedSteps(t, opts), b.main, true)
}

// Each forgery of a signed manifest is refused with a warning naming the
// cache and the reason, and the import goes on to the next name.
func TestSignedRefusals(t *testing.T) {
	tests := []struct {
		name   string
		forge  func(t *testing.T, b *signedBucket)
		reason string
	}{
		{"one byte changed", func(t *testing.T, b *signedBucket) {
			dt, meta := b.get(t, "main")
			i := strings.Index(string(dt), `"layers"`)
			dt[i+1] = 'L' // still JSON BuildKit reads: keys are case-insensitive
			b.put(t, "main", dt, meta)
		}, "bad signature"},
		{"a result pointed at another existing layer", func(t *testing.T, b *signedBucket) {
			dt, meta := b.get(t, "main")
			var cfg cacheimporttypes.CacheConfig
			if err := json.Unmarshal(dt, &cfg); err != nil {
				t.Fatal(err)
			}
			for i := range cfg.Records {
				for j := range cfg.Records[i].Results {
					cfg.Records[i].Results[j].LayerIndex = 0
				}
			}
			dt, _ = json.Marshal(cfg)
			b.put(t, "main", dt, meta)
		}, "bad signature"},
		{"copied from another name", func(t *testing.T, b *signedBucket) {
			dt, meta := b.get(t, "good")
			b.put(t, "main", dt, meta)
		}, "signed for another name"},
		{"signed by another key", func(t *testing.T, b *signedBucket) {
			dt, _ := b.get(t, "main")
			sig, err := signature.Sign(b.other, "main", dt)
			if err != nil {
				t.Fatal(err)
			}
			b.put(t, "main", dt, map[string]string{signature.MetadataKey: sig})
		}, "signed by a key that is not a verify key (key "},
		{"unsigned", func(t *testing.T, b *signedBucket) {
			dt, _ := b.get(t, "main")
			b.put(t, "main", dt, nil)
		}, "unsigned"},
		{"metadata removed", func(t *testing.T, b *signedBucket) {
			if err := b.mem.SetMetadata(mergeLayout.ManifestKey("main"), nil); err != nil {
				t.Fatal(err)
			}
		}, "unsigned"},
		{"metadata truncated", func(t *testing.T, b *signedBucket) {
			_, meta := b.get(t, "main")
			meta = maps.Clone(meta)
			meta[signature.MetadataKey] = meta[signature.MetadataKey][:50]
			if err := b.mem.SetMetadata(mergeLayout.ManifestKey("main"), meta); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"metadata under another key", func(t *testing.T, b *signedBucket) {
			_, meta := b.get(t, "main")
			if err := b.mem.SetMetadata(mergeLayout.ManifestKey("main"), map[string]string{"signature": meta[signature.MetadataKey]}); err != nil {
				t.Fatal(err)
			}
		}, "unsigned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSignedBucket(t)
			tt.forge(t, b)
			steps, warnings := b.load(t, "main;good", b.key.Public().Text())
			requireSteps(t, steps, b.good, true)
			for _, l := range b.main {
				if steps[l.Desc.Digest] {
					t.Errorf("a step of the forged manifest was imported")
				}
			}
			found := false
			t.Log(warnings)
			for _, w := range warnings {
				if strings.Contains(w, "manifest main") && strings.Contains(w, "not signed for this name by a verify_key") {
					found = true
					if !strings.Contains(w, tt.reason) {
						t.Errorf("warning %q does not give the reason %q", w, tt.reason)
					}
				}
			}
			if !found {
				t.Fatalf("no warning naming manifest main and why: %v", warnings)
			}
		})
	}
}

// anonymous=true cannot export.
func TestAnonymousExportRefused(t *testing.T) {
	_, err := backend.ResolveCacheExporterFunc(backend.Options{})(context.Background(), nil, mergeAttrs(t, "anonymous=true"))
	if err == nil || !strings.Contains(err.Error(), "anonymous=true is for --cache-from only") {
		t.Fatalf("export with anonymous=true: %v", err)
	}
}

// A signing export with merge=true merges only a manifest its own key
// signed: what a writer without the key put there is replaced, not signed.
func TestSignedMergeReplacesUnsigned(t *testing.T) {
	mem := storetest.NewMemory()
	key := genKey(t)
	f := cachetest.New()
	forged, own := f.Layers(t, 100), f.Layers(t, 200)
	f.Export(t, cachetest.Through(mem), mergeAttrs(t, ""), forged...) // unsigned
	logs := &logLines{}
	opts := cachetest.Through(mem)
	opts.Logf = logs.logf
	f.Export(t, opts, mergeAttrs(t, "merge=true,signing_key="+key.Text()), own...)
	steps := stepsOf(t, mem, "main")
	requireSteps(t, steps, own, true)
	requireSteps(t, steps, forged, false)
	if len(logs.matching("not signed by this export's signing_key (unsigned); replacing it")) != 1 {
		t.Fatalf("no warning that the unsigned manifest was replaced: %v", logs.matching(""))
	}
	// And a manifest it signed is merged.
	more := f.Layers(t, 300)
	f.Export(t, opts, mergeAttrs(t, "merge=true,signing_key="+key.Text()), more...)
	steps = stepsOf(t, mem, "main")
	requireSteps(t, steps, own, true)
	requireSteps(t, steps, more, true)
	b := &signedBucket{mem: mem, key: key}
	steps, warnings := b.load(t, "main", key.Public().Text())
	requireSteps(t, steps, more, true)
	if len(warnings) > 0 {
		t.Fatal(warnings)
	}
}
