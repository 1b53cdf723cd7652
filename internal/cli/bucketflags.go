package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// bucketOptions are the flags every bucket command shares.
type bucketOptions struct {
	format   string
	progress bool
}

func addBucketFlags(cmd *cobra.Command, o *bucketOptions) {
	cmd.Flags().StringVar(&o.format, "format", "table", "output format: table or json")
	cmd.Flags().BoolVar(&o.progress, "progress", false, "report progress of long listings on stderr (default: when stderr is a terminal)")
}

// bucket is an opened cache spec: the store, its layout and how to report.
type bucket struct {
	cfg    spec.Config
	store  store.Store
	layout store.Layout
	format inventory.Format
	inv    inventory.Options
}

// openBucket parses the spec the user wrote for --cache-to and opens its
// bucket with the usual credential chain. Nothing here prints the spec:
// it may carry secrets.
func openBucket(cmd *cobra.Command, arg string, o bucketOptions) (*bucket, error) {
	format, err := inventory.ParseFormat(o.format)
	if err != nil {
		return nil, err
	}
	cfg, err := spec.Parse(arg)
	if err != nil {
		return nil, err
	}
	stderr := cmd.ErrOrStderr()
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	st, err := store.New(cmd.Context(), cfg, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	b := &bucket{
		cfg:    cfg,
		store:  st,
		layout: st.Layout(),
		format: format,
		// The command's run owns the prober, as the engine owns its own.
		// verify_key in the spec makes inspect and verify check signatures.
		inv: inventory.Options{Prober: store.NewProber(), VerifyKeys: cfg.VerifyKeys},
	}
	if o.progress || isTerminal(stderr) {
		b.inv.Progress = func(msg string) { fmt.Fprintf(stderr, "%s\n", msg) }
	}
	return b, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
