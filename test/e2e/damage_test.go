package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// damagedCache is a mode=max export of the two-stage build, ready to be
// damaged before a rebuild in a fresh engine.
type damagedCache struct {
	b        bucket
	ctxDir   string
	out      string // the first build's output
	manifest cacheimporttypes.CacheConfig
	raw      []byte
}

func newDamagedCache(t *testing.T) *damagedCache {
	t.Helper()
	requireRoot(t)
	d := &damagedCache{b: newBucket(t), ctxDir: buildContext(t, dockerfileTwoStage), out: t.TempDir()}
	if r := s3cacheBuild(t, t.TempDir(), d.ctxDir, d.out, "--cache-to", d.b.spec("name=main,mode=max")); r.err != nil {
		t.Fatalf("export: %v", r)
	}
	d.raw = d.get(t, "manifests/main")
	if err := json.Unmarshal(d.raw, &d.manifest); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *damagedCache) get(t *testing.T, key string) []byte {
	t.Helper()
	out, err := d.b.srv.Client("").GetObject(context.Background(), &s3.GetObjectInput{Bucket: &d.b.name, Key: &key})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	dt, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

func (d *damagedCache) put(t *testing.T, key string, dt []byte) {
	t.Helper()
	if _, err := d.b.srv.Client("").PutObject(context.Background(), &s3.PutObjectInput{Bucket: &d.b.name, Key: &key, Body: bytes.NewReader(dt)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (d *damagedCache) delete(t *testing.T, key string) {
	t.Helper()
	if _, err := d.b.srv.Client("").DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &d.b.name, Key: aws.String(key)}); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// finalLayer is the final stage's single layer: a root layer that is no
// other layer's parent (the base chain's root has children).
func (d *damagedCache) finalLayer(t *testing.T) cacheimporttypes.CacheLayer {
	t.Helper()
	hasChild := map[int]bool{}
	for _, l := range d.manifest.Layers {
		hasChild[l.ParentIndex] = true
	}
	var found []cacheimporttypes.CacheLayer
	for i, l := range d.manifest.Layers {
		if l.ParentIndex == -1 && !hasChild[i] {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one childless root layer (the final stage), got %d in %s", len(found), d.raw)
	}
	return found[0]
}

// rebuild builds in a fresh engine from the damaged cache; the build must
// succeed with internally consistent output.
func (d *damagedCache) rebuild(t *testing.T) (result, string) {
	t.Helper()
	out := t.TempDir()
	r := s3cacheBuild(t, t.TempDir(), d.ctxDir, out, "--cache-from", d.b.spec("name=main"))
	if r.err != nil {
		t.Fatalf("the build failed on a damaged cache, it must run without it: %v", r)
	}
	requireConsistentOutput(t, out)
	return r, out
}

// requireConsistentOutput checks the build's own checksum of its outputs:
// wrong bytes from a damaged cache would break it.
func requireConsistentOutput(t *testing.T, out string) {
	t.Helper()
	var all []byte
	for _, f := range []string{"rand1", "rand2"} {
		dt, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, dt...)
	}
	sum, err := os.ReadFile(filepath.Join(out, "sum"))
	if err != nil {
		t.Fatal(err)
	}
	h := md5.Sum(all)
	if !strings.HasPrefix(string(sum), hex.EncodeToString(h[:])) {
		t.Fatalf("output is inconsistent: sum %q, md5 of rand1+rand2 %x", sum, h)
	}
}

func requireWarning(t *testing.T, r result, parts ...string) {
	t.Helper()
	for _, line := range strings.Split(r.stderr, "\n") {
		all := strings.Contains(line, "WARNING")
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return
		}
	}
	t.Errorf("no warning line naming %q in the build output:\n%s", parts, r.stderr)
}

func TestDamageBlobDeleted(t *testing.T) {
	d := newDamagedCache(t)
	final := d.finalLayer(t)
	d.delete(t, "blobs/"+final.Blob.String())
	r, out := d.rebuild(t)
	// The final COPY runs again from the RUN steps' cached layers.
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, d.out, out, "rand1", "rand2", "sum")
	requireWarning(t, r, final.Blob.String(), "missing")
}

func TestDamageBlobOverwrittenSameSize(t *testing.T) {
	d := newDamagedCache(t)
	final := d.finalLayer(t)
	key := "blobs/" + final.Blob.String()
	orig := d.get(t, key)
	d.put(t, key, bytes.Repeat([]byte{0x5a}, len(orig)))
	r, out := d.rebuild(t)
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, d.out, out, "rand1", "rand2", "sum")
	requireWarning(t, r, final.Blob.String())
}

func TestDamageManifests(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(d *damagedCache) []byte
		warn   string
		hits   int
	}{
		{"not-json", func(*damagedCache) []byte { return []byte("<html>503 Service Unavailable</html>") }, "manifest main", 0},
		{"truncated", func(d *damagedCache) []byte { return d.raw[:len(d.raw)/2] }, "manifest main", 0},
		{"out-of-range-indexes", func(d *damagedCache) []byte {
			m := d.manifest
			m.Records = append([]cacheimporttypes.CacheRecord(nil), m.Records...)
			for i := range m.Records {
				r := &m.Records[i]
				if len(r.Results) > 0 && len(r.Inputs) == 0 {
					// The base step's record: break its result and add a dangling link.
					r.Results = []cacheimporttypes.CacheResult{{LayerIndex: 999}}
				}
			}
			m.Records = append(m.Records, cacheimporttypes.CacheRecord{Digest: m.Records[0].Digest, Inputs: [][]cacheimporttypes.CacheInput{{{LinkIndex: 12345}}}})
			dt, _ := json.Marshal(m)
			return dt
		}, "damaged manifest", -1},
		{"hundreds-of-thousands-of-layers", func(d *damagedCache) []byte {
			var b bytes.Buffer
			b.WriteString(`{"layers":[`)
			for i := 0; i < 300000; i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"blob":"sha256:%064x","parent":%d}`, i, i-1)
			}
			b.WriteString(`],"records":[]}`)
			return b.Bytes()
		}, "more than", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDamagedCache(t)
			d.put(t, "manifests/main", tc.damage(d))
			r, _ := d.rebuild(t)
			requireWarning(t, r, tc.warn)
			if tc.hits >= 0 {
				requireRunHits(t, r.stderr, tc.hits)
			}
		})
	}
}
