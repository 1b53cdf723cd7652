// Package debugserver serves Go's profiling endpoints (pprof, execution
// traces, expvar) and /metrics for the daemon's --debugaddr, as
// buildkitd's flag of the same name does.
package debugserver

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/s3cache/s3cache/metrics"
)

// Handler serves /debug/pprof/..., /debug/vars and /metrics.
func Handler() http.Handler {
	m := http.NewServeMux()
	m.Handle("/debug/vars", expvar.Handler())
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.Handle("/metrics", metrics.Handler())
	return m
}

// Listen opens addr (host:port) for Serve, so a bad address fails before
// the daemon touches any state.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug address %s: %w", addr, err)
	}
	return l, nil
}

// Serve answers on l until ctx ends. Anyone who can reach the address can
// read the process's memory profile: keep it on loopback.
func Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve debug address %s: %w", l.Addr(), err)
	}
	return nil
}
