package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/gc"
	"github.com/s3cache/s3cache/internal/cli"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
)

// run runs the s3cache command line and returns stdout, stderr and the error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := cli.NewRootCommand(&stdout, &stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, args...)
	if err != nil {
		t.Fatalf("s3cache %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func contains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(out, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, out)
		}
	}
}

// newBucket holds main (layers 0,1), dev (0,2) and the orphan layer 3.
func newBucket(t *testing.T) (*cachetest.Bucket, []cachetest.Layer) {
	t.Helper()
	b := cachetest.NewBucket(t, "prefix=ci/")
	f := cachetest.New()
	ls := f.Layers(t, 1000, 2000, 3000, 4000)
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=main"), ls[0], ls[1])
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=dev"), ls[0], ls[2])
	f.Export(t, cachetest.ExportOptions{}, b.Attrs(t, "name=tmp"), ls[3])
	if err := b.Store.Delete(context.Background(), []string{b.Layout.ManifestKey("tmp")}); err != nil {
		t.Fatal(err)
	}
	return b, ls
}

func TestBucketCommands(t *testing.T) {
	b, ls := newBucket(t)

	out := mustRun(t, "ls", b.Spec)
	contains(t, "ls", out, "NAME", "LAST WRITTEN", "main", "dev", "2.9 KiB")
	var lsJSON inventory.LsReport
	if err := json.Unmarshal([]byte(mustRun(t, "ls", b.Spec, "--format", "json")), &lsJSON); err != nil || len(lsJSON.Caches) != 2 {
		t.Fatalf("ls --format json: %v, %+v", err, lsJSON)
	}

	out = mustRun(t, "inspect", b.With("name=main"))
	contains(t, "inspect", out, "cache:        main", ls[0].Digest(), ls[1].Digest(), "dev", "records: 2")

	out = mustRun(t, "du", b.Spec)
	contains(t, "du", out, "blobs", "unreferenced", "3.9 KiB")

	out = mustRun(t, "verify", b.With("name=main;dev"), "--deep")
	contains(t, "verify", out, "ok: 2 caches, 3 blobs")

	out = mustRun(t, "prune", b.Spec)
	contains(t, "prune", out, "grace 1h)", "unnamed, within the grace:  1 (3.9 KiB)", "deleted 0 blobs")

	before := mustRun(t, "du", b.Spec, "--format", "json")
	out = mustRun(t, "prune", b.Spec, "--grace", "0s", "--dry-run")
	contains(t, "prune --dry-run", out, ls[3].Digest(), "dry run: nothing deleted")
	if after := mustRun(t, "du", b.Spec, "--format", "json"); after != before {
		t.Fatalf("dry run changed the bucket:\n%s\n%s", before, after)
	}

	out = mustRun(t, "prune", b.Spec, "--grace", "0s", "--format", "json")
	var rep gc.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Result == nil || rep.Result.Deleted.Objects != 1 || rep.Result.Deleted.Bytes != 4000 {
		t.Fatalf("prune --format json: %v\n%s", err, out)
	}
	mustRun(t, "verify", b.Spec, "--all", "--deep")

	// A deleted blob: verify exits non-zero with a report naming it.
	if err := b.Store.Delete(context.Background(), []string{b.Layout.BlobKey(ls[0].Digest())}); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "verify", b.Spec, "--all")
	var pe *inventory.ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("verify with a blob deleted: err %v, want *inventory.ProblemsError", err)
	}
	contains(t, "verify report", out, "missing-blob", ls[0].Digest(), "dev, main")

	// keep-duration and keep-storage through the flags.
	out = mustRun(t, "prune", b.Spec, "--keep-storage", "0", "--keep-duration", "30d", "--dry-run")
	contains(t, "prune --keep-storage 0", out, "2 to drop", "keep-storage 0 B (0 bytes)", "over keep-storage")
}

func TestBucketCommandUsageErrors(t *testing.T) {
	b, _ := newBucket(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ls"}, "accepts 1 arg"},
		{[]string{"ls", b.Spec, "--format", "yaml"}, "want table or json"},
		{[]string{"prune", b.Spec, "--grace", "soon"}, "--grace"},
		{[]string{"prune", b.Spec, "--keep-storage", "lots"}, "--keep-storage"},
		{[]string{"prune", b.Spec, "--keep-duration", "0s"}, "--keep-duration"},
		{[]string{"ls", "type=registry,ref=x"}, "type must be s3"},
		{[]string{"inspect", b.With("name=nope")}, "no such cache"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("s3cache %v: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestNoSecretInAnyOutput runs every command, succeeding and failing,
// with specs carrying secrets, and looks for them in everything printed.
func TestNoSecretInAnyOutput(t *testing.T) {
	b, _ := newBucket(t)
	if err := b.Store.Put(context.Background(), b.Layout.ManifestKey("bad"), store.BytesBody([]byte("{"))); err != nil {
		t.Fatal(err)
	}
	const plantedSecret, plantedToken = "PLANTEDsecretKEY0123456789", "PLANTEDsessionTOKEN0123456789"
	srv := miniotest.Shared(t)
	// The working spec carries the real secret; the others planted ones
	// the server rejects, so every request fails.
	specs := map[string]string{
		"working":  b.Spec,
		"planted":  strings.Replace(b.Spec, miniotest.SecretKey, plantedSecret, 1) + ",session_token=" + plantedToken,
		"no-key":   "type=s3,region=r,bucket=" + b.Name + ",endpoint_url=" + srv.Endpoint + ",secret_access_key=" + plantedSecret + ",session_token=" + plantedToken,
		"typo":     b.Spec + ",secret_acess_key=" + plantedSecret,
		"bad-attr": b.Spec + ",upload_parallelism=0,session_token=" + plantedToken,
	}
	commands := [][]string{
		{"ls"}, {"ls", "--format", "json"},
		{"inspect"}, {"inspect", "--format", "json"},
		{"du"}, {"du", "--format", "json"},
		{"verify"}, {"verify", "--all", "--deep"}, {"verify", "--all", "--format", "json"},
		{"prune", "--dry-run"}, {"prune", "--grace", "0s"}, {"prune", "--force", "--format", "json"},
	}
	for label, spec := range specs {
		for _, cmd := range commands {
			for _, name := range []string{"", ",name=main", ",name=nope"} {
				args := append([]string{cmd[0], spec + name}, cmd[1:]...)
				stdout, stderr, err := run(t, args...)
				all := stdout + stderr
				if err != nil {
					all += err.Error()
				}
				for _, secret := range []string{miniotest.SecretKey, plantedSecret, plantedToken} {
					if strings.Contains(all, secret) {
						t.Errorf("%s spec, s3cache %s%s: output shows a secret:\n%s", label, strings.Join(cmd, " "), name, all)
					}
				}
				if (label == "planted" || label == "no-key" || label == "bad-attr") && err == nil {
					t.Errorf("%s spec, s3cache %s%s: succeeded", label, strings.Join(cmd, " "), name)
				}
			}
		}
	}
}
