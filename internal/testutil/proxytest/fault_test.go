package proxytest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/s3cache/s3cache/internal/testutil/proxytest"
)

// origin serves 64 KiB of body for any GET and swallows any PUT.
func origin(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Length", "65536")
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, body
}

func get(t *testing.T, c *http.Client, url string) (int, []byte, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	dt, err := io.ReadAll(resp.Body)
	return resp.StatusCode, dt, err
}

func TestStatusFaultCountsAndRecords(t *testing.T) {
	srv, body := origin(t)
	p := proxytest.New(t, srv.URL)
	rule := p.AddFault(proxytest.SlowDown("GET", "/bkt/blobs/", 2))
	c := &http.Client{}
	for i := range 3 {
		status, dt, err := get(t, c, p.URL+"/bkt/blobs/x")
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 && (status != 503 || !strings.Contains(string(dt), "<Code>SlowDown</Code>")) {
			t.Fatalf("request %d: %d %s, want 503 SlowDown", i, status, dt)
		}
		if i == 2 && (status != 200 || !bytes.Equal(dt, body)) {
			t.Fatalf("request 3: %d and %d bytes, want the origin's answer once the burst is over", status, len(dt))
		}
	}
	if status, _, _ := get(t, c, p.URL+"/bkt/manifests/x"); status != 200 {
		t.Fatalf("a path the fault does not match got %d", status)
	}
	if n := p.Hits(rule); n != 2 {
		t.Fatalf("hits = %d, want 2", n)
	}
	reqs := p.Requests()
	if len(reqs) != 4 || reqs[0].Fault != "503 SlowDown" || reqs[2].Fault != "" {
		t.Fatalf("recorded %+v", reqs)
	}
}

func TestNoSuchBucket(t *testing.T) {
	srv, _ := origin(t)
	p := proxytest.New(t, srv.URL)
	p.AddFault(proxytest.NoSuchBucket())
	status, dt, err := get(t, &http.Client{}, p.URL+"/bkt/anything")
	if err != nil || status != 404 || !strings.Contains(string(dt), "<Code>NoSuchBucket</Code>") {
		t.Fatalf("%d %s %v", status, dt, err)
	}
	p.ClearFaults()
	if status, _, _ := get(t, &http.Client{}, p.URL+"/bkt/anything"); status != 200 {
		t.Fatalf("after ClearFaults: %d", status)
	}
}

func TestCutBodies(t *testing.T) {
	srv, body := origin(t)
	for _, kind := range []proxytest.Kind{proxytest.ResetResponse, proxytest.Truncate} {
		p := proxytest.New(t, srv.URL)
		p.AddFault(proxytest.Fault{Kind: kind, Method: "GET", Bytes: 1000, Times: 1})
		status, dt, err := get(t, &http.Client{}, p.URL+"/k")
		if status != 200 || err == nil || len(dt) != 1000 || !bytes.Equal(dt, body[:1000]) {
			t.Fatalf("%v: status %d, %d bytes, err %v; want 200, the first 1000 bytes, then an error", kind, status, len(dt), err)
		}
		if kind == proxytest.Truncate && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated body: err = %v, want io.ErrUnexpectedEOF", err)
		}
		if status, dt, err := get(t, &http.Client{}, p.URL+"/k"); status != 200 || err != nil || !bytes.Equal(dt, body) {
			t.Fatalf("%v: after its one application: %d, %d bytes, %v", kind, status, len(dt), err)
		}
	}
}

func TestResetRequest(t *testing.T) {
	srv, _ := origin(t)
	p := proxytest.New(t, srv.URL)
	p.AddFault(proxytest.Fault{Kind: proxytest.ResetRequest, Method: "PUT", Bytes: 100})
	req, _ := http.NewRequest("PUT", p.URL+"/k", bytes.NewReader(make([]byte, 1<<20)))
	resp, err := (&http.Client{}).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("PUT through a reset: %s, want a transport error", resp.Status)
	}
}

func TestHangUntilClientGivesUpAndDelay(t *testing.T) {
	srv, _ := origin(t)
	p := proxytest.New(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.AddFault(proxytest.Fault{Kind: proxytest.Hang, Method: "PUT", OnRequest: func(*http.Request) { cancel() }})
	req, _ := http.NewRequestWithContext(ctx, "PUT", p.URL+"/k", strings.NewReader("x"))
	if _, err := (&http.Client{}).Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("hung PUT cancelled by OnRequest: err = %v", err)
	}

	p.AddFault(proxytest.Fault{Method: "GET", Delay: 20 * time.Millisecond})
	if status, _, err := get(t, &http.Client{}, p.URL+"/k"); status != 200 || err != nil {
		t.Fatalf("delayed GET: %d %v", status, err)
	}
}
