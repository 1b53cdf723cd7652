package cli

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/tracing"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"

	"github.com/s3cache/s3cache/engine"
	"github.com/s3cache/s3cache/metrics"
)

// observability is the daemon's metrics: BuildKit's meter provider and
// the --metrics-addr endpoints, whose /readyz follows the engine.
type observability struct {
	meter    *sdkmetric.MeterProvider
	addr     net.Addr // where --metrics-addr listens; nil without it
	engine   atomic.Pointer[engine.Engine]
	stopping atomic.Bool
	stop     context.CancelFunc
	done     chan struct{}
}

// startObservability serves --metrics-addr (if given) at once, before the
// engine starts, so that probes get /healthz and a 503 from /readyz while
// it does. When ctx ends /readyz says 503 again, while builds drain.
func startObservability(ctx context.Context, addr string) (*observability, error) {
	mp, err := metrics.MeterProvider()
	if err != nil {
		return nil, err
	}
	o := &observability{meter: mp, stop: func() {}}
	if addr == "" {
		return o, nil
	}
	l, err := metrics.Listen(addr)
	if err != nil {
		return nil, err
	}
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	unwatch := context.AfterFunc(ctx, func() { o.stopping.Store(true) })
	o.stop = func() { unwatch(); cancel() }
	o.done, o.addr = make(chan struct{}), l.Addr()
	bklog.L.Infof("s3cache daemon metrics on http://%s/metrics (/healthz, /readyz)", l.Addr())
	go func() {
		defer close(o.done)
		if err := metrics.Serve(serveCtx, l, o.handler()); err != nil {
			bklog.L.Errorf("%v", err)
		}
	}()
	return o, nil
}

func (o *observability) handler() http.Handler { return metrics.Endpoints(o.ready) }

// ready is /readyz: the engine is up and lists a worker.
func (o *observability) ready(ctx context.Context) error {
	if o.stopping.Load() {
		return errors.New("daemon stopping")
	}
	e := o.engine.Load()
	if e == nil {
		return errors.New("engine starting")
	}
	return e.Ready(ctx)
}

// engineUp makes /readyz ask e.
func (o *observability) engineUp(e *engine.Engine) { o.engine.Store(e) }

// serverOptions record BuildKit's gRPC server metrics, as buildkitd does.
func (o *observability) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StatsHandler(tracing.ServerStatsHandler(otelgrpc.WithMeterProvider(o.meter)))}
}

// Close stops serving --metrics-addr.
func (o *observability) Close() {
	o.stop()
	if o.done != nil {
		<-o.done
	}
}
