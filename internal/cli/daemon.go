package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/moby/buildkit/util/bklog"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/debugserver"
	"github.com/s3cache/s3cache/engine"
)

func init() { register(newDaemonCommand) }

// DefaultAddr is where the daemon listens unless told otherwise.
const DefaultAddr = "unix:///run/s3cache/buildkitd.sock"

type daemonFlags struct {
	addrs       []string
	root        string
	debug       bool
	tls         engine.TLSFiles
	snapshotter string
	debugAddr   string
}

func newDaemonCommand() *cobra.Command {
	var f daemonFlags
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run a BuildKit daemon whose type=s3 cache is s3cache's",
		Long: `Run a BuildKit daemon, a drop-in for buildkitd: buildctl and docker buildx
(remote driver) work against it unchanged. Its type=s3 cache backend is
s3cache's; local, registry, inline, gha and azblob are BuildKit's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.addrs, "addr", []string{DefaultAddr}, "Listening address (unix:///path or tcp://host:port); repeatable")
	fl.StringVar(&f.root, "root", engine.DefaultRoot, "State directory")
	fl.BoolVar(&f.debug, "debug", false, "Enable debug output in logs")
	fl.StringVar(&f.tls.Cert, "tlscert", "", "Certificate file for tcp:// addresses")
	fl.StringVar(&f.tls.Key, "tlskey", "", "Key file for tcp:// addresses")
	fl.StringVar(&f.tls.CA, "tlscacert", "", "CA certificate that client certificates must chain to")
	fl.StringVar(&f.snapshotter, "snapshotter", "auto", "Snapshotter: auto (overlayfs where it works, else native), overlayfs or native")
	fl.StringVar(&f.debugAddr, "debugaddr", "", "Serve Go profiling endpoints (/debug/pprof/, /debug/vars) on host:port; keep it on loopback")
	return cmd
}

// engineCacheOptions sends the cache backend's warnings to the log.
func engineCacheOptions() backend.Options {
	return backend.Options{Logf: func(format string, args ...any) { bklog.L.Warnf(format, args...) }}
}

func runDaemon(ctx context.Context, f daemonFlags) error {
	if f.debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	if os.Geteuid() != 0 {
		return errors.New("the daemon runs containers with runc and needs root")
	}
	// Listeners first, so a bad address fails before any state is touched.
	var listeners []net.Listener
	for _, addr := range f.addrs {
		l, err := engine.Listen(addr, f.tls)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		listeners = append(listeners, l)
	}
	var debugListener net.Listener
	if f.debugAddr != "" {
		l, err := debugserver.Listen(f.debugAddr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		debugListener = l
	}
	engineCtx, cancelEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEngine()
	e, err := engine.New(engineCtx, engine.Options{Root: f.root, Snapshotter: f.snapshotter, Cache: engineCacheOptions(), GC: true})
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		if debugListener != nil {
			debugListener.Close()
		}
		return err
	}
	defer e.Close()
	server := e.NewGRPCServer()
	eg, egCtx := errgroup.WithContext(ctx)
	for _, l := range listeners {
		bklog.L.Infof("s3cache daemon listening on %s", l.Addr())
		eg.Go(func() error {
			if err := server.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("serve %s: %w", l.Addr(), err)
			}
			return nil
		})
	}
	if debugListener != nil {
		bklog.L.Infof("s3cache daemon debug endpoints on http://%s/debug/pprof/", debugListener.Addr())
		eg.Go(func() error { return debugserver.Serve(egCtx, debugListener) })
	}
	eg.Go(func() error {
		<-egCtx.Done()
		bklog.L.Infof("s3cache daemon stopping")
		cancelEngine()
		stopped := make(chan struct{})
		go func() { server.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			server.Stop()
		}
		return nil
	})
	return eg.Wait()
}
