package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/util/bklog"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	metricsAddr string
	policy      backend.Policy

	// buildkitd's flags, with buildkitd's meaning.
	entitlements     []string
	gc               bool
	gcKeepStorage    string
	ociSnapshotter   string
	noProcessSandbox bool
	group            string

	configFile string         // --config: buildkitd.toml (daemonconfig.go)
	file       fileSettings   // what only that file sets
	flagSet    *pflag.FlagSet // tells flags given from defaults: they win over the file
}

// daemonSetup is what the flags resolve to before anything starts.
type daemonSetup struct {
	engine engine.Options // without Root and Cache
	uid    int            // owner of unix sockets; -1 leaves the process's
	gid    int            // group of unix sockets; -1 leaves the process's
}

// resolve checks the buildkitd flags and turns them into engine options,
// refusing what the engine cannot honour with one line naming the flag.
func (f daemonFlags) resolve() (daemonSetup, error) {
	s := daemonSetup{gid: -1}
	for _, ent := range f.entitlements {
		if !slices.Contains(engine.Entitlements, ent) {
			return s, fmt.Errorf("--allow-insecure-entitlement %q: unknown entitlement, use %s", ent, strings.Join(engine.Entitlements, ", "))
		}
		if !slices.Contains(s.engine.Entitlements, ent) {
			s.engine.Entitlements = append(s.engine.Entitlements, ent)
		}
	}
	sn := f.snapshotter
	if f.ociSnapshotter != "" {
		if f.snapshotter != "" && f.snapshotter != "auto" && f.snapshotter != f.ociSnapshotter {
			return s, fmt.Errorf("--oci-worker-snapshotter %q contradicts --snapshotter %q: give one", f.ociSnapshotter, f.snapshotter)
		}
		sn = f.ociSnapshotter
	}
	if sn == "" {
		sn = "auto"
	}
	if !slices.Contains(engine.Snapshotters, sn) {
		name := "--snapshotter"
		if f.ociSnapshotter != "" {
			name = "--oci-worker-snapshotter"
		}
		return s, fmt.Errorf("%s %q: not supported by s3cache's runc worker, use %s", name, sn, strings.Join(engine.Snapshotters, ", "))
	}
	s.engine.Snapshotter = sn
	if f.noProcessSandbox {
		// buildkitd refuses it without rootless mode, and the daemon runs as root.
		return s, errors.New("--oci-worker-no-process-sandbox: not supported: it needs rootless mode, which s3cache daemon does not run (buildkitd refuses it without rootless too)")
	}
	s.engine.GC = f.gc
	if f.gcKeepStorage != "" {
		space, err := parseKeepStorage(f.gcKeepStorage)
		if err != nil {
			return s, fmt.Errorf("--oci-worker-gc-keepstorage %q: %w", f.gcKeepStorage, err)
		}
		s.engine.GCSpace = space
	}
	if f.group != "" {
		gid, err := groupToGID(f.group)
		if err != nil {
			return s, fmt.Errorf("--group %q: %w", f.group, err)
		}
		s.gid = gid
	}
	return f.applyFile(s)
}

// parseKeepStorage reads buildkitd's --oci-worker-gc-keepstorage:
// "Reserved[,Free[,Maximum]]" in MB (10^6 bytes).
func parseKeepStorage(in string) (config.GCConfig, error) {
	var cfg config.GCConfig
	parts := strings.Split(in, ",")
	if len(parts) > 3 {
		return cfg, errors.New(`want "Reserved[,Free[,Maximum]]" in MB`)
	}
	fields := []*config.DiskSpace{&cfg.GCReservedSpace, &cfg.GCMinFreeSpace, &cfg.GCMaxUsedSpace}
	for i, p := range parts {
		mb, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || mb < 0 {
			return cfg, fmt.Errorf(`%q is not a whole number of MB; want "Reserved[,Free[,Maximum]]"`, p)
		}
		*fields[i] = config.DiskSpace{Bytes: mb * 1e6}
	}
	return cfg, nil
}

// groupToGID reads --group as buildkitd does: a numeric id or a group name.
func groupToGID(group string) (int, error) {
	if id, err := strconv.Atoi(group); err == nil {
		if id < 0 {
			return 0, errors.New("negative group id")
		}
		return id, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
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
	addDaemonFlags(cmd.Flags(), &f)
	return cmd
}

func addDaemonFlags(fl *pflag.FlagSet, f *daemonFlags) {
	f.flagSet = fl
	fl.StringVar(&f.configFile, "config", "", "buildkitd.toml to read, with buildkitd's meaning; keys it cannot honour are refused (default: "+defaultConfigPath+" when it exists)")
	fl.StringArrayVar(&f.addrs, "addr", []string{DefaultAddr}, "Listening address (unix:///path or tcp://host:port); repeatable")
	fl.StringVar(&f.root, "root", engine.DefaultRoot, "State directory")
	fl.BoolVar(&f.debug, "debug", false, "Enable debug output in logs")
	fl.StringVar(&f.tls.Cert, "tlscert", "", "Certificate file for tcp:// addresses")
	fl.StringVar(&f.tls.Key, "tlskey", "", "Key file for tcp:// addresses")
	fl.StringVar(&f.tls.CA, "tlscacert", "", "CA certificate that client certificates must chain to")
	fl.StringVar(&f.snapshotter, "snapshotter", "auto", "Snapshotter: auto (overlayfs where it works, else native), overlayfs or native")
	fl.StringVar(&f.debugAddr, "debugaddr", "", "Serve Go profiling endpoints (/debug/pprof/, /debug/vars) and /metrics on host:port; keep it on loopback")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "Serve only /metrics (Prometheus), /healthz and /readyz on host:port, for scrapers and probes")
	fl.StringArrayVar(&f.policy.AllowEndpoints, "s3-allow-endpoint", nil,
		`An endpoint_url clients' type=s3 specs may name (scheme://host[:port]), or "aws" for specs without one; repeatable (default: any)`)
	fl.StringArrayVar(&f.policy.AllowBuckets, "s3-allow-bucket", nil, `A bucket clients' type=s3 specs may name, or a pattern such as "ci-*"; repeatable (default: any)`)
	fl.BoolVar(&f.policy.RequireCredentials, "s3-require-credentials", false,
		"Refuse type=s3 specs without access_key_id and secret_access_key, rather than sign them with the daemon's own AWS credentials")
	// buildkitd's flags, so that buildx's drivers can start the daemon.
	fl.StringSliceVar(&f.entitlements, "allow-insecure-entitlement", nil,
		"Allow an insecure entitlement builds may ask for: network.host, security.insecure or device; repeatable (buildkitd's flag)")
	fl.BoolVar(&f.gc, "oci-worker-gc", true, "Garbage-collect the local build cache (buildkitd's flag)")
	fl.StringVar(&f.gcKeepStorage, "oci-worker-gc-keepstorage", "",
		`Local build cache the GC keeps, "Reserved[,Free[,Maximum]]" in MB (buildkitd's flag; default: buildkitd's for the root's disk)`)
	fl.StringVar(&f.ociSnapshotter, "oci-worker-snapshotter", "", "Same as --snapshotter (buildkitd's flag): auto, overlayfs or native")
	fl.BoolVar(&f.noProcessSandbox, "oci-worker-no-process-sandbox", false, "Refused: needs rootless mode, which the daemon does not run (buildkitd's flag)")
	fl.StringVar(&f.group, "group", "", "Group (name or id) owning unix sockets, as buildkitd's flag (default: the process's)")
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
	if err := f.loadConfig(); err != nil {
		return err
	}
	if f.debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	if err := f.policy.Validate(); err != nil {
		return err
	}
	setup, err := f.resolve()
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the daemon runs containers with runc and needs root")
	}
	for _, w := range startupWarnings(f) {
		bklog.L.Warn(w)
	}
	// Listeners first, so a bad address fails before any state is touched;
	// until the engine is up, a failure closes whatever was opened.
	var listeners []net.Listener
	var debugListener net.Listener
	started := false
	defer func() {
		if started {
			return
		}
		for _, l := range listeners {
			l.Close()
		}
		if debugListener != nil {
			debugListener.Close()
		}
	}()
	for _, addr := range f.addrs {
		l, err := engine.Listen(addr, f.tls)
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
		if err := setSocketOwner(addr, setup.uid, setup.gid); err != nil {
			return err
		}
	}
	if f.debugAddr != "" {
		l, err := debugserver.Listen(f.debugAddr)
		if err != nil {
			return err
		}
		debugListener = l
	}
	obs, err := startObservability(ctx, f.metricsAddr)
	if err != nil {
		return err
	}
	defer obs.Close()
	engineCtx, cancelEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEngine()
	cacheOpts := engineCacheOptions()
	cacheOpts.Policy = f.policy
	opts := setup.engine
	opts.Root, opts.Cache, opts.MeterProvider = f.root, cacheOpts, obs.meter
	e, err := engine.New(engineCtx, opts)
	if err != nil {
		return err
	}
	started = true
	defer e.Close()
	obs.engineUp(e)
	server := e.NewGRPCServer(obs.serverOptions()...)
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
