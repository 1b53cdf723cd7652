package engine

import (
	"fmt"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
)

// sessionChunk is the most data one message of the session tunnel carries.
// A client's session (buildctl's, buildx's) is a byte stream of
// BytesMessages, and BuildKit writes each 32 KiB its HTTP/2 framer flushes
// as one message: 4 bytes over 32 KiB once encoded. The client's gRPC then
// takes a buffer from its default pool's next tier, 1 MiB, and zeroes all of
// it, for every 32 KiB of a file sent to --output type=local or tar. With
// the field's tag and 3-byte length, 32 KiB - 4 bytes of data encode to
// exactly 32 KiB, the tier below.
const sessionChunk = 32<<10 - 4

// splitSessionMessages sends the session's outgoing BytesMessages in pieces
// of at most sessionChunk bytes. The client reads them as one byte stream,
// so where one message ends doesn't matter to it.
func splitSessionMessages(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != controlapi.Control_Session_FullMethodName {
		return handler(srv, ss)
	}
	return handler(srv, &splitSessionStream{ServerStream: ss})
}

type splitSessionStream struct {
	grpc.ServerStream
}

func (s *splitSessionStream) SendMsg(m any) error {
	msg, ok := m.(*controlapi.BytesMessage)
	if !ok || len(msg.Data) <= sessionChunk {
		return s.ServerStream.SendMsg(m)
	}
	for data := msg.Data; len(data) > 0; {
		n := min(len(data), sessionChunk)
		if err := s.ServerStream.SendMsg(&controlapi.BytesMessage{Data: data[:n]}); err != nil {
			return fmt.Errorf("send session data: %w", err)
		}
		data = data[n:]
	}
	return nil
}
