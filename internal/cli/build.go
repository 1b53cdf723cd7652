package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/buildopts"
	"github.com/s3cache/s3cache/engine"
)

func init() { register(newBuildCommand) }

type buildFlags struct {
	buildopts.Options
	addr    string
	root    string
	summary bool
	debug   bool
}

func newBuildCommand() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] PATH",
		Short: "Build a Dockerfile, with its cache in S3",
		Long: `Build a Dockerfile as docker buildx build does. Without --addr, BuildKit runs
embedded in this process with its state under --root; with --addr the build
runs on that daemon (s3cache daemon or buildkitd).

Cache specs: --cache-to type=s3,region=eu-west-1,bucket=my-cache,name=main,mode=max
             --cache-from type=s3,region=eu-west-1,bucket=my-cache,name=branch;main
With --addr, a type=s3 spec without access_key_id gets this client's AWS
credentials (environment, shared files, profile) forwarded, as buildx does;
embedded, the engine resolves them itself, refreshing temporary ones.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.ContextDir = args[0]
			f.Stdout = cmd.OutOrStdout()
			return runBuild(cmd.Context(), cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.Dockerfile, "file", "f", "", "Name of the Dockerfile (default: PATH/Dockerfile)")
	fl.StringArrayVarP(&f.Tags, "tag", "t", nil, `Image name and optionally a tag ("name:tag")`)
	fl.StringVar(&f.Target, "target", "", "Set the target build stage to build")
	fl.StringArrayVar(&f.BuildArgs, "build-arg", nil, "Set build-time variables (KEY=VALUE)")
	fl.StringArrayVar(&f.Platforms, "platform", nil, "Set target platform for build")
	fl.StringArrayVarP(&f.Outputs, "output", "o", nil, `Output destination ("type=local,dest=path", tar, oci, docker, image)`)
	fl.StringArrayVar(&f.CacheTo, "cache-to", nil, `Cache export destination (e.g. "type=s3,region=...,bucket=...,name=...")`)
	fl.StringArrayVar(&f.CacheFrom, "cache-from", nil, `Cache import sources (e.g. "type=s3,region=...,bucket=...,name=...")`)
	fl.BoolVar(&f.NoCache, "no-cache", false, "Do not use cache when building the image")
	fl.StringArrayVar(&f.Secrets, "secret", nil, `Secret to expose to the build ("id=mysecret,src=/local/secret" or "id=x,env=VAR")`)
	fl.StringVar(&f.Progress, "progress", "auto", "Set type of progress output (auto, plain, tty, rawjson, quiet)")
	fl.StringVar(&f.addr, "addr", "", "BuildKit daemon address (unix:///path or tcp://host:port); embedded engine when empty")
	fl.StringVar(&f.root, "root", engine.DefaultRoot, "State directory of the embedded engine")
	fl.BoolVar(&f.debug, "debug", false, "Show the embedded engine's logs")
	fl.BoolVar(&f.summary, "summary", true, "Print how many steps came from cache and how long the build took")
	return cmd
}

func runBuild(ctx context.Context, cmd *cobra.Command, f buildFlags) error {
	f.Remote = f.addr != ""
	req, err := buildopts.Prepare(ctx, f.Options)
	if err != nil {
		return err
	}
	c, closeClient, err := buildClient(ctx, f)
	if err != nil {
		return err
	}
	defer closeClient()
	res, err := buildopts.Run(ctx, c, req, cmd.ErrOrStderr())
	if err != nil {
		return fmt.Errorf("build failed: %w", err)
	}
	if len(f.Outputs) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: no output specified (-o): the build result stays in the build cache only")
	}
	if f.summary {
		var cached []string
		for _, s := range res.Steps {
			if s.Cached {
				cached = append(cached, s.Name)
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "s3cache: build finished in %s; %d of %d steps cached\n", res.Duration.Round(10*time.Millisecond), len(cached), len(res.Steps))
		for _, name := range cached {
			fmt.Fprintf(cmd.ErrOrStderr(), "  CACHED %s\n", name)
		}
	}
	return nil
}

// buildClient connects to --addr, or starts an embedded engine.
func buildClient(ctx context.Context, f buildFlags) (*client.Client, func(), error) {
	if f.addr != "" {
		c, err := client.New(ctx, f.addr)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to %s: %w", f.addr, err)
		}
		return c, func() { c.Close() }, nil
	}
	if !f.debug {
		// BuildKit logs to logrus; in a build command only errors belong on screen.
		logrus.SetLevel(logrus.ErrorLevel)
	}
	if os.Geteuid() != 0 {
		return nil, nil, fmt.Errorf("the embedded engine runs containers with runc and needs root; run as root or use --addr")
	}
	e, err := engine.New(ctx, engine.Options{Root: f.root, Cache: engineCacheOptions(), GC: true})
	if err != nil {
		return nil, nil, err
	}
	c, stop, err := e.InProcessClient(ctx)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return c, func() {
		c.Close()
		stop()
		e.Close()
	}, nil
}
