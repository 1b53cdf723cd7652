package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// --metrics-addr answers before the engine is up: /healthz 200, /readyz
// 503; and /readyz says 503 again once the daemon is stopping.
func TestMetricsAddrBeforeEngineAndWhileStopping(t *testing.T) {
	ctx, stop := context.WithCancel(t.Context())
	obs, err := startObservability(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	base := "http://" + obs.addr.String()
	if code, body := probe(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while the engine starts: %d %s", code, body)
	}
	if code, body := probe(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "engine starting") {
		t.Errorf("/readyz while the engine starts: %d %q, want 503 engine starting", code, body)
	}
	if code, body := probe(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "s3cache_imports_total") {
		t.Errorf("/metrics: %d, s3cache metrics missing", code)
	}
	stop()
	if code, body := probe(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopping") {
		t.Errorf("/readyz while stopping: %d %q, want 503 stopping", code, body)
	}
	if code, _ := probe(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while stopping: %d", code)
	}
	obs.Close()
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("--metrics-addr still answers after Close")
	}
}

func TestMetricsAddrTakenFailsNamingIt(t *testing.T) {
	obs, err := startObservability(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	if _, err := startObservability(t.Context(), obs.addr.String()); err == nil || !strings.Contains(err.Error(), "metrics address "+obs.addr.String()) {
		t.Fatalf("a second listener on %s: %v, want an error naming the metrics address", obs.addr, err)
	}
}

func TestDaemonHelpShowsMetricsAddr(t *testing.T) {
	cmd := newDaemonCommand()
	if f := cmd.Flags().Lookup("metrics-addr"); f == nil || !strings.Contains(f.Usage, "/readyz") {
		t.Fatalf("daemon --metrics-addr: %+v", f)
	}
	if f := cmd.Flags().Lookup("debugaddr"); f == nil || !strings.Contains(f.Usage, "/metrics") {
		t.Fatalf("daemon --debugaddr does not mention /metrics: %+v", f)
	}
}
