package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// Daemon kinds: our `s3cache daemon` and upstream buildkitd.
const (
	ours     = "ours"
	upstream = "upstream"
)

// daemon is a running BuildKit daemon with its own root and socket.
type daemon struct {
	kind string
	dir  string // holds root, socket and log
	addr string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	// debugAddr is the daemon's --debugaddr with BENCH_TRACE set, else empty.
	debugAddr string
}

// startDaemon starts a daemon of kind with a fresh state directory under
// parent and waits until it answers; args are extra flags for both kinds
// alike (flags buildkitd and `s3cache daemon` share).
func (b *bench) startDaemon(ctx context.Context, kind, name string, args ...string) (*daemon, error) {
	dir := filepath.Join(b.work, "daemons", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon dir: %w", err)
	}
	root := filepath.Join(dir, "root")
	addr := "unix://" + filepath.Join(dir, "buildkitd.sock")
	var cmd *exec.Cmd
	switch kind {
	case ours:
		cmd = exec.Command(b.s3cacheBin, "daemon", "--root", root, "--addr", addr)
	case upstream:
		cmd = exec.Command(b.buildkitdBin, "--oci-worker=true", "--containerd-worker=false", "--root", root, "--addr", addr)
	default:
		return nil, fmt.Errorf("unknown daemon kind %q", kind)
	}
	cmd.Args = append(cmd.Args, args...)
	var debugAddr string
	if os.Getenv("BENCH_TRACE") != "" {
		port, err := miniotest.FreePort()
		if err != nil {
			return nil, fmt.Errorf("pick a debug port: %w", err)
		}
		debugAddr = fmt.Sprintf("127.0.0.1:%d", port)
		cmd.Args = append(cmd.Args, "--debugaddr", debugAddr)
	}
	log, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a ^C to the bench reaches it only through stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s daemon: %w", kind, err)
	}
	d := &daemon{kind: kind, dir: dir, addr: addr, cmd: cmd, log: log, done: make(chan struct{}), debugAddr: debugAddr}
	go func() { _ = cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return nil, fmt.Errorf("%s daemon exited at start; log %s:\n%s", kind, log.Name(), tail(log.Name()))
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := client.New(cctx, addr)
		if err == nil {
			_, err = c.ListWorkers(cctx)
			c.Close()
		}
		cancel()
		if err == nil {
			return d, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	d.stop()
	return nil, fmt.Errorf("%s daemon did not answer on %s; log %s:\n%s", kind, addr, log.Name(), tail(log.Name()))
}

// stop interrupts the daemon, kills it if it lingers, and removes its state.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.log.Close()
	// Snapshots may hold leftover mounts; what cannot be removed stays in
	// the work directory, which the bench removes at the end.
	_ = os.RemoveAll(filepath.Join(d.dir, "root"))
}

// traceFor records a Go execution trace of the daemon for the next
// seconds into path, in the background (with BENCH_TRACE=cpu a CPU
// profile instead); wait for it with the returned function. Without
// BENCH_TRACE it does nothing.
func (d *daemon) traceFor(ctx context.Context, seconds int, path string) (wait func()) {
	if d.debugAddr == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		what := "trace"
		if os.Getenv("BENCH_TRACE") == "cpu" {
			what = "profile"
		}
		url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", d.debugAddr, what, seconds)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "trace %s: %v\n", d.kind, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
		fmt.Fprintf(os.Stderr, "%s of %s daemon in %s\n", what, d.kind, path)
	}()
	return func() { <-done }
}

// peakRSS is the daemon's VmHWM: the most resident memory it has held.
func (d *daemon) peakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read %s daemon status: %w", d.kind, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "VmHWM:" && fields[2] == "kB" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", fields[1], err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", d.cmd.Process.Pid)
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	dt, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(dt) > 4000 {
		dt = dt[len(dt)-4000:]
	}
	return string(dt)
}

// cleanEnv is the environment without AWS settings: every spec names its
// credentials, so neither daemon picks up the caller's.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}
