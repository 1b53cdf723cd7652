package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Phases of a workload.
const (
	phaseCold      = "cold export"
	phaseWarm      = "warm export"
	phaseUnrelated = "warm export, unrelated blobs"
	phaseImport    = "import"
	phaseFloor     = "floor"
)

type sampleKey struct{ workload, phase, kind string }

type results struct {
	reps      int
	quick     bool
	workloads []*workload
	samples   map[sampleKey][]buildResult
	rawPut    map[string][]time.Duration
	rawGet    map[string][]time.Duration
	rawBlobs  map[string]int
	rssGrowth map[sampleKey]int64 // phase empty
	total     time.Duration
	signing   *signingCost // nil: not measured
	merge     *mergeResult // nil: merge10k not run
	scale     *scaleResult // nil: scale not run
}

func newResults(reps int, quick bool) *results {
	return &results{
		reps: reps, quick: quick,
		samples:   map[sampleKey][]buildResult{},
		rawPut:    map[string][]time.Duration{},
		rawGet:    map[string][]time.Duration{},
		rawBlobs:  map[string]int{},
		rssGrowth: map[sampleKey]int64{},
	}
}

func (r *results) add(wl, phase, kind string, br buildResult) {
	k := sampleKey{wl, phase, kind}
	r.samples[k] = append(r.samples[k], br)
}

func (r *results) addRaw(wl string, put, get time.Duration, blobs int) {
	r.rawPut[wl] = append(r.rawPut[wl], put)
	r.rawGet[wl] = append(r.rawGet[wl], get)
	r.rawBlobs[wl] = blobs
}

func (r *results) rss(wl, kind string, before, after int64) {
	r.rssGrowth[sampleKey{wl, "", kind}] = after - before
	progressf("%s: %s peak RSS %d MiB before the first export, %d MiB after", wl, kind, before>>20, after>>20)
}

// median of the field of the samples, in seconds; ok is false without samples.
func (r *results) median(wl, phase, kind string, field func(buildResult) time.Duration) (float64, bool) {
	s := r.samples[sampleKey{wl, phase, kind}]
	if len(s) == 0 {
		return 0, false
	}
	ds := make([]time.Duration, len(s))
	for i, br := range s {
		ds[i] = field(br)
	}
	return medianSeconds(ds), true
}

// pairedRatio is the median, over the repetitions, of ours/upstream
// measured back to back in the same repetition: the load of a shared
// machine drifts between repetitions more than within one.
func (r *results) pairedRatio(wl, phase string, field func(buildResult) time.Duration) float64 {
	o, u := r.samples[sampleKey{wl, phase, ours}], r.samples[sampleKey{wl, phase, upstream}]
	var ratios []float64
	for i := range min(len(o), len(u)) {
		if d := field(u[i]); d > 0 {
			ratios = append(ratios, field(o[i]).Seconds()/d.Seconds())
		}
	}
	return medianFloat(ratios)
}

func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func medianSeconds(ds []time.Duration) float64 {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2].Seconds()
	}
	return (ds[n/2-1] + ds[n/2]).Seconds() / 2
}

// rawRatio is the median, over the repetitions, of a daemon's cold export
// backend time over the raw PUT of the same repetition.
func (r *results) rawRatio(wl, kind string) float64 {
	s, puts := r.samples[sampleKey{wl, phaseCold, kind}], r.rawPut[wl]
	var ratios []float64
	for i := range min(len(s), len(puts)) {
		ratios = append(ratios, s[i].send.Seconds()/puts[i].Seconds())
	}
	return medianFloat(ratios)
}

func exportTime(br buildResult) time.Duration { return br.export }
func sendTime(br buildResult) time.Duration   { return br.send }
func wallTime(br buildResult) time.Duration   { return br.wall }

// targets are the limits on ours/upstream.
var targets = map[sampleKey]float64{
	{"many", phaseCold, ""}:      0.7,
	{"many", phaseWarm, ""}:      0.55,
	{"many", phaseUnrelated, ""}: 0.55,
	{"big", phaseCold, ""}:       0.75,
	{"many", phaseImport, ""}:    0.75, // issue 15: with the chain memo made correct
	{"big", phaseImport, ""}:     0.9,
}

const (
	rawPutTarget = 1.2 // our cold export's backend time / raw PUT of the same bytes
	rssTarget    = 100 << 20
)

type table struct{ rows [][]string }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	var sb strings.Builder
	sb.WriteString("| phase | ours (s) | upstream (s) | ours/upstream | target | |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---|\n")
	for _, r := range t.rows {
		sb.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return sb.String()
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// compare adds the row of one measure for both daemons with its ratio
// and, when the phase has one and the measure is the one it applies to,
// the target.
func (r *results) compare(t *table, wl, phase, label string, field func(buildResult) time.Duration, targeted bool) {
	o, ok1 := r.median(wl, phase, ours, field)
	u, ok2 := r.median(wl, phase, upstream, field)
	if !ok1 || !ok2 {
		return
	}
	ratio := r.pairedRatio(wl, phase, field)
	target, check := "", ""
	if limit, ok := targets[sampleKey{wl, phase, ""}]; ok && targeted {
		target = fmt.Sprintf("≤ %.2f", limit)
		check = verdict(ratio <= limit)
	}
	t.row(label, fmt.Sprintf("%.2f", o), fmt.Sprintf("%.2f", u), fmt.Sprintf("%.2f", ratio), target, check)
}

// markdown is the report: environment, then a table per workload.
func (r *results) markdown(env []string) string {
	var sb strings.Builder
	sb.WriteString("# `make bench`: s3cache daemon against upstream buildkitd\n\n")
	if r.quick {
		sb.WriteString("**Quick smoke variant (BENCH_QUICK=1): small workloads, not the issue's figures.**\n\n")
	}
	fmt.Fprintf(&sb, "Both daemons driven by the same buildctl against one MinIO on loopback, "+
		"interleaved (who goes first alternates), %d repetitions. Times are medians; a ratio is the median of "+
		"the %d ratios ours/upstream measured back to back in one repetition (lower is better).\n\n", r.reps, r.reps)
	for _, e := range env {
		sb.WriteString("- " + e + "\n")
	}
	fmt.Fprintf(&sb, "- bench run time: %s\n\n", r.total.Round(time.Second))
	sb.WriteString("Measures: *export phase* is BuildKit's \"exporting cache to Amazon S3\" vertex; *backend* is its " +
		"\"sending cache export\" step, the exporter's own part (existence checks, uploads, manifest) after BuildKit " +
		"has prepared the cache chains; *wall* is the whole buildctl command. Cold export: blobs already compressed " +
		"locally, empty bucket prefix. Warm export: every blob present. Import: a fresh daemon builds from the " +
		"cache with `--output type=local` (every layer fetched). Floor: warm local rebuild without cache export. " +
		"Raw PUT/GET: the same blob sizes through package store, 4 blobs in flight, no cache logic.\n")
	for _, wl := range r.workloads {
		var t table
		r.compare(&t, wl.name, phaseCold, "cold export: export phase", exportTime, true)
		r.compare(&t, wl.name, phaseCold, "cold export: backend", sendTime, false)
		r.compare(&t, wl.name, phaseCold, "cold export: wall", wallTime, false)
		r.compare(&t, wl.name, phaseWarm, "warm export: export phase", exportTime, true)
		r.compare(&t, wl.name, phaseWarm, "warm export: backend", sendTime, false)
		r.compare(&t, wl.name, phaseWarm, "warm export: wall", wallTime, false)
		r.compare(&t, wl.name, phaseUnrelated, "warm export, unrelated blobs in the prefix: export phase", exportTime, true)
		r.compare(&t, wl.name, phaseUnrelated, "warm export, unrelated blobs in the prefix: backend", sendTime, false)
		r.compare(&t, wl.name, phaseImport, "import into a fresh engine: wall", wallTime, true)
		r.compare(&t, wl.name, phaseFloor, "warm local rebuild, no export (floor): wall", wallTime, false)
		if puts := r.rawPut[wl.name]; len(puts) > 0 {
			put, get := medianSeconds(puts), medianSeconds(r.rawGet[wl.name])
			t.row(fmt.Sprintf("raw PUT of the same %d blobs (ceiling)", r.rawBlobs[wl.name]), fmt.Sprintf("%.2f", put), "", "", "", "")
			t.row(fmt.Sprintf("raw GET of the same %d blobs (ceiling)", r.rawBlobs[wl.name]), fmt.Sprintf("%.2f", get), "", "", "", "")
			if _, ok := r.median(wl.name, phaseCold, ours, sendTime); ok {
				o, u := r.rawRatio(wl.name, ours), r.rawRatio(wl.name, upstream)
				t.row("cold export backend / raw PUT", fmt.Sprintf("%.2f", o), fmt.Sprintf("%.2f", u), "",
					fmt.Sprintf("ours ≤ %.1f", rawPutTarget), verdict(o <= rawPutTarget))
			}
		}
		o, ok1 := r.rssGrowth[sampleKey{wl.name, "", ours}]
		u, ok2 := r.rssGrowth[sampleKey{wl.name, "", upstream}]
		if ok1 && ok2 {
			target, check := "", ""
			if wl.name == "big" {
				target, check = "ours < 100 MiB", verdict(o < rssTarget)
			}
			t.row(fmt.Sprintf("peak RSS growth over the first export of %s (MiB)", mibString(int64(wl.steps)*wl.size)),
				fmt.Sprintf("%d", o>>20), fmt.Sprintf("%d", u>>20), "", target, check)
		}
		fmt.Fprintf(&sb, "\n## %s\n\n", wl)
		if wl.name == "many" {
			if s := r.samples[sampleKey{wl.name, phaseUnrelated, ours}]; len(s) > 0 {
				sb.WriteString("The unrelated-blobs rows export into a prefix whose blobs/ also holds blobs no manifest names (see the workload line below).\n\n")
			}
		}
		sb.WriteString(t.String())
		r.importNote(&sb, wl.name)
	}
	if r.signing != nil {
		sb.WriteString(r.signing.markdown())
	}
	return sb.String()
}

// importNote flags an import that rebuilt steps instead of using the cache.
func (r *results) importNote(sb *strings.Builder, wl string) {
	for _, kind := range []string{ours, upstream} {
		for i, br := range r.samples[sampleKey{wl, phaseImport, kind}] {
			if br.cached != br.runs {
				fmt.Fprintf(sb, "\nNote: %s import %d took %d of %d RUN steps from the cache.\n", kind, i+1, br.cached, br.runs)
			}
		}
	}
}

// environment describes the machine and the versions measured.
func (b *bench) environment(ctx context.Context) []string {
	env := []string{"date: " + time.Now().UTC().Format("2006-01-02 15:04 UTC"), machineLine()}
	env = append(env, b.versions(ctx)...)
	for _, wl := range b.res.workloads {
		env = append(env, "workload "+wl.String())
	}
	env = append(env, fmt.Sprintf("unrelated blobs: %d objects of 512 bytes under the many workload's blobs/ prefix", b.unrelated))
	return env
}

// machineLine describes the machine.
func machineLine() string {
	cpu, cores := "", 0
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				cpu = strings.TrimSpace(v)
			case "processor":
				cores++
			}
		}
		f.Close()
	}
	mem := ""
	if dt, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(dt), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
				mem = fmt.Sprintf("%d GiB", kb>>20)
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("machine: %s, %d cores, %s RAM, Linux %s (shared with other work: expect noise)",
		cpu, cores, mem, strings.TrimSpace(string(kernel)))
}

// versions are the lines naming what was measured.
func (b *bench) versions(ctx context.Context) []string {
	version := func(name string, args ...string) string {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	// The tools are built with go build, which stamps no version: the pins
	// they were built from say it.
	pins := map[string]string{}
	if dt, err := os.ReadFile(filepath.Join(b.root, "scripts", "versions.sh")); err == nil {
		for _, l := range strings.Split(string(dt), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
				pins[k], _, _ = strings.Cut(v, " ")
			}
		}
	}
	rev := b.rev
	if rev == "" {
		rev = version("git", "-C", b.root, "describe", "--always", "--dirty")
	}
	return []string{
		"s3cache: " + rev + ", built with " + runtime.Version(),
		"upstream: buildkitd and buildctl built from github.com/moby/buildkit " + pins["BUILDKIT_VERSION"],
		"MinIO: github.com/minio/minio " + pins["MINIO_VERSION"] + "; its memory " + b.minioMemory,
	}
}
