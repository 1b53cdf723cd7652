package e2e

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// requireRefused fails unless the build failed with a line naming the
// attribute and the reason.
func requireRefused(t *testing.T, r result, attr, reason string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("build accepted, want it refused naming %s:\n%v", attr, r)
	}
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Contains(line, "s3 cache: "+attr) && strings.Contains(line, reason) {
			return
		}
	}
	t.Fatalf("no line naming %s and %q:\n%v", attr, reason, r)
}

// A daemon with a policy refuses the specs outside it before anything
// runs, one line naming the attribute, and keeps serving those inside it.
func TestDaemonPolicyRefusesWhatItDoesNotAllow(t *testing.T) {
	requireRoot(t)
	b, other := newBucket(t), newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	// The daemon has credentials of its own, which it must not lend.
	d := startDaemon(t, []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey},
		s3cacheBin, "daemon", "--s3-allow-endpoint", b.srv.Endpoint, "--s3-allow-bucket", b.name, "--s3-require-credentials")

	out1 := t.TempDir()
	if r := buildctlBuild(t, d, ctxDir, out1, "--export-cache", b.spec("name=ok,mode=max")); r.err != nil {
		t.Fatalf("export inside the policy: %v", r)
	}
	localhost := strings.Replace(b.srv.Endpoint, "127.0.0.1", "localhost", 1)
	for _, tc := range []struct {
		name, spec, attr, reason string
	}{
		{"other bucket", other.spec("name=x"), "bucket", "is not allowed by this daemon"},
		{"other endpoint", strings.Replace(b.spec("name=x"), b.srv.Endpoint, localhost, 1), "endpoint_url", "is not allowed by this daemon"},
		{"daemon's credentials", b.specNoCreds("name=x"), "access_key_id", "required by this daemon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, flag := range []string{"--export-cache", "--import-cache"} {
				r := buildctlBuild(t, d, ctxDir, t.TempDir(), flag, tc.spec)
				requireRefused(t, r, tc.attr, tc.reason)
				// Refused before anything ran: no step even started.
				if strings.Contains(r.stderr, "RUN ") {
					t.Errorf("%s %s: steps ran before the refusal:\n%s", flag, tc.spec, r.stderr)
				}
			}
		})
	}
	if keys := other.keys(t, ""); len(keys) != 0 {
		t.Errorf("the other bucket was written to: %v", keys)
	}
	// Still serving, and the import inside the policy hits.
	out2 := t.TempDir()
	r := buildctlBuild(t, d, ctxDir, out2, "--import-cache", b.spec("name=ok"))
	if r.err != nil {
		t.Fatalf("import inside the policy after the refusals: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
}

var sealedRef = regexp.MustCompile(`s3cache-sealed:[0-9a-f]+`)

// Client B copies the sealed reference of A's running build from the
// build history, which every client may read, into its own spec: the
// daemon refuses it, and A's build goes on to the right output.
func TestSealedReferenceOfAnotherBuildRefused(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	slow := buildContext(t, `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN sleep 15 && head -c 64 /dev/urandom > /rand1
`)
	d := ourDaemon(t)

	aDone := make(chan result, 1)
	aOut := t.TempDir()
	go func() {
		aDone <- buildctlBuild(t, d, slow, aOut, "--export-cache", b.spec("name=a,mode=max"), "--import-cache", b.spec("name=a"))
	}()
	ref := stealSealedReference(t, d)

	r := buildctlBuild(t, d, buildContext(t, dockerfileTwoStage), t.TempDir(), "--export-cache",
		"type=s3,region="+miniotest.Region+",bucket="+b.name+",endpoint_url="+b.srv.Endpoint+
			",use_path_style=true,name=b,access_key_id="+miniotest.AccessKey+",secret_access_key="+ref)
	requireRefused(t, r, "secret_access_key", "sealed reference")
	if strings.Contains(r.stderr, ref) {
		t.Errorf("the refusal echoes the reference")
	}

	select {
	case ra := <-aDone:
		if ra.err != nil {
			t.Fatalf("build A: %v", ra)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("build A did not finish")
	}
	for _, k := range b.keys(t, "manifests/") {
		if k != "manifests/a" {
			t.Errorf("manifest %s written; only A's may be", k)
		}
	}
	// The daemon still serves: A's cache imports whole.
	r = buildctlBuild(t, d, slow, t.TempDir(), "--import-cache", b.spec("name=a"))
	if r.err != nil {
		t.Fatalf("import after the refusal: %v", r)
	}
	requireRunHits(t, r.stderr, 2)
}

// stealSealedReference reads the build history as any client can, until a
// running build's cache import shows a sealed reference.
func stealSealedReference(t *testing.T, d *daemon) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := client.New(ctx, d.addr)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		stream, err := c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{ActiveOnly: true, EarlyExit: true})
		for err == nil {
			var ev *controlapi.BuildHistoryEvent
			if ev, err = stream.Recv(); err != nil || ev.Record == nil {
				break
			}
			if m := sealedRef.FindString(ev.Record.FrontendAttrs["cache-imports"]); m != "" {
				c.Close()
				cancel()
				// The history holds the reference, never the secret.
				dt, _ := json.Marshal(ev.Record.FrontendAttrs)
				if strings.Contains(string(dt), miniotest.SecretKey) {
					t.Fatal("the build history holds the secret")
				}
				return m
			}
		}
		c.Close()
		cancel()
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("no running build with a sealed reference in the history")
	return ""
}

// An upstream buildkitd accepts name=sub/ (ours refuses it): prune must
// see that cache and keep its blobs, and upstream's import still hits.
func TestPruneKeepsACacheNamedWithATrailingSlash(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	out1, out2 := t.TempDir(), t.TempDir()
	up := upstreamDaemon(t)
	if r := buildctlBuild(t, up, ctxDir, out1, "--export-cache", b.spec("name=sub/,mode=max")); r.err != nil {
		t.Fatalf("upstream export: %v", r)
	}
	blobs := b.keys(t, "blobs/")
	spec := b.spec("")
	r := runCmd(t, nil, s3cacheBin, "prune", spec, "--grace", "0s")
	if r.err != nil || !strings.Contains(r.stdout, "deleted 0 blobs") {
		t.Fatalf("prune: %v; want nothing deleted", r)
	}
	if after := b.keys(t, "blobs/"); strings.Join(after, ",") != strings.Join(blobs, ",") {
		t.Fatalf("prune deleted blobs of cache sub/: before %v, after %v", blobs, after)
	}
	if r := runCmd(t, nil, s3cacheBin, "ls", spec); r.err != nil || !strings.Contains(r.stdout, "sub/") {
		t.Fatalf("ls: %v; want cache sub/ listed", r)
	}
	r = buildctlBuild(t, upstreamDaemon(t), ctxDir, out2, "--import-cache", b.spec("name=sub/"))
	if r.err != nil {
		t.Fatalf("upstream import after prune: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")

	// Ours refuses the name, naming the attribute, before anything runs.
	requireRefused(t, buildctlBuild(t, ourDaemon(t), ctxDir, t.TempDir(), "--export-cache", b.spec("name=sub/")), "name", `must not end in "/"`)
}

// An embedded build with credentials only in its environment: the engine
// resolves them through the SDK's chain (which renews temporary ones)
// rather than the client freezing them into the spec; export and import
// work, and the secret shows nowhere.
func TestEmbeddedBuildUsesItsOwnCredentialChain(t *testing.T) {
	requireRoot(t)
	b := newBucket(t)
	ctxDir := buildContext(t, dockerfileTwoStage)
	env := []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey}
	s3 := b.specNoCreds("name=env")
	out1, out2 := t.TempDir(), t.TempDir()
	r := runCmd(t, env, s3cacheBin, "build", "--root", t.TempDir(), "--progress", "plain", "-o", "type=local,dest="+out1, "--cache-to", s3+",mode=max", ctxDir)
	if r.err != nil {
		t.Fatalf("embedded export with credentials in the environment: %v", r)
	}
	r = runCmd(t, env, s3cacheBin, "build", "--root", t.TempDir(), "--progress", "plain", "-o", "type=local,dest="+out2, "--cache-from", s3, ctxDir)
	if r.err != nil {
		t.Fatalf("embedded import: %v", r)
	}
	requireRunHits(t, r.stderr, 3)
	requireSameFiles(t, out1, out2, "rand1", "rand2", "sum")
	requireNoSecret(t, "s3cache build", r.stdout+r.stderr)
}
