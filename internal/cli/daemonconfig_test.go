package cli

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/spf13/pflag"

	"github.com/s3cache/s3cache/engine"
)

// noDefaultConfig points buildkitd's default config path at nothing, so
// that a file on the machine running the tests cannot change them.
func noDefaultConfig(t *testing.T) {
	t.Helper()
	old := defaultConfigPath
	defaultConfigPath = filepath.Join(t.TempDir(), "absent.toml")
	t.Cleanup(func() { defaultConfigPath = old })
}

// writeConfig writes a buildkitd.toml and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "buildkitd.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// daemonWithConfig parses args as the daemon command does, reads the
// config as runDaemon does, and resolves the setup.
func daemonWithConfig(t *testing.T, args ...string) (daemonFlags, daemonSetup, error) {
	t.Helper()
	var f daemonFlags
	fs := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
	addDaemonFlags(fs, &f)
	if err := fs.Parse(args); err != nil {
		return f, daemonSetup{}, err
	}
	if err := f.loadConfig(); err != nil {
		return f, daemonSetup{}, err
	}
	s, err := f.resolve()
	return f, s, err
}

func TestDaemonConfigSupportedKeys(t *testing.T) {
	noDefaultConfig(t)
	gib := func(n int64) config.DiskSpace { return config.DiskSpace{Bytes: n << 30} }
	yes, no := true, false
	tests := []struct {
		name  string
		toml  string
		check func(t *testing.T, f daemonFlags, s daemonSetup)
	}{
		{"empty file keeps the defaults", "", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if f.debug || f.root != engine.DefaultRoot || !slices.Equal(f.addrs, []string{DefaultAddr}) || f.debugAddr != "" || f.tls != (engine.TLSFiles{}) ||
				!s.engine.GC || s.engine.Snapshotter != "auto" || s.engine.Entitlements != nil || s.uid != -1 || s.gid != -1 ||
				!reflect.DeepEqual(s.engine.GCSpace, config.GCConfig{}) || s.engine.GCPolicy != nil || s.engine.MaxParallelism != 0 || s.engine.Registries != nil {
				t.Errorf("flags %+v, setup %+v", f, s)
			}
		}},
		{"debug", "debug = true", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !f.debug {
				t.Error("debug off")
			}
		}},
		{"root", `root = "/srv/buildkit"`, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if f.root != "/srv/buildkit" {
				t.Errorf("root %q", f.root)
			}
		}},
		{"grpc address", "[grpc]\naddress = [\"unix:///run/buildkit/buildkitd.sock\", \"tcp://0.0.0.0:1234\"]", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !slices.Equal(f.addrs, []string{"unix:///run/buildkit/buildkitd.sock", "tcp://0.0.0.0:1234"}) {
				t.Errorf("addrs %q", f.addrs)
			}
		}},
		{"grpc debugAddress", "[grpc]\ndebugAddress = \"127.0.0.1:6060\"", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if f.debugAddr != "127.0.0.1:6060" {
				t.Errorf("debug address %q", f.debugAddr)
			}
		}},
		{"grpc uid and gid", "[grpc]\nuid = 1000\ngid = 1001", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.uid != 1000 || s.gid != 1001 {
				t.Errorf("uid %d gid %d", s.uid, s.gid)
			}
		}},
		{"grpc tls", "[grpc.tls]\ncert = \"/certs/cert.pem\"\nkey = \"/certs/key.pem\"\nca = \"/certs/ca.pem\"", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if want := (engine.TLSFiles{Cert: "/certs/cert.pem", Key: "/certs/key.pem", CA: "/certs/ca.pem"}); f.tls != want {
				t.Errorf("tls %+v, want %+v", f.tls, want)
			}
		}},
		{"insecure-entitlements", `insecure-entitlements = ["network.host", "security.insecure"]`, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !slices.Equal(s.engine.Entitlements, []string{"network.host", "security.insecure"}) {
				t.Errorf("entitlements %q", s.engine.Entitlements)
			}
		}},
		{"oci enabled true", "[worker.oci]\nenabled = true", func(t *testing.T, f daemonFlags, s daemonSetup) {}},
		{"containerd enabled false", "[worker.containerd]\nenabled = false", func(t *testing.T, f daemonFlags, s daemonSetup) {}},
		{"oci rootless and noProcessSandbox false", "[worker.oci]\nrootless = false\nnoProcessSandbox = false", func(t *testing.T, f daemonFlags, s daemonSetup) {}},
		{"oci snapshotter", "[worker.oci]\nsnapshotter = \"native\"", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.engine.Snapshotter != "native" {
				t.Errorf("snapshotter %q", s.engine.Snapshotter)
			}
		}},
		{"oci gc off", "[worker.oci]\ngc = false", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.engine.GC {
				t.Error("GC on")
			}
		}},
		{"oci gckeepstorage", "[worker.oci]\ngckeepstorage = \"10GB\"", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if want := (config.GCConfig{GCKeepStorage: gib(10)}); !reflect.DeepEqual(s.engine.GCSpace, want) {
				t.Errorf("space %+v, want %+v", s.engine.GCSpace, want)
			}
		}},
		{"oci space", "[worker.oci]\nreservedSpace = \"20%\"\nmaxUsedSpace = \"100GB\"\nminFreeSpace = \"5GB\"", func(t *testing.T, f daemonFlags, s daemonSetup) {
			want := config.GCConfig{GCReservedSpace: config.DiskSpace{Percentage: 20}, GCMaxUsedSpace: gib(100), GCMinFreeSpace: gib(5)}
			if !reflect.DeepEqual(s.engine.GCSpace, want) {
				t.Errorf("space %+v, want %+v", s.engine.GCSpace, want)
			}
		}},
		{"oci gcpolicy", `
[[worker.oci.gcpolicy]]
filters = ["type==source.local", "type==exec.cachemount"]
keepDuration = "48h"
keepBytes = "512MB"
[[worker.oci.gcpolicy]]
all = true
reservedSpace = "10GB"
maxUsedSpace = "50%"
minFreeSpace = "1GB"
`, func(t *testing.T, f daemonFlags, s daemonSetup) {
			want := []config.GCPolicy{
				{Filters: []string{"type==source.local", "type==exec.cachemount"}, KeepDuration: config.Duration{Duration: 48 * time.Hour}, KeepBytes: config.DiskSpace{Bytes: 512 << 20}},
				{All: true, ReservedSpace: gib(10), MaxUsedSpace: config.DiskSpace{Percentage: 50}, MinFreeSpace: gib(1)},
			}
			if !reflect.DeepEqual(s.engine.GCPolicy, want) {
				t.Errorf("policy %+v, want %+v", s.engine.GCPolicy, want)
			}
		}},
		{"oci max-parallelism", "[worker.oci]\nmax-parallelism = 4", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.engine.MaxParallelism != 4 {
				t.Errorf("max parallelism %d", s.engine.MaxParallelism)
			}
		}},
		{"registry", `
[registry."docker.io"]
mirrors = ["mirror.example:5000"]
[registry."mirror.example:5000"]
http = true
insecure = true
ca = ["/etc/certs/ca.pem"]
tlsconfigdir = ["/etc/certs.d"]
[[registry."mirror.example:5000".keypair]]
key = "/etc/certs/client.key"
cert = "/etc/certs/client.pem"
`, func(t *testing.T, f daemonFlags, s daemonSetup) {
			want := map[string]resolverconfig.RegistryConfig{
				"docker.io": {Mirrors: []string{"mirror.example:5000"}},
				"mirror.example:5000": {PlainHTTP: &yes, Insecure: &yes, RootCAs: []string{"/etc/certs/ca.pem"}, TLSConfigDir: []string{"/etc/certs.d"},
					KeyPairs: []resolverconfig.TLSKeyPair{{Key: "/etc/certs/client.key", Certificate: "/etc/certs/client.pem"}}},
			}
			if !reflect.DeepEqual(s.engine.Registries, want) {
				t.Errorf("registries %+v, want %+v", s.engine.Registries, want)
			}
		}},
		{"registry http false", "[registry.\"r.example\"]\nhttp = false", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if got := s.engine.Registries["r.example"].PlainHTTP; got == nil || *got != no {
				t.Errorf("http %v", got)
			}
		}},
		{"keys in any case, as buildkitd's decoder", "Debug = true\n[GRPC]\nAddress = [\"tcp://127.0.0.1:1\"]", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !f.debug || !slices.Equal(f.addrs, []string{"tcp://127.0.0.1:1"}) {
				t.Errorf("debug %v addrs %q", f.debug, f.addrs)
			}
		}},
		{"dotted keys", "worker.oci.gc = false", func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.engine.GC {
				t.Error("GC on")
			}
		}},
		{"empty tables", "[worker.oci]\n[grpc.tls]\n[registry.\"docker.io\"]", func(t *testing.T, f daemonFlags, s daemonSetup) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, s, err := daemonWithConfig(t, "--config", writeConfig(t, tt.toml))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f, s)
		})
	}
}

func TestDaemonConfigRefusesUnsupportedKeys(t *testing.T) {
	noDefaultConfig(t)
	tests := []struct {
		toml string
		want string // the error after the file name
	}{
		{"[worker.containerd]\nenabled = true", "[worker.containerd] enabled: not supported: s3cache daemon runs the OCI (runc) worker only"},
		{"[worker.containerd]\naddress = \"/run/containerd/containerd.sock\"", "[worker.containerd] address: not supported: s3cache daemon runs the OCI (runc) worker only"},
		{"[worker.containerd]\n[worker.containerd.runtime]\nname = \"io.containerd.runc.v2\"", "[worker.containerd] runtime: not supported: s3cache daemon runs the OCI (runc) worker only"},
		{"[worker.oci]\nenabled = false", "[worker.oci] enabled: not supported: the OCI (runc) worker is s3cache daemon's only worker"},
		{"[worker.oci]\nrootless = true", "[worker.oci] rootless: not supported: s3cache daemon runs as root"},
		{"[worker.oci]\nnoProcessSandbox = true", "[worker.oci] noProcessSandbox: not supported: it needs rootless mode"},
		{"[worker.oci]\nbinary = \"crun\"", "[worker.oci] binary: not supported by s3cache daemon"},
		{"[worker.oci]\nplatforms = [\"linux/amd64\"]", "[worker.oci] platforms: not supported"},
		{"[worker.oci.labels]\nfoo = \"bar\"", "[worker.oci] labels: not supported"},
		{"[worker.oci]\nnetworkMode = \"host\"", "[worker.oci] networkMode: not supported"},
		{"[worker.oci]\ncniConfigPath = \"/etc/cni.json\"", "[worker.oci] cniConfigPath: not supported"},
		{"[worker.oci]\ncniBinaryPath = \"/opt/cni/bin\"", "[worker.oci] cniBinaryPath: not supported"},
		{"[worker.oci]\ncniPoolSize = 4", "[worker.oci] cniPoolSize: not supported"},
		{"[worker.oci]\nbridgeName = \"br0\"", "[worker.oci] bridgeName: not supported"},
		{"[worker.oci]\nbridgeSubnet = \"10.10.0.0/16\"", "[worker.oci] bridgeSubnet: not supported"},
		{"[worker.oci]\napparmor-profile = \"buildkit\"", "[worker.oci] apparmor-profile: not supported"},
		{"[worker.oci]\nselinux = true", "[worker.oci] selinux: not supported"},
		{"[worker.oci]\nproxySnapshotterPath = \"/run/snap.sock\"", "[worker.oci] proxySnapshotterPath: not supported"},
		{"[worker.oci]\ndefaultCgroupParent = \"buildkit\"", "[worker.oci] defaultCgroupParent: not supported"},
		{"[worker.oci]\nuserRemapUnsupported = \"user\"", "[worker.oci] userRemapUnsupported: not supported"},
		{"[worker.oci.stargzSnapshotter]\nipfs = true", "[worker.oci] stargzSnapshotter: not supported"},
		{"[worker.oci]\nsnapshotter = \"stargz\"", `[worker.oci] snapshotter "stargz": not supported by s3cache's runc worker, use auto, overlayfs, native`},
		{"[worker.oci]\nmax-parallelism = -1", "[worker.oci] max-parallelism -1: want 0 (no bound) or more"},
		{"[otel]\nsocketPath = \"/run/otel.sock\"", "[otel]: not supported by s3cache daemon"},
		{"[cdi]\ndisabled = true", "[cdi]: not supported"},
		{"[history]\nmaxAge = \"48h\"", "[history]: not supported"},
		{"[dns]\nnameservers = [\"1.1.1.1\"]", "[dns]: not supported"},
		{"[frontend.\"dockerfile.v0\"]\nenabled = true", "[frontend]: not supported"},
		{"[system]\nplatformsCacheMaxAge = \"1h\"", "[system]: not supported"},
		{"[log]\nlevel = \"debug\"", "[log]: not supported"},
		{"[cache.gha]\nurl = \"x\"", "[cache]: not supported"},
		{"trace = true", "trace: not supported"},
		{"proxyNetwork = true", "proxyNetwork: not supported"},
		{"provenanceEnvDir = \"/etc/p\"", "provenanceEnvDir: not supported"},
		{"[grpc]\nsecurityDescriptor = \"x\"", "[grpc] securityDescriptor: not supported"},
		{"[grpc]\naddress = [\"fd://\"]", `[grpc] address "fd://": not supported: use unix:///path or tcp://host:port`},
		{"[grpc]\nuid = -1", "[grpc] uid -1: negative user id"},
		{`insecure-entitlements = ["network.none"]`, `insecure-entitlements "network.none": unknown entitlement`},
		// Keys buildkitd does not define either are refused as unknown.
		{"mystery = 1", "mystery: unknown key (buildkitd does not define it either)"},
		{"[worker.oci]\nmax_parallelism = 2", "[worker.oci] max_parallelism: unknown key"},
		{"[[worker.oci.gcpolicy]]\nall = true\nkeepSpace = \"1GB\"", "[[worker.oci.gcpolicy]] keepSpace: unknown key"},
		{"[registry.\"docker.io\"]\nmirror = [\"m\"]", `[registry."docker.io"] mirror: unknown key`},
		{"[[registry.\"docker.io\".keypair]]\nkey = \"k\"\ncrt = \"c\"", `[[registry."docker.io".keypair]] crt: unknown key`},
		// Every refused key is named, the first with its reason.
		{"trace = true\n[otel]\nsocketPath = \"x\"\n[[worker.oci.gcpolicy]]\nfoo = 1\n[[worker.oci.gcpolicy]]\nfoo = 2",
			"[otel]: not supported by s3cache daemon; also refused: trace, [[worker.oci.gcpolicy]] foo"},
	}
	for _, tt := range tests {
		name, _, _ := strings.Cut(tt.want, ":")
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, tt.toml)
			_, _, err := daemonWithConfig(t, "--config", path)
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.toml)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, path+": "+tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line starting %q", msg, path+": "+tt.want)
			}
		})
	}
}

func TestDaemonConfigFlagsWin(t *testing.T) {
	noDefaultConfig(t)
	mb := func(n int64) config.DiskSpace { return config.DiskSpace{Bytes: n * 1e6} }
	file := writeConfig(t, `
debug = true
root = "/from/file"
insecure-entitlements = ["network.host"]
[grpc]
address = ["tcp://127.0.0.1:1111"]
debugAddress = "127.0.0.1:6060"
gid = 1
[grpc.tls]
cert = "file-cert.pem"
key = "file-key.pem"
ca = "file-ca.pem"
[worker.oci]
snapshotter = "overlayfs"
gc = false
gckeepstorage = "1GB"
reservedSpace = "2GB"
minFreeSpace = "3GB"
maxUsedSpace = "4GB"
`)
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, f daemonFlags, s daemonSetup)
	}{
		{"--debug=false", []string{"--debug=false"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if f.debug {
				t.Error("debug on")
			}
		}},
		{"--root", []string{"--root", "/from/flag"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if f.root != "/from/flag" {
				t.Errorf("root %q", f.root)
			}
		}},
		{"--addr", []string{"--addr", "unix:///from/flag.sock"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !slices.Equal(f.addrs, []string{"unix:///from/flag.sock"}) {
				t.Errorf("addrs %q", f.addrs)
			}
		}},
		{"--debugaddr", []string{"--debugaddr", "127.0.0.1:7070"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if f.debugAddr != "127.0.0.1:7070" {
				t.Errorf("debug address %q", f.debugAddr)
			}
		}},
		{"--group", []string{"--group", "4242"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.gid != 4242 {
				t.Errorf("gid %d", s.gid)
			}
		}},
		{"--tlscert and --tlscacert", []string{"--tlscert", "flag-cert.pem", "--tlscacert", "flag-ca.pem"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if want := (engine.TLSFiles{Cert: "flag-cert.pem", Key: "file-key.pem", CA: "flag-ca.pem"}); f.tls != want {
				t.Errorf("tls %+v, want %+v", f.tls, want)
			}
		}},
		{"--allow-insecure-entitlement", []string{"--allow-insecure-entitlement", "security.insecure"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !slices.Equal(s.engine.Entitlements, []string{"security.insecure"}) {
				t.Errorf("entitlements %q", s.engine.Entitlements)
			}
		}},
		{"--snapshotter", []string{"--snapshotter", "native"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.engine.Snapshotter != "native" {
				t.Errorf("snapshotter %q", s.engine.Snapshotter)
			}
		}},
		{"--oci-worker-snapshotter", []string{"--oci-worker-snapshotter", "native"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if s.engine.Snapshotter != "native" {
				t.Errorf("snapshotter %q", s.engine.Snapshotter)
			}
		}},
		{"--oci-worker-gc", []string{"--oci-worker-gc"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !s.engine.GC {
				t.Error("GC off")
			}
		}},
		{"--oci-worker-gc-keepstorage", []string{"--oci-worker-gc-keepstorage", "5000"}, func(t *testing.T, f daemonFlags, s daemonSetup) {
			// As buildkitd: the flag's fields replace the file's; the
			// deprecated gckeepstorage stays.
			want := config.GCConfig{GCKeepStorage: config.DiskSpace{Bytes: 1 << 30}, GCReservedSpace: mb(5000)}
			if !reflect.DeepEqual(s.engine.GCSpace, want) {
				t.Errorf("space %+v, want %+v", s.engine.GCSpace, want)
			}
		}},
		{"no flags: the file's", nil, func(t *testing.T, f daemonFlags, s daemonSetup) {
			if !f.debug || f.root != "/from/file" || !slices.Equal(f.addrs, []string{"tcp://127.0.0.1:1111"}) || f.debugAddr != "127.0.0.1:6060" ||
				s.gid != 1 || f.tls.Cert != "file-cert.pem" || !slices.Equal(s.engine.Entitlements, []string{"network.host"}) ||
				s.engine.Snapshotter != "overlayfs" || s.engine.GC || s.engine.GCSpace.GCReservedSpace != (config.DiskSpace{Bytes: 2 << 30}) {
				t.Errorf("flags %+v, setup %+v", f, s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, s, err := daemonWithConfig(t, append([]string{"--config", file}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f, s)
		})
	}
}

func TestDaemonConfigFile(t *testing.T) {
	t.Run("malformed", func(t *testing.T) {
		noDefaultConfig(t)
		for _, body := range []string{"root = \n", "[worker.oci\n", "[worker.oci]\ngc = \"yes\"\n", "[grpc]\naddress = \"tcp://:1\"\n"} {
			path := writeConfig(t, body)
			_, _, err := daemonWithConfig(t, "--config", path)
			if err == nil || !strings.HasPrefix(err.Error(), path+":") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: error %v, want one line naming %s", body, err, path)
			}
		}
	})
	t.Run("line and column", func(t *testing.T) {
		noDefaultConfig(t)
		path := writeConfig(t, "debug = true\nroot = \n")
		if _, _, err := daemonWithConfig(t, "--config", path); err == nil || !strings.HasPrefix(err.Error(), path+":2:") {
			t.Errorf("error %v, want it at %s:2:", err, path)
		}
	})
	t.Run("missing --config", func(t *testing.T) {
		noDefaultConfig(t)
		path := filepath.Join(t.TempDir(), "nope.toml")
		if _, _, err := daemonWithConfig(t, "--config", path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want one naming %s", err, path)
		}
	})
	t.Run("default path read when it exists", func(t *testing.T) {
		old := defaultConfigPath
		defer func() { defaultConfigPath = old }()
		defaultConfigPath = writeConfig(t, `root = "/from/default"`)
		f, _, err := daemonWithConfig(t)
		if err != nil || f.root != "/from/default" {
			t.Errorf("root %q, %v", f.root, err)
		}
		// --config names another file instead; --config "" none.
		f, _, err = daemonWithConfig(t, "--config", writeConfig(t, `root = "/from/flag"`))
		if err != nil || f.root != "/from/flag" {
			t.Errorf("root %q, %v", f.root, err)
		}
		f, _, err = daemonWithConfig(t, "--config=")
		if err != nil || f.root != engine.DefaultRoot {
			t.Errorf("root %q, %v", f.root, err)
		}
		defaultConfigPath = writeConfig(t, "[otel]\nsocketPath = \"x\"")
		if _, _, err := daemonWithConfig(t); err == nil || !strings.HasPrefix(err.Error(), defaultConfigPath+": [otel]") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("default path absent", func(t *testing.T) {
		noDefaultConfig(t)
		if f, _, err := daemonWithConfig(t); err != nil || f.root != engine.DefaultRoot {
			t.Errorf("root %q, %v", f.root, err)
		}
	})
	t.Run("the daemon command refuses it", func(t *testing.T) {
		noDefaultConfig(t)
		path := writeConfig(t, "[worker.containerd]\nenabled = true")
		if got := Main(t.Context(), []string{"daemon", "--config", path}); got != 1 {
			t.Errorf("exit %d, want 1", got)
		}
	})
}

func TestSetSocketOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stat := func() (uint32, uint32) {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid, st.Gid
	}
	uid0, _ := stat()
	if err := setSocketOwner("unix://"+path, -1, 4321); err != nil {
		t.Fatal(err)
	}
	if u, g := stat(); u != uid0 || g != 4321 {
		t.Errorf("owner %d:%d, want %d:4321", u, g, uid0)
	}
	if err := setSocketOwner("unix://"+path, 1234, -1); err != nil {
		t.Fatal(err)
	}
	if u, g := stat(); u != 1234 || g != 4321 {
		t.Errorf("owner %d:%d, want 1234:4321", u, g)
	}
	if err := setSocketOwner("tcp://127.0.0.1:1", 1, 1); err != nil {
		t.Errorf("tcp address: %v", err)
	}
}
