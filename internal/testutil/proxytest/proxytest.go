// Package proxytest puts a recording reverse proxy in front of a server, so
// tests can assert what a client sent on the wire, and make the server
// misbehave on cue (see Fault).
package proxytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Recorded is one request as the proxy received it.
type Recorded struct {
	Method string
	Host   string
	Path   string // escaped, as sent
	Query  url.Values
	Header http.Header
	// Fault names the fault the proxy applied to the request ("" when it
	// was passed through untouched).
	Fault string
}

// Proxy is a running recording proxy.
type Proxy struct {
	URL string // http://127.0.0.1:port, or https:// from NewTLS

	srv    *httptest.Server
	rp     *httputil.ReverseProxy
	mu     sync.Mutex
	reqs   []Recorded
	faults []*Rule
	done   chan struct{} // closed when the proxy stops, ending held requests
}

// New starts a proxy to target (e.g. "http://127.0.0.1:9000"), stopped at the
// end of the test. The Host header is passed through unchanged, so requests
// signed for the proxy's address (AWS SigV4) still verify at the target.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	return start(t, target, false)
}

// NewTLS is New serving HTTPS with a self-signed certificate; reach it with
// Client. Clients behave differently on TLS (e.g. the AWS SDK may stream
// unsigned payloads with trailing checksums only there).
func NewTLS(t testing.TB, target string) *Proxy {
	t.Helper()
	return start(t, target, true)
}

func start(t testing.TB, target string, tls bool) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("proxytest: target %q: %v", target, err)
	}
	p := &Proxy{done: make(chan struct{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		// Faults and clients that give up make the proxy's copies fail by
		// design; that is no news worth a line in the test output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	// Connections cut on purpose would otherwise be logged as errors.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		close(p.done)
		srv.Close()
	})
	p.srv, p.URL = srv, srv.URL
	return p
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	rule := p.match(r)
	p.record(r, rule)
	if rule == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.apply(rule, w, r)
}

// Client is an HTTP client that trusts the proxy's certificate.
func (p *Proxy) Client() *http.Client { return p.srv.Client() }

func (p *Proxy) record(r *http.Request, rule *Rule) {
	rec := Recorded{
		Method: r.Method,
		Host:   r.Host,
		Path:   r.URL.EscapedPath(),
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
	}
	if rule != nil {
		rec.Fault = rule.fault.String()
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()
}

// Requests returns a copy of the requests received so far, in arrival order.
func (p *Proxy) Requests() []Recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Recorded(nil), p.reqs...)
}

// Reset forgets the requests received so far.
func (p *Proxy) Reset() {
	p.mu.Lock()
	p.reqs = nil
	p.mu.Unlock()
}
