package gc

import (
	"fmt"
	"io"
	"strings"

	"github.com/s3cache/s3cache/inventory"
)

// tableBlobs is how many blobs of the sweep a table lists; JSON lists all.
const tableBlobs = 20

// Report is what prune prints: the plan and, unless a dry run, the result.
type Report struct {
	DryRun bool    `json:"dry_run"`
	Plan   *Plan   `json:"plan"`
	Result *Result `json:"result,omitempty"`
}

// Write renders the report.
func (r *Report) Write(w io.Writer, f inventory.Format) error {
	if f == inventory.FormatJSON {
		return inventory.WriteJSON(w, r)
	}
	if err := r.writeTable(w); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func (r *Report) writeTable(w io.Writer) error {
	p := r.Plan
	limits := []string{"grace " + p.Grace}
	if p.KeepDuration != "" {
		limits = append(limits, "keep-duration "+p.KeepDuration)
	}
	if p.KeepStorage != nil {
		limits = append(limits, fmt.Sprintf("keep-storage %s (%d bytes)", inventory.FormatBytes(*p.KeepStorage), *p.KeepStorage))
	}
	fmt.Fprintf(w, "prune plan at %s (%s)\n", inventory.FormatTime(p.Time), strings.Join(limits, ", "))
	fmt.Fprintf(w, "caches: %d, %d to drop\n", p.Caches, len(p.Drop))
	if len(p.Drop) > 0 {
		tw := inventory.NewTable(w)
		fmt.Fprintln(tw, "  NAME\tLAST WRITTEN\tREASON")
		for _, d := range p.Drop {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", inventory.Safe(d.Name), inventory.FormatTime(d.LastWritten), d.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(p.Broken) > 0 {
		fmt.Fprintf(w, "manifests that cannot be read: %d\n", len(p.Broken))
		tw := inventory.NewTable(w)
		for _, b := range p.Broken {
			fmt.Fprintf(tw, "  %s\t%s\n", inventory.Safe(b.Name), inventory.Safe(strings.Join(strings.Fields(b.Error), " ")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	tw := inventory.NewTable(w)
	fmt.Fprintf(tw, "blobs:\t%s\n", p.Blobs)
	fmt.Fprintf(tw, "  named by the kept caches:\t%s\n", p.Referenced)
	fmt.Fprintf(tw, "  unnamed, within the grace:\t%s\n", p.Young)
	fmt.Fprintf(tw, "  unnamed, to delete:\t%s\n", p.Sweep)
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.Missing > 0 {
		fmt.Fprintf(w, "%d blobs the kept caches name are missing; `s3cache verify --all` names them\n", p.Missing)
	}
	if len(p.SweepBlobs) > 0 {
		tw := inventory.NewTable(w)
		fmt.Fprintln(tw, "  DIGEST\tSIZE\tLAST MODIFIED")
		for _, b := range p.SweepBlobs[:min(len(p.SweepBlobs), tableBlobs)] {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", b.Digest, inventory.FormatBytes(b.Size), inventory.FormatTime(b.LastModified))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if n := len(p.SweepBlobs) - tableBlobs; n > 0 {
			fmt.Fprintf(w, "  ... and %d more (--format json lists them all)\n", n)
		}
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if p.Refused() {
		fmt.Fprintln(w, "refusing to sweep while manifests cannot be read (see --force)")
	}
	if r.DryRun {
		_, err := fmt.Fprintln(w, "dry run: nothing deleted")
		return err
	}
	if r.Result == nil {
		return nil
	}
	res := r.Result
	fmt.Fprintf(w, "dropped %d caches; deleted %d blobs, freed %s\n", len(res.Dropped), res.Deleted.Objects, inventory.FormatBytes(res.Deleted.Bytes))
	if len(res.Rewritten) > 0 {
		names := make([]string, len(res.Rewritten))
		for i, n := range res.Rewritten {
			names[i] = inventory.Safe(n)
		}
		fmt.Fprintf(w, "kept %d caches written again since the plan: %s\n", len(res.Rewritten), strings.Join(names, ", "))
	}
	if res.Rescued+res.Refreshed+res.Gone > 0 {
		fmt.Fprintf(w, "not deleted: %d named by manifests written since the plan, %d modified since the plan, %d already gone\n",
			res.Rescued, res.Refreshed, res.Gone)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return nil
}
