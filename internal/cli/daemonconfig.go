package cli

// buildkitd.toml for `s3cache daemon --config`, read with buildkitd's own
// parser and meaning. Every key the file defines is checked against the
// keys the daemon honours, so that a setting it cannot apply is refused by
// name instead of silently dropped (buildkitd itself ignores unknown keys).

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/pelletier/go-toml/v2"

	"github.com/s3cache/s3cache/engine"
)

// defaultConfigPath is where buildkitd (as root) reads its configuration
// when --config is not given; a variable so that tests can move it.
var defaultConfigPath = "/etc/buildkit/buildkitd.toml"

// fileSettings are the buildkitd.toml settings that no flag expresses; the
// others are merged into the flags' fields.
type fileSettings struct {
	uid            *int
	gcSpace        config.GCConfig // gckeepstorage, reservedSpace, maxUsedSpace, minFreeSpace
	gcPolicy       []config.GCPolicy
	maxParallelism int
	registries     map[string]resolverconfig.RegistryConfig
}

// changed reports whether a flag was given on the command line, as
// buildkitd's IsSet: such a flag wins over the file.
func (f *daemonFlags) changed(name string) bool {
	return f.flagSet != nil && f.flagSet.Changed(name)
}

// loadConfig reads --config, or buildkitd's default file when --config is
// not given and that file exists, into f. An explicit --config that does
// not exist is an error (buildkitd would start without it: a typo in a
// path should not go unnoticed); --config "" reads no file.
func (f *daemonFlags) loadConfig() error {
	path := f.configFile
	if !f.changed("config") {
		if _, err := os.Stat(defaultConfigPath); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		path = defaultConfigPath
	}
	if path == "" {
		return nil
	}
	cfg, err := readBuildkitdConfig(path)
	if err != nil {
		return err
	}
	if err := f.mergeConfig(cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readBuildkitdConfig parses path with buildkitd's parser and refuses the
// keys the daemon does not honour.
func readBuildkitdConfig(path string) (config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config.Config{}, fmt.Errorf("buildkitd config: %w", err)
	}
	cfg, err := config.Load(bytes.NewReader(data))
	if err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return cfg, fmt.Errorf("%s:%d:%d: %w", path, row, col, err)
		}
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkConfigKeys(data); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// mergeConfig puts cfg into f where no flag was given, as buildkitd's
// applyMainFlags and applyOCIFlags do, and checks the values the engine
// cannot take, naming their key.
func (f *daemonFlags) mergeConfig(cfg config.Config) error {
	// debug is deprecated in buildkitd for [log] level, but still honoured.
	if !f.changed("debug") && cfg.Debug {
		f.debug = true
	}
	if !f.changed("root") && cfg.Root != "" {
		f.root = cfg.Root
	}
	for _, addr := range cfg.GRPC.Address {
		if !strings.HasPrefix(addr, "unix://") && !strings.HasPrefix(addr, "tcp://") {
			return fmt.Errorf("[grpc] address %q: not supported: use unix:///path or tcp://host:port", addr)
		}
	}
	if !f.changed("addr") && len(cfg.GRPC.Address) > 0 {
		f.addrs = cfg.GRPC.Address
	}
	if !f.changed("debugaddr") && cfg.GRPC.DebugAddress != "" {
		f.debugAddr = cfg.GRPC.DebugAddress
	}
	if u := cfg.GRPC.UID; u != nil {
		if *u < 0 {
			return fmt.Errorf("[grpc] uid %d: negative user id", *u)
		}
		f.file.uid = u
	}
	if g := cfg.GRPC.GID; g != nil {
		if *g < 0 {
			return fmt.Errorf("[grpc] gid %d: negative group id", *g)
		}
		if !f.changed("group") {
			f.group = strconv.Itoa(*g)
		}
	}
	// buildkitd: a non-empty TLS flag replaces the file's.
	if !f.changed("tlscert") && cfg.GRPC.TLS.Cert != "" {
		f.tls.Cert = cfg.GRPC.TLS.Cert
	}
	if !f.changed("tlskey") && cfg.GRPC.TLS.Key != "" {
		f.tls.Key = cfg.GRPC.TLS.Key
	}
	if !f.changed("tlscacert") && cfg.GRPC.TLS.CA != "" {
		f.tls.CA = cfg.GRPC.TLS.CA
	}
	for _, ent := range cfg.Entitlements {
		if !slices.Contains(engine.Entitlements, ent) {
			return fmt.Errorf("insecure-entitlements %q: unknown entitlement, use %s", ent, strings.Join(engine.Entitlements, ", "))
		}
	}
	if !f.changed("allow-insecure-entitlement") && cfg.Entitlements != nil {
		f.entitlements = cfg.Entitlements
	}

	oci := cfg.Workers.OCI
	if sn := oci.Snapshotter; sn != "" {
		if !slices.Contains(engine.Snapshotters, sn) {
			return fmt.Errorf("[worker.oci] snapshotter %q: not supported by s3cache's runc worker, use %s", sn, strings.Join(engine.Snapshotters, ", "))
		}
		if !f.changed("snapshotter") && !f.changed("oci-worker-snapshotter") {
			f.snapshotter = sn
		}
	}
	if !f.changed("oci-worker-gc") && oci.GC != nil {
		f.gc = *oci.GC
	}
	f.file.gcSpace = config.GCConfig{
		GCKeepStorage:   oci.GCKeepStorage, // deprecated, but buildkitd still reads it
		GCReservedSpace: oci.GCReservedSpace,
		GCMaxUsedSpace:  oci.GCMaxUsedSpace,
		GCMinFreeSpace:  oci.GCMinFreeSpace,
	}
	f.file.gcPolicy = oci.GCPolicy
	if oci.MaxParallelism < 0 {
		return fmt.Errorf("[worker.oci] max-parallelism %d: want 0 (no bound) or more", oci.MaxParallelism)
	}
	f.file.maxParallelism = oci.MaxParallelism
	f.file.registries = cfg.Registries
	return nil
}

// applyFile adds to s what only the file sets; flags were merged already.
// A --oci-worker-gc-keepstorage flag replaces the file's reservedSpace,
// minFreeSpace and maxUsedSpace, as in buildkitd.
func (f daemonFlags) applyFile(s daemonSetup) (daemonSetup, error) {
	s.uid = -1
	if f.file.uid != nil {
		s.uid = *f.file.uid
	}
	space := f.file.gcSpace
	if f.gcKeepStorage != "" {
		space.GCReservedSpace = s.engine.GCSpace.GCReservedSpace
		space.GCMinFreeSpace = s.engine.GCSpace.GCMinFreeSpace
		space.GCMaxUsedSpace = s.engine.GCSpace.GCMaxUsedSpace
	}
	s.engine.GCSpace = space
	s.engine.GCPolicy = f.file.gcPolicy
	s.engine.MaxParallelism = f.file.maxParallelism
	s.engine.Registries = f.file.registries
	return s, nil
}

// setSocketOwner gives a unix socket to uid and gid (mode 0660 stays), as
// buildkitd's [grpc] uid and gid and --group do; -1 leaves either alone.
func setSocketOwner(addr string, uid, gid int) error {
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok || (uid < 0 && gid < 0) {
		return nil
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("set owner of %s: %w", addr, err)
	}
	return nil
}

// configKeys are the buildkitd.toml keys the daemon honours, as dotted
// paths; "*" is any one name (a registry host). Matching ignores case, as
// buildkitd's decoder does.
var configKeys = []string{
	"debug",
	"root",
	"insecure-entitlements",
	"grpc.address",
	"grpc.debugAddress",
	"grpc.uid",
	"grpc.gid",
	"grpc.tls.cert",
	"grpc.tls.key",
	"grpc.tls.ca",
	"worker.oci.enabled", // true only: see configValues
	"worker.oci.snapshotter",
	"worker.oci.gc",
	"worker.oci.gckeepstorage",
	"worker.oci.reservedSpace",
	"worker.oci.maxUsedSpace",
	"worker.oci.minFreeSpace",
	"worker.oci.max-parallelism",
	"worker.oci.gcpolicy",
	"worker.oci.gcpolicy.all",
	"worker.oci.gcpolicy.filters",
	"worker.oci.gcpolicy.keepDuration",
	"worker.oci.gcpolicy.keepBytes",
	"worker.oci.gcpolicy.reservedSpace",
	"worker.oci.gcpolicy.maxUsedSpace",
	"worker.oci.gcpolicy.minFreeSpace",
	"worker.oci.rootless",         // false only
	"worker.oci.noProcessSandbox", // false only
	"worker.containerd.enabled",   // false only
	"registry.*.mirrors",
	"registry.*.http",
	"registry.*.insecure",
	"registry.*.ca",
	"registry.*.keypair",
	"registry.*.keypair.key",
	"registry.*.keypair.cert",
	"registry.*.tlsconfigdir",
}

// configValues are keys accepted with one value only: the one that says
// what the daemon does anyway.
var configValues = map[string]any{
	"worker.oci.enabled":          true,
	"worker.oci.rootless":         false,
	"worker.oci.noProcessSandbox": false,
	"worker.containerd.enabled":   false,
}

// configReasons say why a key (or the table holding it) is refused; the
// longest matching prefix wins.
var configReasons = map[string]string{
	"worker.containerd":           "s3cache daemon runs the OCI (runc) worker only",
	"worker.oci.enabled":          "the OCI (runc) worker is s3cache daemon's only worker; remove the key or set it true",
	"worker.oci.rootless":         "s3cache daemon runs as root, not rootless",
	"worker.oci.noProcessSandbox": "it needs rootless mode, which s3cache daemon does not run (buildkitd refuses it without rootless too)",
}

// configRefusal is one key the daemon cannot honour.
type configRefusal struct {
	key    string // as written in TOML: "[worker.oci] rootless"
	reason string
}

// checkConfigKeys lists every key data defines and refuses, in one line,
// those the daemon does not honour: the first by name and reason, then the
// names of the others.
func checkConfigKeys(data []byte) error {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return err
	}
	// Keys buildkitd does not define at all (typos) are told apart.
	unknown := map[string]bool{}
	var strict *toml.StrictMissingError
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&config.Config{}); errors.As(err, &strict) {
		for _, e := range strict.Errors {
			unknown[strings.ToLower(strings.Join(e.Key(), "\x00"))] = true
		}
	}
	var refused []configRefusal
	walkConfig(nil, doc, false, unknown, &refused)
	if len(refused) == 0 {
		return nil
	}
	msg := refused[0].key + ": " + refused[0].reason
	// Each [[...]] element repeats its keys: name each once.
	seen := map[string]bool{refused[0].key: true}
	var others []string
	for _, r := range refused[1:] {
		if !seen[r.key] {
			seen[r.key] = true
			others = append(others, r.key)
		}
	}
	if len(others) > 0 {
		msg += "; also refused: " + strings.Join(others, ", ")
	}
	return errors.New(msg)
}

// walkConfig visits the table t at path in key order; inArray says t is an
// element of an array of tables ([[...]]).
func walkConfig(path []string, t map[string]any, inArray bool, unknown map[string]bool, out *[]configRefusal) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := append(slices.Clone(path), k)
		refuse := func() {
			reason := "not supported by s3cache daemon"
			if unknown[strings.ToLower(strings.Join(p, "\x00"))] {
				reason = "unknown key (buildkitd does not define it either)"
			} else if r := configReason(p); r != "" {
				reason = "not supported: " + r
			}
			*out = append(*out, configRefusal{key: configKeyName(path, k, inArray, t[k]), reason: reason})
		}
		switch v := t[k].(type) {
		case map[string]any:
			if !configPrefix(p) {
				refuse()
				continue
			}
			walkConfig(p, v, false, unknown, out)
		case []any:
			if len(v) > 0 && allTables(v) {
				if !configPrefix(p) {
					refuse()
					continue
				}
				for _, e := range v {
					walkConfig(p, e.(map[string]any), true, unknown, out)
				}
				continue
			}
			if !configKey(p) {
				refuse()
			}
		default:
			want, only := configValues[configPattern(p)]
			if !configKey(p) || (only && v != want) {
				refuse()
			}
		}
	}
}

func allTables(v []any) bool {
	for _, e := range v {
		if _, ok := e.(map[string]any); !ok {
			return false
		}
	}
	return true
}

// configPattern is the entry of configKeys that p matches, or "".
func configPattern(p []string) string {
	for _, k := range configKeys {
		if matchConfigPath(strings.Split(k, "."), p) {
			return k
		}
	}
	return ""
}

func configKey(p []string) bool { return configPattern(p) != "" }

// configPrefix reports whether some honoured key lies under the table p.
func configPrefix(p []string) bool {
	for _, k := range configKeys {
		pat := strings.Split(k, ".")
		if len(pat) > len(p) && matchConfigPath(pat[:len(p)], p) {
			return true
		}
	}
	return false
}

func matchConfigPath(pat, p []string) bool {
	if len(pat) != len(p) {
		return false
	}
	for i := range pat {
		if pat[i] != "*" && !strings.EqualFold(pat[i], p[i]) {
			return false
		}
	}
	return true
}

func configReason(p []string) string {
	best, reason := -1, ""
	for prefix, r := range configReasons {
		pat := strings.Split(prefix, ".")
		if len(pat) <= len(p) && len(pat) > best && matchConfigPath(pat, p[:len(pat)]) {
			best, reason = len(pat), r
		}
	}
	return reason
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// configKeyName writes the key k of the table at path as a TOML file
// shows it: `debug`, `[otel]`, `[worker.oci] rootless`,
// `[registry."docker.io"] mirrors`, `[[worker.oci.gcpolicy]] keep`.
func configKeyName(path []string, k string, inArray bool, v any) string {
	quote := func(s string) string {
		if bareKey.MatchString(s) {
			return s
		}
		return strconv.Quote(s)
	}
	if len(path) == 0 {
		if _, table := v.(map[string]any); table {
			return "[" + quote(k) + "]"
		}
		return quote(k)
	}
	var parts []string
	for _, s := range path {
		parts = append(parts, quote(s))
	}
	table := "[" + strings.Join(parts, ".") + "]"
	if inArray {
		table = "[" + table + "]"
	}
	return table + " " + quote(k)
}
