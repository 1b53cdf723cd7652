package inventory

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/s3cache/s3cache/store"
)

// CacheSummary is one row of ls.
type CacheSummary struct {
	Name        string    `json:"name"`
	Key         string    `json:"key"`
	LastWritten time.Time `json:"last_written"`
	Layers      int       `json:"layers"`
	Records     int       `json:"records"`
	// TotalBytes is what the cache's blobs hold; UniqueBytes the part no
	// other cache names, i.e. what dropping this cache alone would free.
	TotalBytes  int64  `json:"total_bytes"`
	UniqueBytes int64  `json:"unique_bytes"`
	Error       string `json:"error,omitempty"` // set for a broken manifest
	// Signature is what the manifest's signature metadata says.
	Signature Signature `json:"signature"`
}

// LsReport is every cache under the manifests prefix.
type LsReport struct {
	Caches []CacheSummary `json:"caches"`
	Broken int            `json:"broken"`
}

// Ls reads every manifest (not the blobs listing: sizes come from the
// manifests, with a HEAD only for a blob whose manifest gives none).
func Ls(ctx context.Context, st store.Store, l store.Layout, opts Options) (*LsReport, error) {
	inv, err := Load(ctx, st, l, false, opts)
	if err != nil {
		return nil, err
	}
	if err := inv.StatUnsized(ctx, st, opts); err != nil {
		return nil, err
	}
	return inv.LsReport(), nil
}

// Summary sums up one cache.
func (inv *Inventory) Summary(m *Manifest) CacheSummary {
	s := CacheSummary{Name: m.Name, Key: m.Key, LastWritten: m.LastModified.UTC(), Layers: len(m.Layers), Records: m.Records, Signature: m.Signature}
	if m.Broken() {
		s.Error = m.Err.Error()
		return s
	}
	for _, l := range m.Layers {
		if !inv.Present(l.Digest) {
			continue
		}
		size := inv.Size(l.Digest)
		s.TotalBytes += size
		if len(inv.RefBy(l.Digest)) == 1 {
			s.UniqueBytes += size
		}
	}
	return s
}

// LsReport sums up every cache.
func (inv *Inventory) LsReport() *LsReport {
	r := &LsReport{Caches: []CacheSummary{}}
	for _, m := range inv.Manifests {
		r.Caches = append(r.Caches, inv.Summary(m))
		if m.Broken() {
			r.Broken++
		}
	}
	return r
}

// Write renders the report.
func (r *LsReport) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		return WriteJSON(w, r)
	}
	if len(r.Caches) == 0 {
		_, err := fmt.Fprintln(w, "no caches")
		return err
	}
	tw := NewTable(w)
	fmt.Fprintln(tw, "NAME\tLAST WRITTEN\tLAYERS\tRECORDS\tTOTAL\tUNIQUE")
	for _, c := range r.Caches {
		if c.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\tbroken\t-\t-\t-\n", Safe(c.Name), FormatTime(c.LastWritten))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", Safe(c.Name), FormatTime(c.LastWritten), c.Layers, c.Records,
			FormatBytes(c.TotalBytes), FormatBytes(c.UniqueBytes))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if r.Broken > 0 {
		fmt.Fprintf(w, "\n%d of %d manifests cannot be read:\n", r.Broken, len(r.Caches))
		for _, c := range r.Caches {
			if c.Error != "" {
				fmt.Fprintf(w, "  %s: %s\n", Safe(c.Name), oneLine(c.Error))
			}
		}
	}
	return nil
}
