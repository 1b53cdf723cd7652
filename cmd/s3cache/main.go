// Command s3cache is BuildKit with a `type=s3` build cache in S3.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/s3cache/s3cache/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
