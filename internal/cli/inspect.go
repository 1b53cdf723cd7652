package cli

import (
	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/inventory"
)

func init() { register(newInspectCommand) }

type inspectOptions struct {
	bucketOptions
}

func newInspectCommand() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect SPEC",
		Short: "Show a cache's layers and records and what it shares",
		Long: `Show the cache named by the spec's name (each of them, for name=a;b): its
layers (digest, size, media type, created), its records, which of its
blobs other caches under the same prefix also name, and its signature
(checked against verify_key=... in the spec, if any).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd, args[0], o)
		},
	}
	addBucketFlags(cmd, &o.bucketOptions)
	return cmd
}

func runInspect(cmd *cobra.Command, arg string, o inspectOptions) error {
	b, err := openBucket(cmd, arg, o.bucketOptions)
	if err != nil {
		return err
	}
	r, err := inventory.Inspect(cmd.Context(), b.store, b.layout, b.cfg.Names, b.inv)
	if r != nil && len(r.Caches) > 0 {
		if werr := r.Write(cmd.OutOrStdout(), b.format); werr != nil {
			return werr
		}
	}
	return err
}
