package cli

import (
	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/inventory"
)

func init() { register(newDuCommand) }

type duOptions struct {
	bucketOptions
}

func newDuCommand() *cobra.Command {
	var o duOptions
	cmd := &cobra.Command{
		Use:   "du SPEC",
		Short: "Show the bytes and objects a bucket's caches hold",
		Long: `Count the blobs under the spec's prefix and blobs_prefix: those some cache
names (and of them, those several share), those none names (prune's
garbage once older than its grace), and the manifests.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDu(cmd, args[0], o)
		},
	}
	addBucketFlags(cmd, &o.bucketOptions)
	return cmd
}

func runDu(cmd *cobra.Command, arg string, o duOptions) error {
	b, err := openBucket(cmd, arg, o.bucketOptions)
	if err != nil {
		return err
	}
	r, err := inventory.DU(cmd.Context(), b.store, b.layout, b.inv)
	if err != nil {
		return err
	}
	return r.Write(cmd.OutOrStdout(), b.format)
}
