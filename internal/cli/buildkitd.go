package cli

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/moby/buildkit/version"
	"github.com/spf13/cobra"
)

// buildkitd's own defaults. Installed as `buildkitd` (the image's
// entrypoint), s3cache's daemon takes them, so that buildx's drivers,
// buildctl and BuildKit's Kubernetes examples find it where they look.
const (
	BuildkitdAddr = "unix:///run/buildkit/buildkitd.sock"
	BuildkitdRoot = "/var/lib/buildkit"
)

// buildkitVersion is the BuildKit module this binary embeds; buildx reads
// the third field of `buildkitd --version` as the BuildKit version to
// decide which features the daemon has.
func buildkitVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/moby/buildkit" {
				return m.Version
			}
		}
	}
	return "unknown"
}

// newBuildkitdCommand is the daemon as buildkitd: its defaults, and
// `--version` in buildkitd's four fields (name, package, version, revision).
func newBuildkitdCommand(stdout, stderr io.Writer) *cobra.Command {
	var f daemonFlags
	cmd := &cobra.Command{
		Use:   "buildkitd",
		Short: "s3cache's BuildKit daemon, with buildkitd's defaults and flags",
		Long: `s3cache's BuildKit daemon installed as buildkitd (the entrypoint of the
s3cache image): the same as 's3cache daemon', with buildkitd's defaults
(--addr ` + BuildkitdAddr + `, --root ` + BuildkitdRoot + `).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildkitVersion(),
		RunE:          func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd.Context(), f) },
	}
	cmd.SetVersionTemplate(fmt.Sprintf("buildkitd github.com/s3cache/s3cache {{.Version}} s3cache-%s\n", Version))
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	fl := cmd.Flags()
	addDaemonFlags(fl, &f)
	// Set before parsing: a first --addr or --root replaces them, as a
	// default would be.
	f.addrs = []string{BuildkitdAddr}
	f.root = BuildkitdRoot
	fl.Lookup("addr").DefValue = "[" + BuildkitdAddr + "]"
	fl.Lookup("root").DefValue = BuildkitdRoot
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return cmd
}

// BuildKit's Info API reports its version package's values, which
// buildkitd gets from its build flags; buildx shows them and reads
// features off them. Ours are the BuildKit module we embed.
func init() {
	if version.Version == "v0.0.0+unknown" {
		version.Version = buildkitVersion()
		version.Revision = "s3cache-" + Version
	}
}
