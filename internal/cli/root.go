// Package cli is the s3cache command tree: one file per command, each
// filling an options struct from flags and calling a run function in the
// package that does the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Version is set at build time.
var Version = "development"

// NewRootCommand returns the s3cache command tree.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "s3cache",
		Short:         "BuildKit with its build cache in S3",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVersionCommand())
	for _, add := range commands {
		root.AddCommand(add())
	}
	// Usage errors exit 2, as for other Unix tools; failures of the work exit 1.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
	}
	return root
}

// usageError is a command line that doesn't parse.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// commands are registered by the files that define them, so adding a
// command touches only its own file.
var commands []func() *cobra.Command

func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "s3cache %s\n", Version)
			return nil
		},
	}
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string) int { return MainAs(ctx, "s3cache", args) }

// MainAs runs the command line as the program named name (argv[0]'s base
// name): as "buildkitd" it is the daemon with buildkitd's defaults.
func MainAs(ctx context.Context, name string, args []string) int {
	root := NewRootCommand(os.Stdout, os.Stderr)
	if name == "buildkitd" {
		root = newBuildkitdCommand(os.Stdout, os.Stderr)
	}
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
			fmt.Fprintf(os.Stderr, "See '%s --help'.\n", root.Name())
			return 2
		}
		return 1
	}
	return 0
}
