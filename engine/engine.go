// Package engine assembles BuildKit as a library: a runc worker, the
// Dockerfile and gateway frontends, the session manager, cache storage,
// build history and the remote cache backends, with ours for `type=s3`.
// The daemon serves it over gRPC; an embedded build talks to it in-process.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/gofrs/flock"
	"github.com/moby/buildkit/cache/remotecache"
	"github.com/moby/buildkit/cache/remotecache/azblob"
	"github.com/moby/buildkit/cache/remotecache/gha"
	inlineremotecache "github.com/moby/buildkit/cache/remotecache/inline"
	localremotecache "github.com/moby/buildkit/cache/remotecache/local"
	registryremotecache "github.com/moby/buildkit/cache/remotecache/registry"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/control"
	"github.com/moby/buildkit/executor/oci"
	"github.com/moby/buildkit/frontend"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/builder"
	"github.com/moby/buildkit/frontend/gateway"
	"github.com/moby/buildkit/frontend/gateway/forwarder"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/bboltcachestorage"
	"github.com/moby/buildkit/util/apicaps"
	"github.com/moby/buildkit/util/db/boltutil"
	"github.com/moby/buildkit/util/disk"
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto" // gRPC codec BuildKit clients expect
	"github.com/moby/buildkit/util/network/netproviders"
	"github.com/moby/buildkit/util/resolver"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/moby/buildkit/version"
	"github.com/moby/buildkit/worker"
	"github.com/moby/buildkit/worker/base"
	"github.com/moby/buildkit/worker/runc"
	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/semaphore"

	"github.com/s3cache/s3cache/backend"
	"github.com/s3cache/s3cache/store"
)

func init() {
	// Clients negotiate capabilities with this product name.
	apicaps.ExportedProduct = "buildkit"
}

// DefaultRoot is where the engine keeps its state.
const DefaultRoot = "/var/lib/s3cache"

// Options configure an engine.
type Options struct {
	Root string // state directory; DefaultRoot when empty
	// Snapshotter is "auto" (overlayfs where it mounts, else native),
	// "overlayfs" or "native".
	Snapshotter string
	// Cache tunes our `type=s3` backend.
	Cache backend.Options
	// GC enables BuildKit's default garbage collection of the local cache.
	GC bool
	// GCSpace bounds that collection as buildkitd's gckeepstorage and
	// --oci-worker-gc-keepstorage do (reserved, min free, max used); all
	// zero takes buildkitd's defaults for the root's disk. Its GC and
	// GCPolicy fields are not read: see GC and GCPolicy.
	GCSpace config.GCConfig
	// GCPolicy, when not empty, replaces the default policy rule by rule,
	// as buildkitd's [[worker.oci.gcpolicy]]; GCSpace then has no effect.
	GCPolicy []config.GCPolicy
	// MaxParallelism bounds the build steps the worker runs at once, as
	// buildkitd's max-parallelism; 0 is no bound.
	MaxParallelism int
	// Registries configure registry hosts (mirrors, plain HTTP, TLS) for
	// image pulls and the registry cache, as buildkitd's [registry."host"].
	Registries map[string]resolverconfig.RegistryConfig
	// Entitlements are the insecure entitlements builds may ask for
	// (buildkitd's --allow-insecure-entitlement): network.host,
	// security.insecure, device.
	Entitlements []string
	// MeterProvider receives BuildKit's own metrics (builds, steps,
	// durations), as buildkitd hands its controller one; nil drops them.
	MeterProvider metric.MeterProvider
}

// Entitlements the engine can grant, as buildkitd accepts them.
var Entitlements = []string{"network.host", "security.insecure", "device"}

// Snapshotters the engine's runc worker can use; "auto" picks one.
var Snapshotters = []string{"auto", "overlayfs", "native"}

// Engine is a running BuildKit controller.
type Engine struct {
	Controller *control.Controller
	vault      *backend.Vault
	policy     backend.Policy
	root       string
	lock       *flock.Flock
	closers    []func() error
}

// New assembles an engine with its state under opts.Root, locking the root
// so that two engines never share it.
func New(ctx context.Context, opts Options) (_ *Engine, retErr error) {
	root := opts.Root
	if root == "" {
		root = DefaultRoot
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("engine root %s: %w", opts.Root, err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create engine root: %w", err)
	}
	if err := opts.Cache.Policy.Validate(); err != nil {
		return nil, err
	}
	for _, ent := range opts.Entitlements {
		if !slices.Contains(Entitlements, ent) {
			return nil, fmt.Errorf("unknown entitlement %q: use %s", ent, strings.Join(Entitlements, ", "))
		}
	}
	if opts.MaxParallelism < 0 {
		return nil, fmt.Errorf("max parallelism %d: want 0 (no bound) or more", opts.MaxParallelism)
	}
	e := &Engine{root: root, vault: backend.NewVault(), policy: opts.Cache.Policy}
	defer func() {
		if retErr != nil {
			_ = e.Close()
		}
	}()
	e.lock = flock.New(filepath.Join(root, "s3cache.lock"))
	locked, err := e.lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock engine root %s: %w", root, err)
	}
	if !locked {
		e.lock = nil
		return nil, fmt.Errorf("engine root %s is in use by another s3cache build or daemon (use another --root or --addr to share the daemon)", root)
	}

	sm, err := session.NewManager()
	if err != nil {
		return nil, fmt.Errorf("session manager: %w", err)
	}
	hosts := resolver.NewRegistryConfig(opts.Registries)
	w, contentDir, err := newWorker(ctx, root, opts, hosts)
	if err != nil {
		return nil, err
	}
	wc := &worker.Controller{}
	if err := wc.Add(w); err != nil {
		return nil, fmt.Errorf("register worker: %w", err)
	}
	e.closers = append(e.closers, wc.Close)

	gwfe, err := gateway.NewGatewayFrontend(wc.Infos(), nil)
	if err != nil {
		return nil, fmt.Errorf("gateway frontend: %w", err)
	}
	frontends := map[string]frontend.Frontend{
		"dockerfile.v0": forwarder.NewGatewayForwarder(wc.Infos(), dockerfile.Build),
		"gateway.v0":    gwfe,
	}

	cacheStorage, err := bboltcachestorage.NewStore(filepath.Join(root, "cache.db"))
	if err != nil {
		return nil, fmt.Errorf("open cache storage: %w", err)
	}
	e.closers = append(e.closers, cacheStorage.Close)
	historyDB, err := boltutil.SafeOpen(filepath.Join(root, "history.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open build history: %w", err)
	}
	e.closers = append(e.closers, historyDB.Close)

	if opts.Cache.LocalBlob == nil && contentDir != "" {
		opts.Cache.LocalBlob = contentFiles(contentDir)
	}
	if opts.Cache.Prober == nil {
		// One for the engine's life: every export and import learns from
		// those before it which blobs prefixes are too crowded to list.
		opts.Cache.Prober = store.NewProber()
	}
	exporters := map[string]remotecache.ResolveCacheExporterFunc{
		"s3":       backend.ExporterWithVault(e.vault, backend.ResolveCacheExporterFunc(opts.Cache)),
		"registry": registryremotecache.ResolveCacheExporterFunc(sm, hosts),
		"local":    localremotecache.ResolveCacheExporterFunc(sm),
		"inline":   inlineremotecache.ResolveCacheExporterFunc(),
		"gha":      gha.ResolveCacheExporterFunc(nil, nil),
		"azblob":   azblob.ResolveCacheExporterFunc(),
	}
	importers := map[string]remotecache.ResolveCacheImporterFunc{
		"s3":       backend.ImporterWithVault(e.vault, backend.ResolveCacheImporterFunc(opts.Cache)),
		"registry": registryremotecache.ResolveCacheImporterFunc(sm, w.ContentStore(), hosts),
		"local":    localremotecache.ResolveCacheImporterFunc(sm),
		"gha":      gha.ResolveCacheImporterFunc(nil, nil),
		"azblob":   azblob.ResolveCacheImporterFunc(),
	}

	ctrl, err := control.NewController(control.Opt{
		SessionManager:            sm,
		WorkerController:          wc,
		Frontends:                 frontends,
		ResolveCacheExporterFuncs: exporters,
		ResolveCacheImporterFuncs: importers,
		CacheManager:              solver.NewCacheManager(ctx, "local", cacheStorage, worker.NewCacheResultStorage(wc)),
		HistoryDB:                 historyDB,
		CacheStore:                cacheStorage,
		LeaseManager:              w.LeaseManager(),
		ContentStore:              w.ContentStore(),
		GarbageCollect:            w.GarbageCollect,
		Entitlements:              opts.Entitlements,
		GracefulStop:              ctx.Done(),
		MeterProvider:             opts.MeterProvider,
	})
	if err != nil {
		return nil, fmt.Errorf("build controller: %w", err)
	}
	e.Controller = ctrl
	// From here the controller closes the worker, cache storage and history.
	e.closers = nil
	return e, nil
}

// newWorker starts the runc worker under root. It also returns the
// directory of the worker's content store, or "" if it is not where
// runc.NewWorkerOpt has always put it (<root>/runc-<snapshotter>/content).
func newWorker(ctx context.Context, root string, opts Options, hosts docker.RegistryHosts) (worker.Worker, string, error) {
	sn, err := snapshotter(root, opts.Snapshotter)
	if err != nil {
		return nil, "", err
	}
	nopt := netproviders.Opt{Mode: "auto"}
	// A nil semaphore is no bound, as in buildkitd.
	var parallelism *semaphore.Weighted
	if opts.MaxParallelism > 0 {
		parallelism = semaphore.NewWeighted(int64(opts.MaxParallelism))
	}
	wopt, err := runc.NewWorkerOpt(root, sn, false, oci.ProcessSandbox, nil, nil, nopt, nil, "", "", false, parallelism, "", "", nil)
	if err != nil {
		return nil, "", fmt.Errorf("runc worker: %w", err)
	}
	contentDir := filepath.Join(root, "runc-"+sn.Name, "content")
	if fi, err := os.Stat(contentDir); err != nil || !fi.IsDir() {
		contentDir = ""
	}
	if opts.GC {
		dstat, _ := disk.GetDiskStat(root)
		wopt.GCPolicy = gcPolicy(opts.GCSpace, opts.GCPolicy, dstat)
	}
	wopt.BuildkitVersion = client.BuildkitVersion{Package: version.Package, Version: version.Version, Revision: version.Revision}
	wopt.RegistryHosts = hosts
	w, err := base.NewWorker(ctx, wopt)
	if err != nil {
		return nil, "", fmt.Errorf("start worker: %w", err)
	}
	return w, contentDir, nil
}

// gcPolicy is the worker's GC policy as buildkitd's getGCPolicy builds it:
// the rules when there are any, else the default policy bounded by space.
func gcPolicy(space config.GCConfig, rules []config.GCPolicy, dstat disk.DiskStat) []client.PruneInfo {
	if len(rules) == 0 {
		rules = config.DefaultGCPolicy(space, dstat)
	}
	var policy []client.PruneInfo
	for _, rule := range rules {
		// KeepBytes is deprecated, but buildkitd still reads it when
		// ReservedSpace is unset.
		if rule.ReservedSpace == (config.DiskSpace{}) && rule.KeepBytes != (config.DiskSpace{}) {
			rule.ReservedSpace = rule.KeepBytes
		}
		policy = append(policy, client.PruneInfo{
			Filter:        rule.Filters,
			All:           rule.All,
			KeepDuration:  rule.KeepDuration.Duration,
			ReservedSpace: rule.ReservedSpace.AsBytes(dstat),
			MaxUsedSpace:  rule.MaxUsedSpace.AsBytes(dstat),
			MinFreeSpace:  rule.MinFreeSpace.AsBytes(dstat),
		})
	}
	return policy
}

// snapshotter picks overlayfs where the root supports it, else native.
func snapshotter(root, name string) (runc.SnapshotterFactory, error) {
	if name == "" || name == "auto" {
		name = "native"
		if err := overlayutils.Supported(root); err == nil {
			name = "overlayfs"
		}
	}
	switch name {
	case "overlayfs":
		return runc.SnapshotterFactory{Name: name, New: func(root string) (ctdsnapshot.Snapshotter, error) {
			return overlay.NewSnapshotter(root, overlay.AsynchronousRemove)
		}}, nil
	case "native":
		return runc.SnapshotterFactory{Name: name, New: native.NewSnapshotter}, nil
	}
	return runc.SnapshotterFactory{}, fmt.Errorf("unknown snapshotter %q: use %s", name, strings.Join(Snapshotters, ", "))
}

// Root is the engine's state directory.
func (e *Engine) Root() string { return e.root }

// Close stops the controller and releases the root.
func (e *Engine) Close() error {
	var errs []error
	if e.Controller != nil {
		errs = append(errs, e.Controller.Close())
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	if e.lock != nil {
		errs = append(errs, e.lock.Unlock())
		e.lock = nil
	}
	return errors.Join(errs...)
}
