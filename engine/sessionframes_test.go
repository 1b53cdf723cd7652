package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/session/grpchijack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

// sessionWriter is a control server whose Session writes the given chunks
// into the tunnel, as BuildKit's HTTP/2 framer does with what it sends to
// the client (file data for --output type=local among it).
type sessionWriter struct {
	controlapi.UnimplementedControlServer
	writes [][]byte
}

func (s *sessionWriter) Session(stream controlapi.Control_SessionServer) error {
	conn, _, _ := grpchijack.Hijack(stream)
	for _, w := range s.writes {
		if _, err := conn.Write(w); err != nil {
			return err
		}
	}
	return nil
}

// Every message of the session tunnel fits the 32 KiB tier of a client's
// default gRPC buffer pool, rather than the 1 MiB one it zeroes per
// message, and the client still reads the bytes that were written.
func TestSessionMessagesFitTheClientsBufferTier(t *testing.T) {
	var writes [][]byte
	var want []byte
	for i, size := range []int{10, 32<<10 - 4, 32 << 10, 32<<10 + 1, 100_000} {
		w := bytes.Repeat([]byte{byte(i + 1)}, size)
		writes = append(writes, w)
		want = append(want, w...)
	}

	lis := bufconn.Listen(1 << 20)
	server := grpc.NewServer((&Engine{}).serverOptions(false)...)
	controlapi.RegisterControlServer(server, &sessionWriter{writes: writes})
	go func() { _ = server.Serve(lis) }()
	defer server.Stop()
	cc, err := grpc.NewClient("passthrough:///engine",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := controlapi.NewControlClient(cc).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}

	var got []byte
	for {
		var m controlapi.BytesMessage
		err := stream.RecvMsg(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("receive session data: %v", err)
		}
		if n := proto.Size(&m); n > 32<<10 {
			t.Errorf("a session message of %d bytes: over the client's 32 KiB buffer tier", n)
		}
		got = append(got, m.Data...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("client read %d bytes, want the %d written in order", len(got), len(want))
	}
}
