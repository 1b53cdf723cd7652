package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
)

const (
	// exportVertex is the vertex both daemons show for a type=s3 cache export.
	exportVertex = "exporting cache to Amazon S3"
	// sendStatus is BuildKit's status around the exporter's Finalize: the
	// backend's own part of the export, after BuildKit prepared the chains.
	sendStatus = "sending cache export"
)

// buildResult is what one buildctl build took.
type buildResult struct {
	wall   time.Duration // the whole buildctl command
	export time.Duration // the cache export vertex, zero without export
	send   time.Duration // the backend's Finalize within it
	runs   int           // RUN steps
	cached int           // RUN steps that were cache hits
	// copies and copiesCached are the same for COPY steps (the scale
	// workload's layers).
	copies, copiesCached int
}

// build runs buildctl against d with the workload's context and extra
// flags, and reads the durations from its rawjson progress.
func (b *bench) build(ctx context.Context, d *daemon, wl *workload, extra ...string) (buildResult, error) {
	args := []string{"--addr", d.addr, "build", "--progress", "rawjson", "--frontend", "dockerfile.v0",
		"--local", "context=" + wl.dir, "--local", "dockerfile=" + wl.dir}
	args = append(args, extra...)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, b.buildctlBin, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The previous build's writes reach the disk now, not during this one:
	// whichever daemon goes second would otherwise pay for the first.
	syscall.Sync()
	daemonCPU, minioCPU := cpuTime(d.cmd.Process.Pid), cpuTime(b.minioPid)
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	daemonCPU, minioCPU = cpuTime(d.cmd.Process.Pid)-daemonCPU, cpuTime(b.minioPid)-minioCPU
	if err != nil {
		logPath := filepath.Join(b.work, fmt.Sprintf("failed-build-%d.log", time.Now().UnixNano()))
		_ = os.WriteFile(logPath, append(stdout.Bytes(), stderr.Bytes()...), 0o644)
		return buildResult{}, fmt.Errorf("buildctl build on %s (%s): %w; progress in %s; daemon log %s:\n%s",
			d.kind, strings.Join(extra, " "), err, logPath, d.log.Name(), tail(d.log.Name()))
	}
	if os.Getenv("BENCH_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "CPU: %s daemon %.2fs, MinIO %.2fs, buildctl %.2fs\n", d.kind, daemonCPU.Seconds(), minioCPU.Seconds(),
			(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
		debugVertexes(bytes.NewReader(stderr.Bytes()))
	}
	res, err := parseProgress(&stderr)
	if err != nil {
		return buildResult{}, fmt.Errorf("buildctl progress on %s: %w", d.kind, err)
	}
	res.wall = wall
	return res, nil
}

// parseProgress reads buildctl's rawjson stream of client.SolveStatus.
func parseProgress(r io.Reader) (buildResult, error) {
	type span struct{ started, completed *time.Time }
	vertexes := map[string]*client.Vertex{}
	statuses := map[string]*span{}
	dec := json.NewDecoder(r)
	for {
		var st client.SolveStatus
		err := dec.Decode(&st)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return buildResult{}, fmt.Errorf("decode rawjson progress: %w", err)
		}
		for _, v := range st.Vertexes {
			old, ok := vertexes[v.Digest.String()]
			if !ok {
				vertexes[v.Digest.String()] = v
				continue
			}
			// Later updates carry completion (and, for the last step of an
			// import, the unpacking of its layers); keep the first start and
			// a cache hit once reported.
			if old.Started != nil && v.Started != nil && old.Started.Before(*v.Started) {
				v.Started = old.Started
			}
			v.Cached = v.Cached || old.Cached
			vertexes[v.Digest.String()] = v
		}
		for _, s := range st.Statuses {
			key := s.Vertex.String() + "/" + s.ID
			sp, ok := statuses[key]
			if !ok {
				sp = &span{}
				statuses[key] = sp
			}
			if s.Started != nil && sp.started == nil {
				sp.started = s.Started
			}
			if s.Completed != nil {
				sp.completed = s.Completed
			}
		}
	}
	var res buildResult
	for _, v := range vertexes {
		if strings.Contains(v.Name, "RUN ") {
			res.runs++
			if v.Cached {
				res.cached++
			}
		}
		if strings.Contains(v.Name, "COPY ") {
			res.copies++
			if v.Cached {
				res.copiesCached++
			}
		}
		if v.Name == exportVertex && v.Started != nil && v.Completed != nil {
			res.export += v.Completed.Sub(*v.Started)
			if sp := statuses[v.Digest.String()+"/"+sendStatus]; sp != nil && sp.started != nil && sp.completed != nil {
				res.send += sp.completed.Sub(*sp.started)
			}
		}
	}
	return res, nil
}

// debugVertexes prints each vertex and status with its start and end as
// offsets from the build's first event, for BENCH_DEBUG.
func debugVertexes(r io.Reader) {
	type line struct {
		start, end time.Time
		text       string
	}
	var lines []line
	var t0 time.Time
	first := func(t *time.Time) {
		if t != nil && (t0.IsZero() || t.Before(t0)) {
			t0 = *t
		}
	}
	dec := json.NewDecoder(r)
	for {
		var st client.SolveStatus
		if err := dec.Decode(&st); err != nil {
			break
		}
		for _, v := range st.Vertexes {
			first(v.Started)
			if v.Completed != nil && v.Started != nil {
				lines = append(lines, line{*v.Started, *v.Completed, fmt.Sprintf("V cached=%v %s", v.Cached, v.Name)})
			}
		}
		for _, s := range st.Statuses {
			first(s.Started)
			if s.Completed != nil && s.Started != nil {
				lines = append(lines, line{*s.Started, *s.Completed, "  S " + s.ID})
			}
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.start.Compare(b.start) })
	for _, l := range lines {
		fmt.Fprintf(os.Stderr, "%8.3f %8.3f %s\n", l.start.Sub(t0).Seconds(), l.end.Sub(t0).Seconds(), l.text)
	}
}

// cpuTime is the user and system CPU time process pid has used so far,
// or zero if it can't be read.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces: count from after it.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0
	}
	// utime and stime are the 14th and 15th fields of the whole line, in
	// clock ticks of 1/100 s on Linux.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
