package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/containerd/containerd/v2/defaults"
)

// NewGRPCServer returns a gRPC server with the engine's control API
// registered, as buildkitd serves it.
func (e *Engine) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	return e.newGRPCServer(true, opts...)
}

// newGRPCServer logs failed calls for a daemon; an embedded build reports
// its own failure and doesn't log it again.
func (e *Engine) newGRPCServer(logFailures bool, opts ...grpc.ServerOption) *grpc.Server {
	server := grpc.NewServer(append(e.serverOptions(logFailures), opts...)...)
	healthv1.RegisterHealthServer(server, health.NewServer())
	e.Controller.Register(server)
	reflection.Register(server)
	return server
}

// serverOptions are the options every server of the engine's API gets.
func (e *Engine) serverOptions(logFailures bool) []grpc.ServerOption {
	interceptors := []grpc.UnaryServerInterceptor{grpcerrors.UnaryServerInterceptor, e.sealSecrets}
	if logFailures {
		interceptors = append([]grpc.UnaryServerInterceptor{logErrors}, interceptors...)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(interceptors...),
		grpc.ChainStreamInterceptor(grpcerrors.StreamServerInterceptor, splitSessionMessages),
		grpc.MaxRecvMsgSize(defaults.DefaultMaxRecvMsgSize),
		grpc.MaxSendMsgSize(defaults.DefaultMaxSendMsgSize),
	}
}

func logErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		bklog.G(ctx).Errorf("%s returned error: %v", info.FullMethod, err)
	}
	return resp, err
}

// InProcessClient serves the engine on an in-memory connection and returns a
// BuildKit client for it: an embedded build goes through the same API as a
// daemon's clients. Close the client, then call stop.
func (e *Engine) InProcessClient(ctx context.Context) (c *client.Client, stop func(), err error) {
	lis := bufconn.Listen(1 << 20)
	server := e.newGRPCServer(false)
	go func() { _ = server.Serve(lis) }()
	c, err = client.New(ctx, "unix:///embedded", client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}))
	if err != nil {
		server.Stop()
		return nil, nil, fmt.Errorf("connect to embedded engine: %w", err)
	}
	return c, server.Stop, nil
}

// TLSFiles name the server's certificate and key, and the CA that client
// certificates must chain to (mutual TLS) when set.
type TLSFiles struct {
	Cert, Key, CA string
}

// Listen opens a buildkitd-style address: unix:///path or tcp://host:port
// (with TLS when files are given; unix sockets are served without).
func Listen(addr string, tlsFiles TLSFiles) (net.Listener, error) {
	proto, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return nil, fmt.Errorf("address %q has no scheme: use unix:///path or tcp://host:port", addr)
	}
	tlsConfig, err := serverTLS(tlsFiles)
	if err != nil {
		return nil, err
	}
	switch proto {
	case "unix":
		if tlsConfig != nil {
			// As buildkitd: TLS is for tcp:// (BuildKit's Kubernetes
			// examples give a unix and a TLS tcp address together); the
			// socket's mode guards a unix address.
			bklog.L.Warnf("TLS is disabled for %s", addr)
		}
		if err := os.MkdirAll(filepath.Dir(rest), 0o700); err != nil {
			return nil, fmt.Errorf("create socket directory for %s: %w", addr, err)
		}
		if err := os.Remove(rest); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket %s: %w", rest, err)
		}
		l, err := net.Listen("unix", rest)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		if err := os.Chmod(rest, 0o660); err != nil {
			l.Close()
			return nil, fmt.Errorf("set mode of %s: %w", rest, err)
		}
		return l, nil
	case "tcp":
		l, err := net.Listen("tcp", rest)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		if tlsConfig != nil {
			return tls.NewListener(l, tlsConfig), nil
		}
		return l, nil
	}
	return nil, fmt.Errorf("address %q: unsupported scheme %q, use unix or tcp", addr, proto)
}

func serverTLS(f TLSFiles) (*tls.Config, error) {
	if f.Cert == "" && f.Key == "" {
		if f.CA != "" {
			return nil, errors.New("--tlscacert needs --tlscert and --tlskey")
		}
		return nil, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("--tlscert and --tlskey must be given together")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load server key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate found in %s", f.CA)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pool
	}
	return cfg, nil
}
