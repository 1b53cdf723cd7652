package e2e

import (
	"strings"
	"sync"
	"testing"
)

// Two Dockerfiles sharing a base stage, as a CI matrix builds them.
const (
	dockerfileMergeA = `FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
RUN head -c 4096 /dev/urandom > /a1
RUN head -c 4096 /dev/urandom > /a2

FROM scratch
COPY --from=build /a1 /a2 /
`
	dockerfileMergeB = `FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
RUN head -c 4096 /dev/urandom > /b1 && echo b > /b2

FROM scratch
COPY --from=build /b1 /b2 /
`
)

// merge=true: two builds of different Dockerfiles export at the same time
// to one name through our engine; upstream buildkitd then imports the
// merged manifest with every step of both cached, and the same bytes.
func TestMergeTwoBuildsUpstreamImports(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	type job struct {
		ctxDir, out string
		files       []string
		runs        int
	}
	jobs := []job{
		{ctxDir: buildContext(t, dockerfileMergeA), out: t.TempDir(), files: []string{"a1", "a2"}, runs: 3},
		{ctxDir: buildContext(t, dockerfileMergeB), out: t.TempDir(), files: []string{"b1", "b2"}, runs: 2},
	}
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		root := t.TempDir()
		wg.Go(func() {
			results[i] = s3cacheBuild(t, root, j.ctxDir, j.out, "--cache-to", b.spec("name=matrix,mode=max,merge=true"))
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil || strings.Contains(r.stderr, "WARNING") {
			t.Fatalf("export %d: %v", i, r)
		}
	}
	up := upstreamDaemon(t)
	for i, j := range jobs {
		out := t.TempDir()
		r := buildctlBuild(t, up, j.ctxDir, out, "--import-cache", b.spec("name=matrix"))
		if r.err != nil {
			t.Fatalf("upstream import %d: %v", i, r)
		}
		requireRunHits(t, r.stderr, j.runs)
		requireSameFiles(t, j.out, out, j.files...)
	}
}
