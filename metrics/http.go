package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds one readiness check, so that a stuck engine answers
// probes with 503 rather than piling them up.
const readyTimeout = 5 * time.Second

// Handler serves the default registry in Prometheus's formats, as
// buildkitd's /metrics does.
func Handler() http.Handler { return promhttp.Handler() }

// Endpoints serves /metrics, /healthz and /readyz, for the daemon's
// --metrics-addr: a probe or a scraper needs neither exec nor the pprof
// endpoints. /healthz answers 200 while the process serves HTTP; /readyz
// answers 200 when ready returns nil, else 503 with its error.
func Endpoints(ready func(context.Context) error) http.Handler {
	m := http.NewServeMux()
	m.Handle("GET /metrics", Handler())
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return m
}

// Listen opens addr (host:port) for Serve, so a bad address fails before
// the daemon touches any state.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %s: %w", addr, err)
	}
	return l, nil
}

// Serve answers h on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics address %s: %w", l.Addr(), err)
	}
	return nil
}
