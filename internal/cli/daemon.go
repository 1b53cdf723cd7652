package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
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
	policy      backend.Policy
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
	fl.StringArrayVar(&f.policy.AllowEndpoints, "s3-allow-endpoint", nil,
		`An endpoint_url clients' type=s3 specs may name (scheme://host[:port]), or "aws" for specs without one; repeatable (default: any)`)
	fl.StringArrayVar(&f.policy.AllowBuckets, "s3-allow-bucket", nil, `A bucket clients' type=s3 specs may name, or a pattern such as "ci-*"; repeatable (default: any)`)
	fl.BoolVar(&f.policy.RequireCredentials, "s3-require-credentials", false,
		"Refuse type=s3 specs without access_key_id and secret_access_key, rather than sign them with the daemon's own AWS credentials")
	return cmd
}

// engineCacheOptions sends the cache backend's warnings to the log.
func engineCacheOptions() backend.Options {
	return backend.Options{Logf: func(format string, args ...any) { bklog.L.Warnf(format, args...) }}
}

// startupWarnings are what the daemon's flags expose to whoever reaches
// it, as buildkitd warns of plain TCP: a client can run builds as root and
// use the daemon's AWS identity; the debug endpoints show its memory.
func startupWarnings(f daemonFlags) []string {
	var out []string
	for _, addr := range f.addrs {
		if !strings.HasPrefix(addr, "tcp://") {
			continue
		}
		switch {
		case f.tls.Cert == "":
			out = append(out, fmt.Sprintf("%s serves plain TCP without TLS: anyone who reaches it can run builds as root and use the daemon's credentials; "+
				"give --tlscert, --tlskey and --tlscacert (mutual TLS)", addr))
		case f.tls.CA == "":
			out = append(out, fmt.Sprintf("%s serves TLS without --tlscacert: any client that reaches it can run builds as root and use the daemon's credentials; "+
				"give --tlscacert to require client certificates", addr))
		}
	}
	if f.debugAddr != "" && !isLoopback(f.debugAddr) {
		out = append(out, fmt.Sprintf("--debugaddr %s is not a loopback address: anyone who reaches it can read the process's memory profile, "+
			"which may hold the credentials of builds", f.debugAddr))
	}
	return out
}

// isLoopback reports whether host:port listens on loopback only; an empty
// host listens on every interface. Names other than localhost are not
// resolved: only what the flag says for sure counts.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func runDaemon(ctx context.Context, f daemonFlags) error {
	if f.debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	if err := f.policy.Validate(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the daemon runs containers with runc and needs root")
	}
	for _, w := range startupWarnings(f) {
		bklog.L.Warn(w)
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
	cacheOpts := engineCacheOptions()
	cacheOpts.Policy = f.policy
	e, err := engine.New(engineCtx, engine.Options{Root: f.root, Snapshotter: f.snapshotter, Cache: cacheOpts, GC: true})
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
