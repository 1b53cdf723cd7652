package cli

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/spf13/pflag"

	"github.com/s3cache/s3cache/engine"
)

func TestDaemonStartupWarnings(t *testing.T) {
	tlsFull := engine.TLSFiles{Cert: "c", Key: "k", CA: "ca"}
	tests := []struct {
		name  string
		flags daemonFlags
		want  []string // substrings, one per warning, in order
	}{
		{"unix socket", daemonFlags{addrs: []string{DefaultAddr}}, nil},
		{"tcp without tls", daemonFlags{addrs: []string{"tcp://0.0.0.0:1234"}}, []string{"tcp://0.0.0.0:1234 serves plain TCP without TLS"}},
		{"tcp loopback without tls", daemonFlags{addrs: []string{"tcp://127.0.0.1:1234"}}, []string{"without TLS"}},
		{"tls without ca", daemonFlags{addrs: []string{"tcp://:1234"}, tls: engine.TLSFiles{Cert: "c", Key: "k"}}, []string{"without --tlscacert"}},
		{"mutual tls", daemonFlags{addrs: []string{"tcp://:1234"}, tls: tlsFull}, nil},
		{"debug on loopback", daemonFlags{debugAddr: "127.0.0.1:6060"}, nil},
		{"debug on localhost", daemonFlags{debugAddr: "localhost:6060"}, nil},
		{"debug on ipv6 loopback", daemonFlags{debugAddr: "[::1]:6060"}, nil},
		{"debug on every interface", daemonFlags{debugAddr: ":6060"}, []string{"--debugaddr :6060 is not a loopback address"}},
		{"debug on a name", daemonFlags{debugAddr: "build-host:6060"}, []string{"--debugaddr build-host:6060"}},
		{"both", daemonFlags{addrs: []string{DefaultAddr, "tcp://:1"}, debugAddr: "0.0.0.0:6060"}, []string{"tcp://:1", "--debugaddr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := startupWarnings(tt.flags)
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) || strings.Contains(got[i], "\n") {
					t.Errorf("warning %d = %q, want one line containing %q", i, got[i], w)
				}
			}
		})
	}
}

func TestDaemonRefusesABadPolicy(t *testing.T) {
	for _, args := range [][]string{
		{"daemon", "--s3-allow-endpoint", "minio:9000"},
		{"daemon", "--s3-allow-bucket", "ci-["},
	} {
		if got := Main(t.Context(), args); got != 1 {
			t.Errorf("s3cache %v exited %d, want 1", args, got)
		}
	}
}

// parseDaemon parses args as the daemon command does and resolves them.
func parseDaemon(t *testing.T, args ...string) (daemonSetup, error) {
	t.Helper()
	var f daemonFlags
	fs := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
	addDaemonFlags(fs, &f)
	if err := fs.Parse(args); err != nil {
		return daemonSetup{}, err
	}
	return f.resolve()
}

func TestDaemonBuildkitdFlags(t *testing.T) {
	mb := func(n int64) config.DiskSpace { return config.DiskSpace{Bytes: n * 1e6} }
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, s daemonSetup)
	}{
		{"defaults", nil, func(t *testing.T, s daemonSetup) {
			if !s.engine.GC || s.engine.Snapshotter != "auto" || s.engine.Entitlements != nil || s.gid != -1 ||
				!reflect.DeepEqual(s.engine.GCSpace, config.GCConfig{}) {
				t.Errorf("setup %+v", s)
			}
		}},
		{"entitlements repeated", []string{"--allow-insecure-entitlement", "network.host", "--allow-insecure-entitlement=security.insecure", "--allow-insecure-entitlement", "device"},
			func(t *testing.T, s daemonSetup) {
				if !slices.Equal(s.engine.Entitlements, []string{"network.host", "security.insecure", "device"}) {
					t.Errorf("entitlements %q", s.engine.Entitlements)
				}
			}},
		{"entitlements comma and duplicate", []string{"--allow-insecure-entitlement=network.host,security.insecure", "--allow-insecure-entitlement=network.host"},
			func(t *testing.T, s daemonSetup) {
				if !slices.Equal(s.engine.Entitlements, []string{"network.host", "security.insecure"}) {
					t.Errorf("entitlements %q", s.engine.Entitlements)
				}
			}},
		{"gc off", []string{"--oci-worker-gc=false"}, func(t *testing.T, s daemonSetup) {
			if s.engine.GC {
				t.Error("GC still on")
			}
		}},
		{"keepstorage reserved", []string{"--oci-worker-gc-keepstorage", "20000"}, func(t *testing.T, s daemonSetup) {
			if !reflect.DeepEqual(s.engine.GCSpace, config.GCConfig{GCReservedSpace: mb(20000)}) {
				t.Errorf("space %+v", s.engine.GCSpace)
			}
		}},
		{"keepstorage all three", []string{"--oci-worker-gc-keepstorage=1000,2000,3000"}, func(t *testing.T, s daemonSetup) {
			want := config.GCConfig{GCReservedSpace: mb(1000), GCMinFreeSpace: mb(2000), GCMaxUsedSpace: mb(3000)}
			if !reflect.DeepEqual(s.engine.GCSpace, want) {
				t.Errorf("space %+v, want %+v", s.engine.GCSpace, want)
			}
		}},
		{"oci snapshotter overlayfs", []string{"--oci-worker-snapshotter", "overlayfs"}, func(t *testing.T, s daemonSetup) {
			if s.engine.Snapshotter != "overlayfs" {
				t.Errorf("snapshotter %q", s.engine.Snapshotter)
			}
		}},
		{"oci snapshotter auto", []string{"--oci-worker-snapshotter=auto"}, func(t *testing.T, s daemonSetup) {
			if s.engine.Snapshotter != "auto" {
				t.Errorf("snapshotter %q", s.engine.Snapshotter)
			}
		}},
		{"oci snapshotter native", []string{"--oci-worker-snapshotter=native"}, func(t *testing.T, s daemonSetup) {
			if s.engine.Snapshotter != "native" {
				t.Errorf("snapshotter %q", s.engine.Snapshotter)
			}
		}},
		{"both snapshotter flags agree", []string{"--snapshotter=native", "--oci-worker-snapshotter=native"}, func(t *testing.T, s daemonSetup) {
			if s.engine.Snapshotter != "native" {
				t.Errorf("snapshotter %q", s.engine.Snapshotter)
			}
		}},
		{"no process sandbox off", []string{"--oci-worker-no-process-sandbox=false"}, func(t *testing.T, s daemonSetup) {}},
		{"group by id", []string{"--group", "4242"}, func(t *testing.T, s daemonSetup) {
			if s.gid != 4242 {
				t.Errorf("gid %d", s.gid)
			}
		}},
		{"group by name", []string{"--group", "root"}, func(t *testing.T, s daemonSetup) {
			if s.gid != 0 {
				t.Errorf("gid %d", s.gid)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseDaemon(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestDaemonRefusesBuildkitdFlags(t *testing.T) {
	tests := []struct {
		args []string
		flag string // the flag the one-line error names
	}{
		{[]string{"--allow-insecure-entitlement", "network.none"}, "--allow-insecure-entitlement"},
		{[]string{"--allow-insecure-entitlement", "security.insecure", "--allow-insecure-entitlement", "network.host,sandbox"}, "--allow-insecure-entitlement"},
		{[]string{"--oci-worker-gc-keepstorage", "10GB"}, "--oci-worker-gc-keepstorage"},
		{[]string{"--oci-worker-gc-keepstorage", "1,2,3,4"}, "--oci-worker-gc-keepstorage"},
		{[]string{"--oci-worker-gc-keepstorage", "-5"}, "--oci-worker-gc-keepstorage"},
		{[]string{"--oci-worker-snapshotter", "stargz"}, "--oci-worker-snapshotter"},
		{[]string{"--oci-worker-snapshotter", "fuse-overlayfs"}, "--oci-worker-snapshotter"},
		{[]string{"--snapshotter", "btrfs"}, "--snapshotter"},
		{[]string{"--snapshotter", "native", "--oci-worker-snapshotter", "overlayfs"}, "--oci-worker-snapshotter"},
		{[]string{"--oci-worker-no-process-sandbox"}, "--oci-worker-no-process-sandbox"},
		{[]string{"--group", "no-such-group-s3cache"}, "--group"},
		{[]string{"--group", "-3"}, "--group"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseDaemon(t, tt.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !(strings.HasPrefix(msg, tt.flag+" ") || strings.HasPrefix(msg, tt.flag+":")) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line starting with %s", msg, tt.flag)
			}
		})
	}
	// The command refuses them too, before it needs root or touches state.
	if got := Main(t.Context(), []string{"daemon", "--oci-worker-no-process-sandbox", "--root", t.TempDir()}); got != 1 {
		t.Errorf("daemon --oci-worker-no-process-sandbox exited %d, want 1", got)
	}
}
