package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The differential harness: every case of testdata/differential runs the
// same sequence of builds on `s3cache daemon` and on upstream buildkitd,
// each with a bucket of its own on one MinIO, and upstream is the oracle.
// Outputs are compared, not manifests: upstream's own exports of one
// Dockerfile differ from run to run in how they split layer chains.
//
// The sequence, on each daemon:
//
//	cold     v1, import and export (the bucket is empty)
//	rebuild  v1 again: imports its own cache and exports again
//	         (then a local prune of everything)
//	changed  v2 (the changed Dockerfile), import only
//	fresh    v2 on a new engine, import only
//	interop  v2 on a new engine of the other kind, from this bucket
//
// Checks, against upstream's output of the same step: the same paths with
// the same types, modes and link targets; the same bytes for every file
// without "rand" in its name; and every random file upstream took from
// the cache (its bytes as in the bucket's cold build), ours took too.
// Ours may reuse more than upstream, never less.

const changedMarker = "# --- changed ---"

// diffCase is one file of the corpus.
type diffCase struct {
	name   string
	v1, v2 string // Dockerfiles
	mode   string
	target string
}

func loadDiffCases(t *testing.T) []diffCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "differential", "*.Dockerfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no differential corpus in testdata/differential: %v", err)
	}
	var cases []diffCase
	for _, f := range files {
		dt, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := diffCase{name: strings.TrimSuffix(filepath.Base(f), ".Dockerfile"), mode: "max"}
		v1, v2, ok := strings.Cut(string(dt), changedMarker+"\n")
		if !ok {
			t.Fatalf("%s: no %q line before the changed Dockerfile", f, changedMarker)
		}
		// Settings are the leading "# key=value" lines; they are left out
		// of the Dockerfile, where they would read as parser directives.
		var body []string
		lines := strings.Split(v1, "\n")
		for i, l := range lines {
			k, v, isSetting := strings.Cut(strings.TrimPrefix(l, "# "), "=")
			if !strings.HasPrefix(l, "# ") || !isSetting || strings.Contains(k, " ") {
				body = lines[i:]
				break
			}
			switch k {
			case "mode":
				c.mode = v
			case "target":
				c.target = v
			default:
				t.Fatalf("%s: unknown setting %q", f, k)
			}
		}
		c.v1, c.v2 = strings.Join(body, "\n"), v2
		cases = append(cases, c)
	}
	return cases
}

// entry is one path of an output directory.
type entry struct {
	kind string // "file", "dir", "symlink"
	mode fs.FileMode
	data string // a file's sha256, a link's target
}

func (e entry) String() string { return fmt.Sprintf("%s %v %s", e.kind, e.mode, e.data) }

// tree is an output directory: path -> entry.
type tree map[string]entry

func readTree(t *testing.T, dir string) tree {
	t.Helper()
	out := tree{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{mode: info.Mode().Perm()}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.kind = "symlink"
			if e.data, err = os.Readlink(p); err != nil {
				return err
			}
		case d.IsDir():
			e.kind = "dir"
		default:
			e.kind = "file"
			dt, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(dt)
			e.data = hex.EncodeToString(sum[:])
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("read output %s: %v", dir, err)
	}
	return out
}

func isRandom(path string) bool { return strings.Contains(filepath.Base(path), "rand") }

// compareToOracle checks candidate against upstream's output of the same
// step. Each comes with the cold build whose bucket it imported (base),
// against which "taken from the cache" is told.
func compareToOracle(oracle, oracleBase, cand, candBase tree) []string {
	var problems []string
	var paths []string
	for p := range oracle {
		paths = append(paths, p)
	}
	for p := range cand {
		if _, ok := oracle[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		o, inO := oracle[p]
		c, inC := cand[p]
		switch {
		case !inC:
			problems = append(problems, fmt.Sprintf("%s: missing (upstream has %v)", p, o))
		case !inO:
			problems = append(problems, fmt.Sprintf("%s: not in upstream's output (ours has %v)", p, c))
		case o.kind != c.kind || o.mode != c.mode:
			problems = append(problems, fmt.Sprintf("%s: %s %v, upstream's %s %v", p, c.kind, c.mode, o.kind, o.mode))
		case !isRandom(p) && o.data != c.data:
			problems = append(problems, fmt.Sprintf("%s: content differs from upstream's", p))
		case isRandom(p) && o.kind == "file":
			ob, obOK := oracleBase[p]
			cb, cbOK := candBase[p]
			if obOK && o.data == ob.data && (!cbOK || c.data != cb.data) {
				problems = append(problems, fmt.Sprintf("%s: upstream took it from the cache, ours built it again", p))
			}
		}
	}
	return problems
}

// diffRun is one daemon kind's side of a case: its bucket and outputs.
type diffRun struct {
	kind    string // "ours" or "upstream"
	bucket  bucket
	start   func(t *testing.T) *daemon
	outputs map[string]tree // step -> output
}

func TestDifferentialAgainstUpstream(t *testing.T) {
	requireRoot(t)
	tool(t, "buildkitd")
	for _, c := range loadDiffCases(t) {
		t.Run(c.name, func(t *testing.T) {
			runDiffCase(t, c)
		})
	}
}

func runDiffCase(t *testing.T, c diffCase) {
	ctx1, ctx2 := buildContext(t, c.v1), buildContext(t, c.v2)
	runs := []*diffRun{
		{kind: "upstream", bucket: newBucket(t), start: upstreamDaemon},
		{kind: "ours", bucket: newBucket(t), start: func(t *testing.T) *daemon { return ourDaemon(t) }},
	}
	build := func(t *testing.T, r *diffRun, d *daemon, step, ctxDir string, from bucket, export bool) {
		t.Helper()
		args := []string{"--import-cache", from.spec("name=diff")}
		if export {
			args = append(args, "--export-cache", r.bucket.spec("name=diff,mode="+c.mode))
		}
		if c.target != "" {
			args = append(args, "--opt", "target="+c.target)
		}
		out := t.TempDir()
		res := buildctlBuild(t, d, ctxDir, out, args...)
		if res.err != nil {
			t.Fatalf("%s, %s: build failed: %v", r.kind, step, res)
		}
		r.outputs[step] = readTree(t, out)
	}
	for _, r := range runs {
		r.outputs = map[string]tree{}
		d := r.start(t)
		build(t, r, d, "cold", ctx1, r.bucket, true)
		build(t, r, d, "rebuild", ctx1, r.bucket, true)
		if res := runCmd(t, nil, tool(t, "buildctl"), "--addr", d.addr, "prune", "--all"); res.err != nil {
			t.Fatalf("%s: local prune: %v", r.kind, res)
		}
		build(t, r, d, "changed", ctx2, r.bucket, false)
		build(t, r, r.start(t), "fresh", ctx2, r.bucket, false)
	}
	up, ours := runs[0], runs[1]
	// Interop: each kind imports the other's bucket into a new engine.
	build(t, up, up.start(t), "from-ours", ctx2, ours.bucket, false)
	build(t, ours, ours.start(t), "from-upstream", ctx2, up.bucket, false)

	var problems []string
	check := func(label string, oracle, oracleBase, cand, candBase tree) {
		for _, p := range compareToOracle(oracle, oracleBase, cand, candBase) {
			problems = append(problems, label+": "+p)
		}
	}
	upCold, oursCold := up.outputs["cold"], ours.outputs["cold"]
	for _, step := range []string{"cold", "rebuild", "changed", "fresh"} {
		check(step, up.outputs[step], upCold, ours.outputs[step], oursCold)
	}
	// Upstream importing our bucket must take from it what it takes from its own.
	check("upstream imports ours", up.outputs["fresh"], upCold, up.outputs["from-ours"], oursCold)
	// Ours importing upstream's bucket, against upstream doing the same.
	check("ours imports upstream's", up.outputs["fresh"], upCold, ours.outputs["from-upstream"], upCold)
	if len(problems) > 0 {
		t.Fatalf("%d differences from upstream:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// The differential check itself: a candidate that lost a file, built again
// what upstream took from the cache, or changed a deterministic file is
// reported; one that reused more than upstream is not.
func TestCompareToOracle(t *testing.T) {
	file := func(s string) entry { return entry{kind: "file", mode: 0o644, data: s} }
	base := tree{"rand1": file("r1"), "rand2": file("r2"), "fixed": file("f")}
	for _, tc := range []struct {
		name   string
		oracle tree
		cand   tree
		want   int
	}{
		{"same", tree{"rand1": file("r1"), "fixed": file("f")}, tree{"rand1": file("r1"), "fixed": file("f")}, 0},
		{"lost a file", tree{"rand1": file("r1"), "rand2": file("r2")}, tree{"rand2": file("r2")}, 1},
		{"extra file", tree{"rand1": file("r1")}, tree{"rand1": file("r1"), "x": file("x")}, 1},
		{"rebuilt what upstream reused", tree{"rand1": file("r1")}, tree{"rand1": file("new")}, 1},
		{"reused what upstream rebuilt", tree{"rand1": file("new")}, tree{"rand1": file("r1")}, 0},
		{"both rebuilt", tree{"rand1": file("new")}, tree{"rand1": file("other")}, 0},
		{"deterministic file differs", tree{"fixed": file("f")}, tree{"fixed": file("g")}, 1},
		{"mode differs", tree{"fixed": file("f")}, tree{"fixed": {kind: "file", mode: 0o755, data: "f"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := compareToOracle(tc.oracle, base, tc.cand, base)
			if len(got) != tc.want {
				t.Fatalf("%d problems, want %d: %v", len(got), tc.want, got)
			}
		})
	}
}
