package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The scale workload (issue 18): export and import of n small layers,
// mode=max, for several n, ours against upstream; the cost per layer
// should stay flat as n grows.
//
// Each layer is a COPY of a small file of its own from the build context:
// no container runs (a RUN step costs 0.1-0.3 s of runc), and both daemons
// use the native snapshotter, as overlayfs cannot stack thousands of
// lower directories.

const (
	scaleFile        = 1024 // bytes of each COPY'd file
	scaleSnapshotter = "native"
	scaleTarget      = 2.0 // ours: per-layer cost at the largest n / at the smallest
	phaseBuild       = "build"
)

// scaleResult is what the scale section reports beyond the samples.
type scaleResult struct {
	sizes       []int
	reps        map[int]int
	upstreamMax int // largest n upstream ran at
	skipped     map[int]string
	duration    map[int]time.Duration // the whole of each size, both daemons
	environment []string
}

// scaleWorkload writes the context of n COPY steps: n files of scaleFile
// random bytes and a Dockerfile copying each onto scratch.
func scaleWorkload(parent string, n int) (*workload, error) {
	wl := &workload{
		name: fmt.Sprintf("scale-%d", n), steps: n, size: scaleFile,
		desc: fmt.Sprintf("%d COPY steps of a %d-byte file each onto scratch (%d layers), mode=max, %s snapshotter", n, scaleFile, n, scaleSnapshotter),
	}
	wl.dir = filepath.Join(parent, "context-"+wl.name)
	if err := os.MkdirAll(wl.dir, 0o755); err != nil {
		return nil, fmt.Errorf("context dir: %w", err)
	}
	var df strings.Builder
	df.WriteString("FROM scratch\n")
	data := make([]byte, scaleFile)
	for i := 1; i <= n; i++ {
		_, _ = rand.Read(data)
		if err := os.WriteFile(filepath.Join(wl.dir, fmt.Sprintf("f%d", i)), data, 0o644); err != nil {
			return nil, fmt.Errorf("write context file: %w", err)
		}
		fmt.Fprintf(&df, "COPY f%d /f%d\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(wl.dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write Dockerfile: %w", err)
	}
	return wl, nil
}

// measureScale runs the scale workload at each size in turn, on fresh
// daemons for each.
func (b *bench) measureScale(ctx context.Context, sizes []int, upstreamMax, bigReps int) error {
	sr := &scaleResult{sizes: sizes, reps: map[int]int{}, upstreamMax: upstreamMax, skipped: map[int]string{}, duration: map[int]time.Duration{}}
	b.res.scale = sr
	for _, n := range sizes {
		start := time.Now()
		wl, err := scaleWorkload(b.work, n)
		if err != nil {
			return err
		}
		kinds := []string{ours, upstream}
		if upstreamMax > 0 && n > upstreamMax {
			kinds = []string{ours}
			sr.skipped[n] = fmt.Sprintf("upstream not run above %d layers (-scale-upstream-max)", upstreamMax)
		}
		reps := b.reps
		if n > 100 && bigReps > 0 {
			reps = min(reps, bigReps)
		}
		sr.reps[n] = reps
		if err := b.measureScaleSize(ctx, wl, kinds, reps); err != nil {
			return fmt.Errorf("%s: %w", wl.name, err)
		}
		sr.duration[n] = time.Since(start)
		progressf("%s: done in %s", wl.name, sr.duration[n].Round(time.Second))
		_ = os.RemoveAll(wl.dir)
	}
	sr.environment = b.sectionEnvironment(ctx, nil)
	return nil
}

// orderOf is order restricted to kinds.
func orderOf(rep int, kinds []string) []string {
	var out []string
	for _, k := range order(rep) {
		for _, want := range kinds {
			if k == want {
				out = append(out, k)
			}
		}
	}
	return out
}

func (b *bench) measureScaleSize(ctx context.Context, wl *workload, kinds []string, reps int) error {
	n := wl.steps
	snap := []string{"--oci-worker-snapshotter", scaleSnapshotter}
	daemons := map[string]*daemon{}
	defer func() {
		for _, d := range daemons {
			d.stop()
		}
	}()
	for _, kind := range kinds {
		d, err := b.startDaemon(ctx, kind, wl.name+"-"+kind, snap...)
		if err != nil {
			return err
		}
		daemons[kind] = d
	}
	for _, kind := range orderOf(0, kinds) {
		progressf("%s: %s: build", wl.name, kind)
		r, err := b.build(ctx, daemons[kind], wl)
		if err != nil {
			return err
		}
		b.res.add(wl.name, phaseBuild, kind, r)
		progressf("%s: %s: build %.1fs; first export (compresses the layers)", wl.name, kind, r.wall.Seconds())
		r, err = b.build(ctx, daemons[kind], wl, b.exportTo(fmt.Sprintf("%s/%s/setup/", wl.name, kind))...)
		if err != nil {
			return err
		}
		progressf("%s: %s: first export %.1fs (export phase %.1fs)", wl.name, kind, r.wall.Seconds(), r.export.Seconds())
	}
	for rep := range reps {
		for _, kind := range orderOf(rep, kinds) {
			prefix := fmt.Sprintf("%s/%s/r%d/", wl.name, kind, rep)
			wait := daemons[kind].traceFor(ctx, max(10, n/5), filepath.Join(b.work, fmt.Sprintf("%s-export-%s-%d.trace", wl.name, kind, rep)))
			r, err := b.build(ctx, daemons[kind], wl, b.exportTo(prefix)...)
			wait()
			if err != nil {
				return err
			}
			b.res.add(wl.name, phaseCold, kind, r)
			progressf("%s: %s cold export %d: export %.2fs (backend %.2fs), wall %.2fs", wl.name, kind, rep+1, r.export.Seconds(), r.send.Seconds(), r.wall.Seconds())
		}
	}
	for kind, d := range daemons {
		d.stop()
		delete(daemons, kind)
	}
	if b.noImport {
		return nil
	}
	for _, kind := range orderOf(0, kinds) {
		progressf("%s: %s: warm-up import (not measured)", wl.name, kind)
		if _, err := b.importBuild(ctx, wl, kind, wl.name+"-import-warmup-"+kind, fmt.Sprintf("%s/%s/setup/", wl.name, kind), snap...); err != nil {
			return err
		}
	}
	for rep := range reps {
		for _, kind := range orderOf(rep, kinds) {
			r, err := b.importBuild(ctx, wl, kind, fmt.Sprintf("%s-import-%s-%d", wl.name, kind, rep), fmt.Sprintf("%s/%s/r%d/", wl.name, kind, rep), snap...)
			if err != nil {
				return err
			}
			b.res.add(wl.name, phaseImport, kind, r)
			progressf("%s: %s import %d: %.2fs, %d of %d COPY steps from cache", wl.name, kind, rep+1, r.wall.Seconds(), r.copiesCached, r.copies)
		}
	}
	return nil
}

// scaleMarkdown is the scale section of the results.
func (r *results) scaleMarkdown() string {
	sr := r.scale
	if sr == nil {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("## scale: export and import of many small layers (issue 18)\n\n")
	fmt.Fprintf(&sb, "Each size is a Dockerfile of n `COPY` steps of a %d-byte file of its own onto `FROM scratch` "+
		"(n layers, no container run), mode=max, both daemons on the %s snapshotter (overlayfs cannot stack thousands of layers), "+
		"fresh daemons for each size. Export: a cold export (layers compressed, empty prefix), BuildKit's export vertex. "+
		"Import: a fresh daemon builds from the cache with `--output type=local`, whole buildctl command. "+
		"Per layer is the median time over n. Build: the first build, no cache (context).\n\n", scaleFile, scaleSnapshotter)
	for _, e := range sr.environment {
		sb.WriteString("- " + e + "\n")
	}
	for _, n := range sr.sizes {
		line := fmt.Sprintf("- %d layers: %d repetition(s), %s for the size", n, sr.reps[n], sr.duration[n].Round(time.Second))
		if s := sr.skipped[n]; s != "" {
			line += "; " + s
		}
		sb.WriteString(line + "\n")
	}
	sb.WriteString("\n| layers | phase | ours (s) | ours per layer (ms) | upstream (s) | upstream per layer (ms) | ours/upstream |\n")
	sb.WriteString("|---:|---|---:|---:|---:|---:|---:|\n")
	cell := func(wl, phase, kind string, n int, field func(buildResult) time.Duration) (string, string) {
		v, ok := r.median(wl, phase, kind, field)
		if !ok {
			return "not run", ""
		}
		return fmt.Sprintf("%.2f", v), fmt.Sprintf("%.2f", v*1000/float64(n))
	}
	for _, n := range sr.sizes {
		wl := fmt.Sprintf("scale-%d", n)
		for _, p := range []struct {
			phase, label string
			field        func(buildResult) time.Duration
		}{
			{phaseCold, "export: export phase", exportTime},
			{phaseCold, "export: backend", sendTime},
			{phaseImport, "import: wall", wallTime},
			{phaseBuild, "build, no cache: wall", wallTime},
		} {
			o, op := cell(wl, p.phase, ours, n, p.field)
			u, up := cell(wl, p.phase, upstream, n, p.field)
			ratio := ""
			if up != "" && op != "" {
				ratio = fmt.Sprintf("%.2f", r.pairedRatio(wl, p.phase, p.field))
			}
			fmt.Fprintf(&sb, "| %d | %s | %s | %s | %s | %s | %s |\n", n, p.label, o, op, u, up, ratio)
		}
	}
	if len(sr.sizes) >= 2 {
		lo, hi := sr.sizes[0], sr.sizes[len(sr.sizes)-1]
		fmt.Fprintf(&sb, "\nGrowth of the cost per layer from %d to each larger size (per-layer time at n / at %d; 1.0 is linear):\n\n", lo, lo)
		sb.WriteString("| measure | n | ours | upstream | target (ours, largest n) | |\n|---|---:|---:|---:|---:|---|\n")
		growth := func(kind string, phase string, n int, field func(buildResult) time.Duration) (float64, bool) {
			a, ok1 := r.median(fmt.Sprintf("scale-%d", lo), phase, kind, field)
			z, ok2 := r.median(fmt.Sprintf("scale-%d", n), phase, kind, field)
			if !ok1 || !ok2 || a == 0 {
				return 0, false
			}
			return (z / float64(n)) / (a / float64(lo)), true
		}
		for _, p := range []struct {
			phase, label string
			field        func(buildResult) time.Duration
		}{
			{phaseCold, "export: export phase", exportTime},
			{phaseCold, "export: backend", sendTime},
			{phaseImport, "import: wall", wallTime},
		} {
			for _, n := range sr.sizes[1:] {
				o, ok := growth(ours, p.phase, n, p.field)
				if !ok {
					continue
				}
				u, uok := growth(upstream, p.phase, n, p.field)
				us := "not run"
				if uok {
					us = fmt.Sprintf("%.2f", u)
				}
				target, check := "", ""
				if n == hi && p.label != "export: backend" {
					target, check = fmt.Sprintf("≤ %.0f", scaleTarget), verdict(o <= scaleTarget)
				}
				fmt.Fprintf(&sb, "| %s | %d | %.2f | %s | %s | %s |\n", p.label, n, o, us, target, check)
			}
		}
	}
	for _, n := range sr.sizes {
		for _, kind := range []string{ours, upstream} {
			for i, br := range r.samples[sampleKey{fmt.Sprintf("scale-%d", n), phaseImport, kind}] {
				if br.copiesCached != br.copies {
					fmt.Fprintf(&sb, "\nNote: %d layers: %s import %d took %d of %d COPY steps from the cache.\n", n, kind, i+1, br.copiesCached, br.copies)
				}
			}
		}
	}
	return sb.String()
}
