package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/s3cache/s3cache/store"
)

// LayerInfo is a layer of an inspected cache and the other caches that
// name its blob.
type LayerInfo struct {
	Layer
	SharedWith []string `json:"shared_with"`
}

// RecordInfo is one cache record: a step's cache key, how many inputs it
// links to, how many results (layer chains) it has and when the oldest and
// newest of them were created. A merged manifest (merge=true) gathers
// several writers' results on one record; their ages show what merge_keep
// will drop next.
type RecordInfo struct {
	Digest  string `json:"digest"`
	Inputs  int    `json:"inputs"`
	Results int    `json:"results"`
	// Oldest and Newest are nil when no result has a createdAt.
	Oldest *time.Time `json:"oldest_created,omitempty"`
	Newest *time.Time `json:"newest_created,omitempty"`
}

// created widens the record's oldest and newest to t; a zero t is a
// result without createdAt, which says nothing about age.
func (r *RecordInfo) created(t time.Time) {
	if t.IsZero() {
		return
	}
	if r.Oldest == nil || t.Before(*r.Oldest) {
		r.Oldest = &t
	}
	if r.Newest == nil || t.After(*r.Newest) {
		r.Newest = &t
	}
}

// InspectReport describes one cache.
type InspectReport struct {
	CacheSummary
	// SharedBytes is what its blobs that other caches also name hold.
	SharedBytes int64        `json:"shared_bytes"`
	LayerList   []LayerInfo  `json:"layer_list"`
	RecordList  []RecordInfo `json:"record_list"`
}

// InspectReports is the report of every name inspected.
type InspectReports struct {
	Caches []*InspectReport `json:"caches"`
}

// ErrNoCache is the condition of a name with no manifest.
var ErrNoCache = errors.New("no such cache")

// Inspect describes the caches of the given names; every manifest under
// the prefix is read to find which blobs they share. A name without a
// manifest is an error wrapping ErrNoCache, returned with the report of
// the others.
func Inspect(ctx context.Context, st store.Store, l store.Layout, names []string, opts Options) (*InspectReports, error) {
	inv, err := Load(ctx, st, l, false, opts)
	if err != nil {
		return nil, err
	}
	if err := inv.StatUnsized(ctx, st, opts); err != nil {
		return nil, err
	}
	out := &InspectReports{Caches: []*InspectReport{}}
	var missing []string
	for _, name := range names {
		m := inv.Manifest(name)
		if m == nil {
			missing = append(missing, name)
			continue
		}
		r, err := inv.inspect(ctx, st, m, opts)
		if errors.Is(err, store.ErrNotFound) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, err
		}
		out.Caches = append(out.Caches, r)
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("inspect %s: %w under %q", strings.Join(missing, ", "), ErrNoCache, l.ManifestsDir())
	}
	return out, nil
}

func (inv *Inventory) inspect(ctx context.Context, st store.Store, m *Manifest, opts Options) (*InspectReport, error) {
	r := &InspectReport{CacheSummary: inv.Summary(m), LayerList: []LayerInfo{}, RecordList: []RecordInfo{}}
	if m.Broken() {
		return r, nil
	}
	for _, layer := range m.Layers {
		info := LayerInfo{Layer: layer, SharedWith: []string{}}
		if info.Size == 0 {
			info.Size = inv.Size(layer.Digest)
		}
		for _, other := range inv.RefBy(layer.Digest) {
			if other != m.Name {
				info.SharedWith = append(info.SharedWith, other)
			}
		}
		if len(info.SharedWith) > 0 {
			r.SharedBytes += info.Size
		}
		r.LayerList = append(r.LayerList, info)
	}
	// The records are read again here rather than kept for every manifest.
	dt, err := store.ReadAll(ctx, st, m.Key, opts.maxManifestSize())
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", Safe(m.Name), err)
	}
	cfg, err := decodeConfig(dt)
	if err != nil {
		// Rewritten with garbage since it was listed.
		r.Error = err.Error()
		return r, nil
	}
	for _, rec := range cfg.Records {
		info := RecordInfo{Digest: rec.Digest.String(), Results: len(rec.Results) + len(rec.ChainedResults)}
		for _, in := range rec.Inputs {
			info.Inputs += len(in)
		}
		for _, res := range rec.Results {
			info.created(res.CreatedAt)
		}
		for _, res := range rec.ChainedResults {
			info.created(res.CreatedAt)
		}
		r.RecordList = append(r.RecordList, info)
	}
	return r, nil
}

// Write renders the reports.
func (rs *InspectReports) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		return WriteJSON(w, rs)
	}
	for i, r := range rs.Caches {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := r.write(w); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

func (r *InspectReport) write(w io.Writer) error {
	fmt.Fprintf(w, "cache:        %s\n", Safe(r.Name))
	fmt.Fprintf(w, "key:          %s\n", Safe(r.Key))
	fmt.Fprintf(w, "last written: %s\n", FormatTime(r.LastWritten))
	fmt.Fprintf(w, "signature:    %s\n", r.Signature)
	if r.Error != "" {
		_, err := fmt.Fprintf(w, "broken:       %s\n", oneLine(r.Error))
		return err
	}
	fmt.Fprintf(w, "bytes:        %s total, %s unique, %s shared\n",
		FormatBytes(r.TotalBytes), FormatBytes(r.UniqueBytes), FormatBytes(r.SharedBytes))
	fmt.Fprintf(w, "\nlayers: %d\n", len(r.LayerList))
	tw := NewTable(w)
	fmt.Fprintln(tw, "DIGEST\tSIZE\tMEDIA TYPE\tCREATED\tSHARED WITH")
	for _, l := range r.LayerList {
		created := "-"
		if l.Created != nil {
			created = FormatTime(*l.Created)
		}
		shared := "-"
		if len(l.SharedWith) > 0 {
			names := make([]string, len(l.SharedWith))
			for i, n := range l.SharedWith {
				names[i] = Safe(n)
			}
			shared = strings.Join(names, ", ")
		}
		mt := l.MediaType
		if mt == "" {
			mt = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", Safe(l.Digest), FormatBytes(l.Size), Safe(mt), created, shared)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nrecords: %d\n", len(r.RecordList))
	tw = NewTable(w)
	fmt.Fprintln(tw, "DIGEST\tINPUTS\tRESULTS\tOLDEST\tNEWEST")
	for _, rec := range r.RecordList {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", Safe(rec.Digest), rec.Inputs, rec.Results, formatOptTime(rec.Oldest), formatOptTime(rec.Newest))
	}
	return tw.Flush()
}

func formatOptTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return FormatTime(*t)
}
