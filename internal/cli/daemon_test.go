package cli

import (
	"strings"
	"testing"

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
