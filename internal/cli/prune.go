package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/gc"
)

func init() { register(newPruneCommand) }

type pruneOptions struct {
	bucketOptions
	grace        string
	keepDuration string
	keepStorage  string
	dryRun       bool
	force        bool
}

func newPruneCommand() *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune SPEC",
		Short: "Delete the blobs no cache names",
		Long: `Mark every blob a cache (manifest) under the spec's prefix names and delete
the others that were last modified more than --grace ago: an export uploads
its blobs before its manifest, and those must survive.

--keep-duration first drops the caches whose manifest was not written within
it; --keep-storage drops the least recently written caches until the blobs
the others name fit in it. --dry-run deletes nothing and prints the plan.

A manifest that cannot be read stops the sweep (something may still read
it) unless --force. See docs/operations.md for running prune next to builds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrune(cmd, args[0], o)
		},
	}
	addBucketFlags(cmd, &o.bucketOptions)
	f := cmd.Flags()
	f.StringVar(&o.grace, "grace", "1h", "keep unreferenced blobs modified within this duration (e.g. 30m, 1h, 1d)")
	f.StringVar(&o.keepDuration, "keep-duration", "", "drop caches whose manifest was not written within this duration (e.g. 7d)")
	f.StringVar(&o.keepStorage, "keep-storage", "", "drop the least recently written caches until referenced blobs fit in this size (e.g. 10GB, 512MiB)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and delete nothing")
	f.BoolVar(&o.force, "force", false, "sweep even when some manifests cannot be read, deleting the blobs only they may name")
	return cmd
}

func runPrune(cmd *cobra.Command, arg string, o pruneOptions) error {
	opts := gc.Options{KeepStorage: gc.NoLimit, Force: o.force}
	var err error
	if opts.Grace, err = parseDuration(o.grace); err != nil {
		return fmt.Errorf("--grace: %w", err)
	}
	if o.keepDuration != "" {
		if opts.KeepDuration, err = parseDuration(o.keepDuration); err != nil {
			return fmt.Errorf("--keep-duration: %w", err)
		}
		if opts.KeepDuration == 0 {
			return fmt.Errorf("--keep-duration: must be more than 0 (it would drop every cache)")
		}
	}
	if o.keepStorage != "" {
		if opts.KeepStorage, err = parseSize(o.keepStorage); err != nil {
			return fmt.Errorf("--keep-storage: %w", err)
		}
	}
	b, err := openBucket(cmd, arg, o.bucketOptions)
	if err != nil {
		return err
	}
	opts.Inventory = b.inv
	pr := gc.New(b.store, b.layout, opts)
	plan, err := pr.Plan(cmd.Context())
	if err != nil {
		return err
	}
	report := &gc.Report{DryRun: o.dryRun, Plan: plan}
	if o.dryRun {
		if err := report.Write(cmd.OutOrStdout(), b.format); err != nil {
			return err
		}
		if plan.Refused() {
			return &gc.RefusedError{Manifests: brokenNames(plan)}
		}
		return nil
	}
	res, execErr := pr.Execute(cmd.Context(), plan)
	if !plan.Refused() {
		report.Result = res
	}
	if err := report.Write(cmd.OutOrStdout(), b.format); err != nil {
		return err
	}
	return execErr
}

func brokenNames(p *gc.Plan) []string {
	out := make([]string, len(p.Broken))
	for i, b := range p.Broken {
		out[i] = b.Name
	}
	return out
}
