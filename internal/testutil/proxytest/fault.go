package proxytest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Kind is what a fault does to a request it matches.
type Kind int

const (
	// Pass forwards the request, after the fault's Delay: added latency,
	// or just a hook (OnRequest) on the requests that match.
	Pass Kind = iota
	// Status answers Status with an S3 error document of Code instead of
	// forwarding the request.
	Status
	// ResetRequest reads Bytes of the request body, then resets the
	// connection (TCP RST) without forwarding: a connection lost mid-upload.
	ResetRequest
	// ResetResponse forwards the request, then resets the connection after
	// Bytes of the response body: a connection lost mid-download.
	ResetResponse
	// Truncate forwards the request, then closes the connection after Bytes
	// of the response body, short of its Content-Length: a body cut short.
	Truncate
	// Hang reads the request body and holds the request until the client
	// gives up or the proxy stops, never answering.
	Hang
	// Rewrite forwards the request and replaces the response body with
	// what Rewrite returns for it: a server that answers wrongly (requests
	// are signed, so the proxy can change only answers).
	Rewrite
)

func (k Kind) String() string {
	switch k {
	case Pass:
		return "pass"
	case Status:
		return "status"
	case ResetRequest:
		return "reset-request"
	case ResetResponse:
		return "reset-response"
	case Truncate:
		return "truncate"
	case Hang:
		return "hang"
	case Rewrite:
		return "rewrite"
	default:
		return fmt.Sprintf("kind(%d)", int(k))
	}
}

// Fault is a misbehaviour of the server behind the proxy. It applies to the
// requests matching Method, Key and Match, at most Times of them.
type Fault struct {
	Kind Kind

	// Method the request must have ("GET", "PUT", ...); empty: any.
	Method string
	// Key is a substring the request's (unescaped) path must contain, such
	// as "/blobs/" or "/manifests/main"; empty: any.
	Key string
	// Match, when set, must also accept the request (e.g. a query parameter).
	Match func(*http.Request) bool
	// Times is how many matching requests the fault applies to; 0: all.
	Times int

	// Delay is added before the request is handled, whatever the Kind.
	Delay time.Duration
	// Status and Code are the HTTP status and S3 error code of Kind Status;
	// Code defaults to the one S3 uses with the status.
	Status int
	Code   string
	// Bytes is where ResetRequest, ResetResponse and Truncate cut the body.
	// A response body no longer than Bytes passes whole.
	Bytes int64
	// OnRequest, when set, is called with each request the fault applies
	// to, before anything else happens to it.
	OnRequest func(*http.Request)
	// Rewrite, for Kind Rewrite, maps the request and the server's
	// response body to the body the client gets.
	Rewrite func(r *http.Request, body []byte) []byte
}

func (f Fault) String() string {
	var s string
	switch f.Kind {
	case Pass:
		s = "pass"
	case Status:
		s = fmt.Sprintf("%d %s", f.Status, f.code())
	case ResetRequest:
		s = fmt.Sprintf("reset after %d request bytes", f.Bytes)
	case ResetResponse:
		s = fmt.Sprintf("reset after %d response bytes", f.Bytes)
	case Truncate:
		s = fmt.Sprintf("truncate after %d response bytes", f.Bytes)
	case Hang:
		s = "hang"
	case Rewrite:
		s = "rewrite"
	default:
		s = fmt.Sprintf("kind %d", int(f.Kind))
	}
	if f.Delay > 0 {
		s += fmt.Sprintf(" after %v", f.Delay)
	}
	return s
}

func (f Fault) code() string {
	if f.Code != "" {
		return f.Code
	}
	switch f.Status {
	case http.StatusServiceUnavailable:
		return "SlowDown"
	case http.StatusNotFound:
		return "NoSuchKey"
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusBadRequest:
		return "InvalidRequest"
	default:
		return "InternalError"
	}
}

func (f Fault) matches(r *http.Request) bool {
	return (f.Method == "" || r.Method == f.Method) &&
		strings.Contains(r.URL.Path, f.Key) &&
		(f.Match == nil || f.Match(r))
}

// SlowDown is S3's throttling answer, 503 SlowDown, to the first times
// requests matching method and key (0: all).
func SlowDown(method, key string, times int) Fault {
	return Fault{Kind: Status, Method: method, Key: key, Times: times, Status: http.StatusServiceUnavailable}
}

// InternalError is 500 InternalError to the first times matching requests.
func InternalError(method, key string, times int) Fault {
	return Fault{Kind: Status, Method: method, Key: key, Times: times, Status: http.StatusInternalServerError}
}

// NoSuchBucket answers every request as if the bucket had been deleted.
func NoSuchBucket() Fault {
	return Fault{Kind: Status, Status: http.StatusNotFound, Code: "NoSuchBucket"}
}

// Rule is a fault added to a proxy.
type Rule struct {
	fault Fault
	hits  int // under Proxy.mu
}

// AddFault makes the proxy apply f to the requests it matches, from now on.
// Faults are tried in the order they were added; a request gets the first
// that matches and has applications left.
func (p *Proxy) AddFault(f Fault) *Rule {
	r := &Rule{fault: f}
	p.mu.Lock()
	p.faults = append(p.faults, r)
	p.mu.Unlock()
	return r
}

// Hits is how many requests the rule has been applied to.
func (p *Proxy) Hits(r *Rule) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.hits
}

// RemoveFault stops applying the rule.
func (p *Proxy) RemoveFault(r *Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.faults {
		if x == r {
			p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults removes every fault: the proxy passes requests through again.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	p.faults = nil
	p.mu.Unlock()
}

// match picks the rule for r and counts the application.
func (p *Proxy) match(r *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rule := range p.faults {
		if rule.fault.Times > 0 && rule.hits >= rule.fault.Times {
			continue
		}
		if rule.fault.matches(r) {
			rule.hits++
			return rule
		}
	}
	return nil
}

func (p *Proxy) apply(rule *Rule, w http.ResponseWriter, r *http.Request) {
	f := rule.fault
	if f.OnRequest != nil {
		f.OnRequest(r)
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-p.done:
			t.Stop()
			return
		}
	}
	switch f.Kind {
	case Status:
		writeS3Error(w, r, f.Status, f.code())
	case ResetRequest:
		_, _ = io.CopyN(io.Discard, r.Body, f.Bytes)
		cut(w, true, false)
	case ResetResponse, Truncate:
		cw := &cutWriter{ResponseWriter: w, left: f.Bytes, reset: f.Kind == ResetResponse}
		p.rp.ServeHTTP(cw, r)
	case Rewrite:
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if f.Rewrite != nil {
			body = f.Rewrite(r, body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	case Hang:
		// The server notices a client that hangs up only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-p.done:
		}
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// writeS3Error answers as S3 does when it refuses a request.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("X-Amz-Request-Id", "proxytest")
	if r.Method == http.MethodHead {
		// HEAD answers carry no body; clients see only the status.
		w.WriteHeader(status)
		return
	}
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>proxytest</RequestId></Error>`,
		code, message(code), r.URL.Path)
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func message(code string) string {
	switch code {
	case "SlowDown":
		return "Please reduce your request rate."
	case "NoSuchBucket":
		return "The specified bucket does not exist"
	case "NoSuchKey":
		return "The specified key does not exist."
	case "AccessDenied":
		return "Access Denied"
	default:
		return "We encountered an internal error. Please try again."
	}
}

// errCut is what the reverse proxy sees once the response is cut; it then
// abandons the request.
var errCut = errors.New("proxytest: response cut by a fault")

// cutWriter passes left bytes of the response body, then cuts the
// connection: with a reset, or a plain close that leaves the body short.
type cutWriter struct {
	http.ResponseWriter
	left  int64
	reset bool
	done  bool
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.done {
		return 0, errCut
	}
	if int64(len(b)) <= c.left {
		n, err := c.ResponseWriter.Write(b)
		c.left -= int64(n)
		return n, err
	}
	n, _ := c.ResponseWriter.Write(b[:c.left])
	c.done = true
	cut(c.ResponseWriter, c.reset, true)
	return n, errCut
}

// Unwrap lets http.ResponseController (which the reverse proxy flushes
// through) reach the server's writer.
func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// cut drops the connection under w, after sending what w holds when
// flush (a flush with nothing written would send a 200): with a TCP reset
// when reset, else with a close.
func cut(w http.ResponseWriter, reset, flush bool) {
	rc := http.NewResponseController(w)
	if flush {
		_ = rc.Flush()
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		return
	}
	if reset {
		if tc, ok := tcpConn(conn); ok {
			// Linger 0 makes Close send RST instead of FIN.
			_ = tc.SetLinger(0)
		}
	}
	_ = conn.Close()
}

func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x, true
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = x.NetConn()
		default:
			return nil, false
		}
	}
}

// RequireRetried checks that every request of method the proxy faulted was
// sent again to the same path and query, and that a retry got through.
func (p *Proxy) RequireRetried(t testing.TB, method string) {
	t.Helper()
	reqs := p.Requests()
	faulted := 0
	for i, r := range reqs {
		if r.Method != method || r.Fault == "" {
			continue
		}
		faulted++
		ok := false
		for _, later := range reqs[i+1:] {
			ok = ok || (later.Method == method && later.Path == r.Path && later.Query.Encode() == r.Query.Encode() && later.Fault == "")
		}
		if !ok {
			t.Errorf("%s %s?%s got %q and never went through on a retry", r.Method, r.Path, r.Query.Encode(), r.Fault)
		}
	}
	if faulted == 0 {
		t.Fatalf("no %s request was faulted: the test injected nothing", method)
	}
}
