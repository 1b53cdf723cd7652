// Command s3cache is BuildKit with a `type=s3` build cache in S3.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/s3cache/s3cache/internal/cli"
	"github.com/s3cache/s3cache/internal/grpcbuffers"
)

func main() {
	// Before any gRPC client or server exists, as gRPC requires.
	if err := grpcbuffers.Install(); err != nil {
		fmt.Fprintln(os.Stderr, "s3cache:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.MainAs(ctx, filepath.Base(os.Args[0]), os.Args[1:])
	stop()
	os.Exit(code)
}
