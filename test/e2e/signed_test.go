package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"

	"github.com/s3cache/s3cache/signature"
)

// keygen runs s3cache keygen and returns the key texts it wrote.
func keygen(t *testing.T, name string) (priv, pub string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), name)
	if r := runCmd(t, nil, s3cacheBin, "keygen", base); r.err != nil {
		t.Fatalf("keygen: %v", r)
	}
	k, err := os.ReadFile(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.ReadFile(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(k)), strings.TrimSpace(string(p))
}

// The fork workflow: a trusted build signs and writes; an untrusted one,
// with only anonymous=true and verify_key, reads the cache with every step
// cached, and refuses what a writer without the key forges into the
// bucket, building without it, with correct output and a warning.
func TestSignedForkWorkflow(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctx := context.Background()
	if err := b.srv.AllowPublicRead(ctx, b.name); err != nil {
		t.Fatal(err)
	}
	priv, pub := keygen(t, "trusted")
	_, otherPub := keygen(t, "other")
	ctxDir := buildContext(t, dockerfileTwoStage)

	trusted := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--debug", "--cache-to", b.spec("name=main,mode=max,signing_key="+priv))
	if trusted.err != nil {
		t.Fatalf("trusted export: %v", trusted)
	}
	if strings.Contains(trusted.stdout+trusted.stderr, priv[len("s3cache-ed25519-private:"):]) {
		t.Fatal("the trusted build's output shows the signing key")
	}
	head, err := b.srv.Client("").HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.name, Key: aws.String("manifests/main")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(head.Metadata[signature.MetadataKey], "v1:") {
		t.Fatalf("manifest metadata %v, want a signature", head.Metadata)
	}

	// No AWS variables (runCmd drops them) and no credential files.
	untrusted := func(verify string) (result, string) {
		out := t.TempDir()
		env := []string{"HOME=" + t.TempDir()}
		args := []string{"build", "--root", t.TempDir(), "--progress", "plain", "-o", "type=local,dest=" + out,
			"--cache-from", b.specNoCreds(`anonymous=true,name=main,"verify_key=` + verify + `"`), ctxDir}
		r := runCmd(t, env, s3cacheBin, args...)
		if r.err != nil {
			t.Fatalf("the untrusted build failed, it must run without a refused cache: %v", r)
		}
		requireConsistentOutput(t, out)
		return r, out
	}
	r, _ := untrusted(otherPub + ";" + pub)
	requireRunHits(t, r.stderr, 3)

	// A writer with the bucket's credentials but not the key.
	raw := (&damagedCache{b: b}).get(t, "manifests/main")
	forged := strings.Replace(string(raw), `"layers"`, `"Layers"`, 1)
	(&damagedCache{b: b}).put(t, "manifests/main", []byte(forged))
	r, _ = untrusted(pub)
	requireRunHits(t, r.stderr, 0)
	requireWarning(t, r, "manifest main", "unsigned")

	// The same manifest, signed by a key that is not the verify key.
	otherKey, err := signature.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signature.Sign(otherKey, "main", raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.srv.Client("").PutObject(ctx, &s3.PutObjectInput{Bucket: &b.name, Key: aws.String("manifests/main"),
		Body: strings.NewReader(string(raw)), Metadata: map[string]string{signature.MetadataKey: sig}}); err != nil {
		t.Fatal(err)
	}
	r, _ = untrusted(pub)
	requireRunHits(t, r.stderr, 0)
	requireWarning(t, r, "manifest main", "signed by a key that is not a verify key")
}

// anonymous=true against a bucket that refuses anonymous reads is a cache
// miss with a warning, never a failed build.
func TestAnonymousPrivateBucket(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.spec("name=main,mode=max")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	out := t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-from", b.specNoCreds("name=main,anonymous=true"))
	if r.err != nil {
		t.Fatalf("an anonymous import refused by the bucket failed the build: %v", r)
	}
	requireConsistentOutput(t, out)
	requireRunHits(t, r.stderr, 0)
	requireWarning(t, r, "manifest main", "AccessDenied")
}

// A signed export through our daemon (the key sealed for the build) is
// imported by upstream buildkitd, which ignores the signature, and by our
// daemon with verify_key, every step cached both times.
func TestSignedManifestInterop(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	priv, pub := keygen(t, "ci")
	ctxDir := buildContext(t, dockerfileTwoStage)
	out1, out2, out3 := t.TempDir(), t.TempDir(), t.TempDir()
	ours := ourDaemon(t)
	r := buildctlBuild(t, ours, ctxDir, out1, "--export-cache", b.spec("name=main,mode=max,signing_key="+priv))
	if r.err != nil {
		t.Fatalf("signed export through our daemon: %v", r)
	}
	if strings.Contains(r.stdout+r.stderr+ours.log.String(), priv[len("s3cache-ed25519-private:"):]) {
		t.Fatal("the signing key shows in buildctl's output or the daemon's log")
	}
	up := upstreamDaemon(t)
	r = buildctlBuild(t, up, ctxDir, out2, "--import-cache", b.spec("name=main"))
	if r.err != nil {
		t.Fatalf("upstream import of a signed manifest: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
	fresh := ourDaemon(t)
	r = buildctlBuild(t, fresh, ctxDir, out3, "--import-cache", b.spec("name=main,verify_key="+pub))
	if r.err != nil {
		t.Fatalf("verified import: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out3, "rand1", "rand2", "sum")
}

// Forgeries of a signed manifest by a writer without the key are each
// refused by an import with verify_key: the build succeeds without the
// cache, with correct output and a warning naming the cache and why.
func TestSignedForgeriesRefused(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	priv, pub := keygen(t, "ci")
	ctxDir := buildContext(t, dockerfileTwoStage)
	if r := s3cacheBuild(t, t.TempDir(), ctxDir, t.TempDir(), "--cache-to", b.spec(`"name=main;copy",mode=max,signing_key=`+priv)); r.err != nil {
		t.Fatalf("signed export: %v", r)
	}
	ctx := context.Background()
	client := b.srv.Client("")
	get := func(name string) ([]byte, map[string]string) {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.name, Key: aws.String("manifests/" + name)})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		dt, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatal(err)
		}
		return dt, out.Metadata
	}
	put := func(dt []byte, meta map[string]string) {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.name, Key: aws.String("manifests/main"),
			Body: bytes.NewReader(dt), Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	raw, meta := get("main")
	var cfg cacheimporttypes.CacheConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		forge  func()
		reason string
	}{
		{"one byte changed", func() {
			put(bytes.Replace(raw, []byte(`"layers"`), []byte(`"Layers"`), 1), meta)
		}, "bad signature"},
		{"a result pointed at another layer", func() {
			c := cfg
			c.Records = slices.Clone(cfg.Records)
			for i := range c.Records {
				if len(c.Records[i].Results) > 0 {
					c.Records[i].Results = []cacheimporttypes.CacheResult{{LayerIndex: 0, CreatedAt: c.Records[i].Results[0].CreatedAt}}
				}
			}
			dt, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			put(dt, meta)
		}, "bad signature"},
		{"copied from another name", func() {
			put(get("copy"))
		}, "signed for another name"},
		{"signature truncated", func() {
			put(raw, map[string]string{signature.MetadataKey: meta[signature.MetadataKey][:40]})
		}, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.forge()
			out := t.TempDir()
			r := s3cacheBuild(t, t.TempDir(), ctxDir, out, "--cache-from", b.spec("name=main,verify_key="+pub))
			if r.err != nil {
				t.Fatalf("the build failed on a forged cache, it must run without it: %v", r)
			}
			requireConsistentOutput(t, out)
			requireRunHits(t, r.stderr, 0)
			requireWarning(t, r, "manifest main", tc.reason)
		})
	}
}
