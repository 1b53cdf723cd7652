package cli

import (
	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/inventory"
)

func init() { register(newVerifyCommand) }

type verifyOptions struct {
	bucketOptions
	all  bool
	deep bool
}

func newVerifyCommand() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify SPEC",
		Short: "Check that every blob a cache names is in the bucket",
		Long: `Check that every blob the manifest of the spec's name (or, with --all, of
every cache under the prefix) names exists with the size the manifest gives;
with --deep, download each and check its digest. Reports each manifest's
signature; with verify_key=... in the spec, a signature that does not verify
is a problem. Exits 1 with a report naming each missing or damaged blob or
bad signature when anything is wrong.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, args[0], o)
		},
	}
	addBucketFlags(cmd, &o.bucketOptions)
	cmd.Flags().BoolVar(&o.all, "all", false, "verify every cache under the prefix, not only the spec's name")
	cmd.Flags().BoolVar(&o.deep, "deep", false, "download every blob and check its digest")
	return cmd
}

func runVerify(cmd *cobra.Command, arg string, o verifyOptions) error {
	b, err := openBucket(cmd, arg, o.bucketOptions)
	if err != nil {
		return err
	}
	vo := inventory.VerifyOptions{Names: b.cfg.Names, All: o.all, Deep: o.deep}
	r, err := inventory.Verify(cmd.Context(), b.store, b.layout, vo, b.inv)
	if r != nil {
		if werr := r.Write(cmd.OutOrStdout(), b.format); werr != nil {
			return werr
		}
	}
	return err
}
