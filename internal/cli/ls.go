package cli

import (
	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/inventory"
)

func init() { register(newLsCommand) }

type lsOptions struct {
	bucketOptions
}

func newLsCommand() *cobra.Command {
	var o lsOptions
	cmd := &cobra.Command{
		Use:   "ls SPEC",
		Short: "List the caches in a bucket",
		Long: `List every cache (manifest) under the spec's prefix and manifests_prefix:
its name, when it was last written, its layers and records, the bytes its
blobs hold and the part of them no other cache names.

SPEC is the value given to --cache-to, e.g.
  s3cache ls 'type=s3,region=eu-west-1,bucket=my-cache,prefix=ci/'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLs(cmd, args[0], o)
		},
	}
	addBucketFlags(cmd, &o.bucketOptions)
	return cmd
}

func runLs(cmd *cobra.Command, arg string, o lsOptions) error {
	b, err := openBucket(cmd, arg, o.bucketOptions)
	if err != nil {
		return err
	}
	r, err := inventory.Ls(cmd.Context(), b.store, b.layout, b.inv)
	if err != nil {
		return err
	}
	return r.Write(cmd.OutOrStdout(), b.format)
}
