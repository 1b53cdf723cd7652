package inventory

import (
	"context"
	"fmt"
	"io"

	"github.com/s3cache/s3cache/store"
)

// DUReport is what the bucket holds under the cache prefixes.
type DUReport struct {
	// Blobs is every blob object; Referenced those some readable manifest
	// names, Shared those that two or more name (a part of Referenced), and
	// Unreferenced those none names: prune's garbage once older than the grace.
	Blobs        Count `json:"blobs"`
	Referenced   Count `json:"referenced"`
	Shared       Count `json:"shared"`
	Unreferenced Count `json:"unreferenced"`
	// Missing counts blobs manifests name that are not in the bucket, with
	// the sizes the manifests give.
	Missing   Count `json:"missing"`
	Manifests Count `json:"manifests"`
	// Broken counts manifests that cannot be read; their blobs are among
	// Unreferenced, as nothing tells which they are.
	Broken int `json:"broken_manifests"`
	// Other counts objects under the blobs prefix that are not blobs.
	Other Count `json:"other"`
}

// DU lists the manifests and the blobs and reads every manifest.
func DU(ctx context.Context, st store.Store, l store.Layout, opts Options) (*DUReport, error) {
	inv, err := Load(ctx, st, l, true, opts)
	if err != nil {
		return nil, err
	}
	return inv.DUReport(), nil
}

// DUReport counts the inventory; it needs the blobs listed.
func (inv *Inventory) DUReport() *DUReport {
	r := &DUReport{}
	refs := inv.Referenced()
	for d, obj := range inv.Blobs {
		r.Blobs.Add(obj.Size)
		n := len(inv.RefBy(d))
		if n == 0 {
			r.Unreferenced.Add(obj.Size)
			continue
		}
		r.Referenced.Add(obj.Size)
		if n >= 2 {
			r.Shared.Add(obj.Size)
		}
	}
	for d := range refs {
		if !inv.Present(d) {
			r.Missing.Add(inv.Size(d))
		}
	}
	for _, m := range inv.Manifests {
		r.Manifests.Add(m.Size)
		if m.Broken() {
			r.Broken++
		}
	}
	for _, obj := range inv.Foreign {
		r.Other.Add(obj.Size)
	}
	return r
}

// Write renders the report.
func (r *DUReport) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		return WriteJSON(w, r)
	}
	tw := NewTable(w)
	fmt.Fprintln(tw, "\tOBJECTS\tBYTES")
	row := func(label string, c Count) {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", label, c.Objects, FormatBytes(c.Bytes))
	}
	row("blobs", r.Blobs)
	row("  referenced", r.Referenced)
	row("    shared", r.Shared)
	row("  unreferenced", r.Unreferenced)
	row("manifests", r.Manifests)
	if r.Other.Objects > 0 {
		row("other objects", r.Other)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if r.Missing.Objects > 0 {
		fmt.Fprintf(w, "%d referenced blobs (%s) are missing from the bucket; `s3cache verify --all` names them\n",
			r.Missing.Objects, FormatBytes(r.Missing.Bytes))
	}
	if r.Broken > 0 {
		fmt.Fprintf(w, "%d manifests cannot be read; the blobs they name are counted as unreferenced\n", r.Broken)
	}
	return nil
}
