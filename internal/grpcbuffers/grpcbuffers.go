// Package grpcbuffers sizes the buffers gRPC marshals messages into.
//
// gRPC's default pool has tiers of 256 B, 4, 16 and 32 KiB and 1 MiB, and
// it zeroes a buffer's whole capacity on every Get. A file sent to a
// client (--output type=local, tar) travels as 32 KiB chunks plus a few
// bytes of header, and then again inside the session's tunnel, so each
// message lands in the 1 MiB tier: about 30 bytes cleared per byte sent,
// which cost a third of the daemon's CPU in a 600 MiB local export.
// Power-of-two tiers keep every buffer within twice what it holds.
package grpcbuffers

import (
	"fmt"

	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// smallest and largest are the tiers' sizes as powers of two: 256 B (the
// default's smallest) to 4 MiB (gRPC's default maximum message size).
// Bigger messages are allocated outright, as gRPC does.
const (
	smallest = 8
	largest  = 22
)

// NewPool returns a buffer pool with a tier at every power of two from
// 256 B to 4 MiB.
func NewPool() (mem.BufferPool, error) {
	exponents := make([]uint8, 0, largest-smallest+1)
	for e := uint8(smallest); e <= largest; e++ {
		exponents = append(exponents, e)
	}
	pool, err := mem.NewBinaryTieredBufferPool(exponents...)
	if err != nil {
		return nil, fmt.Errorf("grpc buffer pool: %w", err)
	}
	return pool, nil
}

// Install makes NewPool's pool the default of every gRPC client, server
// and codec in the process. gRPC requires this before any of them runs:
// call it first thing in main.
func Install() error {
	pool, err := NewPool()
	if err != nil {
		return err
	}
	experimental.SetDefaultBufferPool(pool)
	return nil
}
