package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// Issue 15, BuildKit's hack/s3_test scenario on our daemon alone: a
// COPY --link build, rebuilt from its own cache and exported again, then
// the changed Dockerfile from the bucket. The re-export once wrote the
// merged result as its top layer alone, and the output lost rand_first.
func TestLinkMergeSurvivesReexport(t *testing.T) {
	requireRoot(t)
	var c diffCase
	for _, dc := range loadDiffCases(t) {
		if dc.name == "s3-test-upstream" {
			c = dc
		}
	}
	if c.name == "" {
		t.Fatal("corpus case s3-test-upstream not found")
	}
	b := newBucket(t)
	d := ourDaemon(t)
	ctx1, ctx2 := buildContext(t, c.v1), buildContext(t, c.v2)
	cache := []string{"--import-cache", b.spec("name=foo"), "--export-cache", b.spec("name=foo,mode=max")}
	first := t.TempDir()
	for i, out := range []string{first, t.TempDir()} {
		if r := buildctlBuild(t, d, ctx1, out, cache...); r.err != nil {
			t.Fatalf("build %d of test1: %v", i+1, r)
		}
	}
	out := t.TempDir()
	if r := buildctlBuild(t, d, ctx2, out, "--import-cache", b.spec("name=foo")); r.err != nil {
		t.Fatalf("test2 from the cache: %v", r)
	}
	for _, f := range []string{"rand_first", "rand_second", "rand_third"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("test2's output lacks %s: %v", f, err)
		}
	}
	requireSameFiles(t, first, out, "rand_first", "rand_second")
}
