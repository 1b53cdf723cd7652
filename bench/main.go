// Command bench measures s3cache's daemon against upstream buildkitd with
// the same buildctl on the same MinIO, side by side in one run, and writes
// the table of medians and ratios to bench/results.md. Run it with
// `make bench`; BENCH_QUICK=1 (or -quick) is a small smoke variant.
//
// It needs root and runc (both daemons run containers), Debian's
// busybox-static, bin/s3cache and the tools scripts/install-test-deps.sh
// builds into .tools/bin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

type bench struct {
	root                                  string // module root
	work                                  string // scratch directory
	s3cacheBin, buildkitdBin, buildctlBin string
	reps                                  int
	unrelated                             int
	noImport                              bool
	rev                                   string // -rev: the source s3cacheBin was built from
	note                                  string // -note: said in each section's environment

	endpoint, region, bucket, accessKey, secretKey string
	minioPid                                       int
	minioMemory                                    string // how MinIO's memory is capped, for the results

	res *results
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "small smoke variant (also BENCH_QUICK=1): fewer, smaller layers, one repetition")
	reps := flag.Int("reps", 3, "repetitions of each measurement; the table shows medians")
	out := flag.String("out", "", "results file (default bench/results.md; none with -quick)")
	only := flag.String("only", "", "comma-separated workloads to run (many, big, unrelated, merge10k, scale); default many, big, unrelated, merge10k")
	s3cacheBin := flag.String("s3cache", "", "our daemon's binary (default bin/s3cache)")
	note := flag.String("note", "", "a remark on the run (e.g. other load on the machine) for the merge10k and scale sections")
	rev := flag.String("rev", "", "what -s3cache was built from, for the results (default: git describe of this tree)")
	scaleSizes := flag.String("scale-sizes", "60,300,600", "layer counts of the scale workload, smallest first (3000, the issue's, is out of reach: see bench/README.md)")
	scaleUpstreamMax := flag.Int("scale-upstream-max", 300, "largest layer count the scale workload runs upstream at (0: every size)")
	scaleBigReps := flag.Int("scale-big-reps", 1, "repetitions of the scale workload above 100 layers (at most -reps; 0: -reps)")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	noImport := flag.Bool("no-import", false, "skip the import phase (for iterating on exports)")
	minioMiB := flag.Int64("minio-memory", 0, "cap MinIO's memory, page cache included, at this many MiB with a memory cgroup (0: no cap; see bench/README.md)")
	flag.Parse()

	if os.Geteuid() != 0 {
		return errors.New("both daemons run containers with runc: run as root")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	b := &bench{
		root:         root,
		s3cacheBin:   filepath.Join(root, "bin", "s3cache"),
		buildkitdBin: filepath.Join(root, ".tools", "bin", "buildkitd"),
		buildctlBin:  filepath.Join(root, ".tools", "bin", "buildctl"),
		reps:         *reps,
		unrelated:    10000,
		noImport:     *noImport,
		rev:          *rev,
		note:         *note,
	}
	if *s3cacheBin != "" {
		b.s3cacheBin = *s3cacheBin
	}
	many := &workload{name: "many", steps: 60, size: 1 << 20}
	big := &workload{name: "big", steps: 4, size: 150 << 20}
	if *quick {
		many.steps, big.steps, big.size = 10, 2, 20<<20
		b.unrelated = 1000
		if !isFlagSet("reps") {
			b.reps = 1
		}
	}
	resultsPath := *out
	if resultsPath == "" && !*quick {
		resultsPath = filepath.Join(root, "bench", "results.md")
	}
	want := func(name string) bool {
		if *only == "" {
			return !slices.Contains(optIn, name)
		}
		return slices.Contains(strings.Split(*only, ","), name)
	}
	var sizes []int
	if want("scale") {
		for _, f := range strings.Split(*scaleSizes, ",") {
			var n int
			if _, err := fmt.Sscanf(f, "%d", &n); err != nil || n < 1 || (len(sizes) > 0 && n <= sizes[len(sizes)-1]) {
				return fmt.Errorf("-scale-sizes %q: want increasing positive layer counts", *scaleSizes)
			}
			sizes = append(sizes, n)
		}
		if *quick && !isFlagSet("scale-sizes") {
			sizes = []int{10, 50}
		}
	}

	for _, p := range []string{b.s3cacheBin, b.buildkitdBin, b.buildctlBin} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: run `make build` and scripts/install-test-deps.sh (make bench does both): %w", p, err)
		}
	}
	if os.Getenv("MINIO_BIN") == "" {
		os.Setenv("MINIO_BIN", filepath.Join(root, ".tools", "bin", "minio"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b.work, err = os.MkdirTemp(os.Getenv("BENCH_DIR"), "s3cache-bench-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	if *keep {
		fmt.Println("scratch directory:", b.work)
	} else {
		defer os.RemoveAll(b.work)
	}

	srv, err := miniotest.Start()
	if err != nil {
		return fmt.Errorf("start MinIO: %w", err)
	}
	release := func() {}
	b.minioMemory = "not capped (-minio-memory)"
	if *minioMiB > 0 {
		if r, err := capMemory(srv.Pid(), *minioMiB<<20); err != nil {
			b.minioMemory = fmt.Sprintf("not capped (%v)", err)
			fmt.Fprintln(os.Stderr, "bench: MinIO's memory", b.minioMemory)
		} else {
			release = r
			b.minioMemory = fmt.Sprintf("capped at %d MiB, page cache included (memory cgroup)", *minioMiB)
		}
	}
	defer func() {
		srv.Stop()
		release()
	}()
	b.endpoint, b.region, b.bucket = srv.Endpoint, miniotest.Region, "bench"
	b.accessKey, b.secretKey = miniotest.AccessKey, miniotest.SecretKey
	b.minioPid = srv.Pid()
	if err := srv.CreateBucket(ctx, b.bucket); err != nil {
		return err
	}

	b.res = newResults(b.reps, *quick)
	start := time.Now()
	for _, wl := range []*workload{many, big} {
		if !want(wl.name) && !(wl == many && want("unrelated")) {
			continue
		}
		if err := wl.writeContext(b.work); err != nil {
			return err
		}
		b.res.workloads = append(b.res.workloads, wl)
		if err := b.runWorkload(ctx, wl, want(wl.name), wl == many && want("unrelated")); err != nil {
			return fmt.Errorf("workload %s: %w", wl.name, err)
		}
	}
	mainRun := len(b.res.workloads) > 0
	if want("merge10k") {
		wl := &workload{name: "merge10k", steps: many.steps, size: many.size}
		if err := wl.writeContext(b.work); err != nil {
			return err
		}
		if err := b.measureMerge(ctx, wl); err != nil {
			return fmt.Errorf("workload merge10k: %w", err)
		}
	}
	if want("scale") {
		if err := b.measureScale(ctx, sizes, *scaleUpstreamMax, *scaleBigReps); err != nil {
			return fmt.Errorf("workload scale: %w", err)
		}
	}
	b.res.total = time.Since(start)

	sections := map[string]string{"merge10k": b.res.mergeMarkdown(), "scale": b.res.scaleMarkdown()}
	head := ""
	if mainRun {
		// Milliseconds, so always: issue 19 asks for the figure in results.md.
		if b.res.signing, err = measureSigning(); err != nil {
			return err
		}
		head = b.res.markdown(b.environment(ctx))
	}
	var old []byte
	if resultsPath != "" {
		if old, err = os.ReadFile(resultsPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read results: %w", err)
		}
	}
	report := assembleResults(string(old), head, sections)
	fmt.Println()
	fmt.Print(report)
	if resultsPath != "" {
		if err := os.WriteFile(resultsPath, []byte(report), 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		fmt.Println("written to", resultsPath)
	}
	return nil
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// order interleaves the daemons: who goes first alternates by repetition,
// so neither always meets a cold page cache or a busy MinIO.
func order(rep int) []string {
	if rep%2 == 0 {
		return []string{ours, upstream}
	}
	return []string{upstream, ours}
}

// cacheAttrs reach the bench bucket under prefix.
func (b *bench) cacheAttrs(prefix string) string {
	return fmt.Sprintf("type=s3,region=%s,bucket=%s,endpoint_url=%s,use_path_style=true,access_key_id=%s,secret_access_key=%s,prefix=%s",
		b.region, b.bucket, b.endpoint, b.accessKey, b.secretKey, prefix)
}

func (b *bench) exportTo(prefix string) []string {
	return []string{"--export-cache", b.cacheAttrs(prefix) + ",mode=max"}
}

func progressf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// runWorkload measures one workload on a fresh pair of daemons: its
// phases when measure is set, and the warm export into a bucket crowded
// with unrelated blobs when unrelated is set.
func (b *bench) runWorkload(ctx context.Context, wl *workload, measure, unrelated bool) (err error) {
	progressf("%s: starting daemons", wl)
	daemons := map[string]*daemon{}
	defer func() {
		for _, d := range daemons {
			d.stop()
		}
	}()
	for _, kind := range []string{ours, upstream} {
		d, err := b.startDaemon(ctx, kind, wl.name+"-"+kind)
		if err != nil {
			return err
		}
		daemons[kind] = d
	}

	// Setup: build, then a first export, which compresses every layer (as
	// BuildKit does lazily at export time) so the measured exports find
	// the blobs compressed. Its growth of peak RSS is the memory an export
	// of every layer costs.
	for _, kind := range order(0) {
		d := daemons[kind]
		progressf("%s: %s: build", wl.name, kind)
		if _, err := b.build(ctx, d, wl); err != nil {
			return err
		}
		before, err := d.peakRSS()
		if err != nil {
			return err
		}
		progressf("%s: %s: first export (compresses the layers)", wl.name, kind)
		if _, err := b.build(ctx, d, wl, b.exportTo(fmt.Sprintf("%s/%s/setup/", wl.name, kind))...); err != nil {
			return err
		}
		after, err := d.peakRSS()
		if err != nil {
			return err
		}
		b.res.rss(wl.name, kind, before, after)
	}

	if measure {
		if err := b.measureExports(ctx, wl, daemons); err != nil {
			return err
		}
	}
	if unrelated {
		if err := b.measureUnrelated(ctx, wl, daemons); err != nil {
			return err
		}
	}
	for kind, d := range daemons {
		d.stop()
		delete(daemons, kind)
	}
	if measure && !b.noImport {
		return b.measureImports(ctx, wl)
	}
	return nil
}

// measureExports times the warm local rebuild (the floor), cold exports to
// fresh prefixes, warm exports to the same prefixes, and the raw PUT and
// GET of the same sizes.
func (b *bench) measureExports(ctx context.Context, wl *workload, daemons map[string]*daemon) error {
	for rep := range b.reps {
		for _, kind := range order(rep) {
			r, err := b.build(ctx, daemons[kind], wl)
			if err != nil {
				return err
			}
			b.res.add(wl.name, phaseFloor, kind, r)
		}
	}
	var files []rawBlob
	for rep := range b.reps {
		for _, phase := range []string{phaseCold, phaseWarm} {
			for _, kind := range order(rep) {
				prefix := fmt.Sprintf("%s/%s/r%d/", wl.name, kind, rep)
				wait := daemons[kind].traceFor(ctx, 5, filepath.Join(b.work, fmt.Sprintf("%s-%s-%s-%d.trace", wl.name, strings.ReplaceAll(phase, " ", "-"), kind, rep)))
				r, err := b.build(ctx, daemons[kind], wl, b.exportTo(prefix)...)
				wait()
				if err != nil {
					return err
				}
				b.res.add(wl.name, phase, kind, r)
				progressf("%s: %s %s %d: export %.2fs (backend %.2fs), wall %.2fs", wl.name, kind, phase, rep+1, r.export.Seconds(), r.send.Seconds(), r.wall.Seconds())
			}
		}
		if files == nil {
			sizes, err := b.blobSizes(ctx, fmt.Sprintf("%s/%s/r0/", wl.name, ours))
			if err != nil {
				return err
			}
			files, err = rawFiles(filepath.Join(b.work, "raw-"+wl.name), sizes)
			if err != nil {
				return err
			}
		}
		put, get, err := b.rawPutGet(ctx, fmt.Sprintf("raw/%s/r%d/", wl.name, rep), files)
		if err != nil {
			return err
		}
		b.res.addRaw(wl.name, put, get, len(files))
		progressf("%s: raw %d blobs: put %.2fs get %.2fs", wl.name, len(files), put.Seconds(), get.Seconds())
	}
	return nil
}

// measureUnrelated times warm exports of wl into a prefix whose blobs/
// also holds b.unrelated blobs no manifest names.
func (b *bench) measureUnrelated(ctx context.Context, wl *workload, daemons map[string]*daemon) error {
	prefix := "unrelated/"
	progressf("%s: putting %d unrelated blobs", wl.name, b.unrelated)
	if err := b.putUnrelated(ctx, prefix, b.unrelated); err != nil {
		return err
	}
	for _, kind := range order(0) {
		if _, err := b.build(ctx, daemons[kind], wl, b.exportTo(prefix)...); err != nil {
			return err
		}
	}
	for rep := range b.reps {
		for _, kind := range order(rep) {
			r, err := b.build(ctx, daemons[kind], wl, b.exportTo(prefix)...)
			if err != nil {
				return err
			}
			b.res.add(wl.name, phaseUnrelated, kind, r)
			progressf("%s: %s warm export with %d unrelated blobs %d: export %.2fs (backend %.2fs)", wl.name, kind, b.unrelated, rep+1, r.export.Seconds(), r.send.Seconds())
		}
	}
	return nil
}

// measureImports times, on a fresh daemon each time, a build that imports
// the cache a cold export wrote and writes the result to a local directory.
func (b *bench) measureImports(ctx context.Context, wl *workload) error {
	// One untimed import each first, from the setup export: the first
	// import after the export phases ran markedly slower than the rest,
	// and it is always the same daemon's (rep 0's first).
	for _, kind := range order(0) {
		progressf("%s: %s: warm-up import (not measured)", wl.name, kind)
		if _, err := b.importBuild(ctx, wl, kind, wl.name+"-import-warmup-"+kind, fmt.Sprintf("%s/%s/setup/", wl.name, kind)); err != nil {
			return err
		}
	}
	for rep := range b.reps {
		for _, kind := range order(rep) {
			r, err := b.importBuild(ctx, wl, kind, fmt.Sprintf("%s-import-%s-%d", wl.name, kind, rep), fmt.Sprintf("%s/%s/r%d/", wl.name, kind, rep))
			if err != nil {
				return err
			}
			b.res.add(wl.name, phaseImport, kind, r)
			progressf("%s: %s import %d: %.2fs, %d of %d RUN steps from cache", wl.name, kind, rep+1, r.wall.Seconds(), r.cached, r.runs)
		}
	}
	return nil
}

// importBuild runs, on a fresh daemon of kind, a build that imports the
// cache under prefix and writes the result to a local directory.
func (b *bench) importBuild(ctx context.Context, wl *workload, kind, name, prefix string, args ...string) (buildResult, error) {
	d, err := b.startDaemon(ctx, kind, name, args...)
	if err != nil {
		return buildResult{}, err
	}
	defer d.stop()
	out := filepath.Join(b.work, name+"-out")
	defer os.RemoveAll(out)
	seconds := 10
	if wl.steps > 100 {
		// The scale workload's imports take minutes: profile most of one.
		seconds = wl.steps / 4
	}
	wait := d.traceFor(ctx, seconds, filepath.Join(b.work, name+".trace"))
	defer wait()
	return b.build(ctx, d, wl, "--import-cache", b.cacheAttrs(prefix), "--output", "type=local,dest="+out)
}
