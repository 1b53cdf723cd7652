// Command s3cache is BuildKit with a `type=s3` build cache in S3.
package main

import (
	"fmt"
	"os"
)

const usage = `s3cache: BuildKit's S3 build cache

Usage:
  s3cache version

The Go packages spec, store and backend hold the cache itself; the build,
daemon and bucket commands come with the engine.
`

func main() {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		fmt.Println("s3cache (development)")
		return
	}
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
}
