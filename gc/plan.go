package gc

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/s3cache/s3cache/inventory"
)

// Drop is a cache the plan drops: its manifest is deleted.
type Drop struct {
	Name        string    `json:"name"`
	Key         string    `json:"key"`
	LastWritten time.Time `json:"last_written"`
	Reason      string    `json:"reason"`
}

// BrokenManifest is a manifest prune cannot read.
type BrokenManifest struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// Blob is a blob the plan deletes.
type Blob struct {
	Digest       string    `json:"digest"`
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"last_modified"`
}

// Plan is what a prune would do, computed from one listing of the bucket.
type Plan struct {
	Time         time.Time `json:"time"`
	Grace        string    `json:"grace"`
	KeepDuration string    `json:"keep_duration,omitempty"`
	KeepStorage  *int64    `json:"keep_storage,omitempty"`
	Force        bool      `json:"force"`

	Caches int              `json:"caches"`
	Drop   []Drop           `json:"drop"`
	Broken []BrokenManifest `json:"broken"`

	// Blobs counts every blob; Referenced those the kept caches name;
	// Young the unreferenced ones within the grace, which stay; Sweep the
	// ones to delete, listed in SweepBlobs.
	Blobs      inventory.Count `json:"blobs"`
	Referenced inventory.Count `json:"referenced"`
	Young      inventory.Count `json:"young"`
	Sweep      inventory.Count `json:"sweep"`
	SweepBlobs []Blob          `json:"sweep_blobs"`
	// Missing counts blobs kept caches name that the bucket lacks.
	Missing  int      `json:"missing"`
	Warnings []string `json:"warnings"`

	cutoff     time.Time
	known      map[string]time.Time // manifest key -> LastModified accounted for
	referenced map[string]bool
	shards     map[string]int // shard prefix -> blobs listed in it
	digits     int            // hex digits in a shard prefix
}

// Refused reports whether the plan must not be executed: some manifests
// cannot be read and Force is off.
func (p *Plan) Refused() bool { return len(p.Broken) > 0 && !p.Force }

// RefusedError is returned when manifests that cannot be read stop a sweep.
type RefusedError struct{ Manifests []string }

func (e *RefusedError) Error() string {
	names := make([]string, len(e.Manifests))
	for i, n := range e.Manifests {
		names[i] = inventory.Safe(n)
	}
	return fmt.Sprintf("refusing to sweep: %d manifests cannot be read (%s), and something may still read them; "+
		"fix or delete them, or pass --force to treat their blobs as garbage",
		len(e.Manifests), strings.Join(names, ", "))
}

func (p *Plan) refusedError() error {
	names := make([]string, len(p.Broken))
	for i, b := range p.Broken {
		names[i] = b.Name
	}
	return &RefusedError{Manifests: names}
}

// Plan lists the bucket, reads every manifest, chooses the caches to drop
// and marks the blobs the others name; the unmarked blobs older than the
// grace are the sweep.
func (pr *Pruner) Plan(ctx context.Context) (*Plan, error) {
	now := pr.opts.now()
	inv, err := inventory.Load(ctx, pr.st, pr.layout, true, pr.opts.Inventory)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	plan := &Plan{
		Time:       now.UTC(),
		Grace:      inventory.FormatDuration(pr.opts.Grace),
		Force:      pr.opts.Force,
		Caches:     len(inv.Manifests),
		Drop:       []Drop{},
		Broken:     []BrokenManifest{},
		SweepBlobs: []Blob{},
		Warnings:   []string{},
		cutoff:     now.Add(-pr.opts.Grace),
		known:      map[string]time.Time{},
		referenced: map[string]bool{},
	}
	if pr.opts.KeepDuration > 0 {
		plan.KeepDuration = inventory.FormatDuration(pr.opts.KeepDuration)
	}
	if pr.opts.KeepStorage >= 0 {
		plan.KeepStorage = &pr.opts.KeepStorage
	}

	var readable []*inventory.Manifest
	for _, m := range inv.Manifests {
		if m.Broken() {
			plan.Broken = append(plan.Broken, BrokenManifest{Name: m.Name, Error: m.Err.Error()})
			plan.known[m.Key] = m.LastModified
			continue
		}
		readable = append(readable, m)
	}
	dropped := pr.chooseDrops(inv, readable, now, plan)
	for _, m := range readable {
		if dropped[m.Name] {
			// Left out of known: should the drop be skipped because the
			// manifest was rewritten, the sweep's re-listing reads it again.
			continue
		}
		plan.known[m.Key] = m.LastModified
		for _, d := range m.Digests() {
			plan.referenced[d] = true
		}
	}
	for d := range plan.referenced {
		if !inv.Present(d) {
			plan.Missing++
		}
	}

	digests := make([]string, 0, len(inv.Blobs))
	for d, obj := range inv.Blobs {
		digests = append(digests, d)
		plan.Blobs.Add(obj.Size)
		switch {
		case plan.referenced[d]:
			plan.Referenced.Add(obj.Size)
		case !obj.LastModified.Before(plan.cutoff):
			plan.Young.Add(obj.Size)
		default:
			plan.Sweep.Add(obj.Size)
			plan.SweepBlobs = append(plan.SweepBlobs, Blob{Digest: d, Key: obj.Key, Size: obj.Size, LastModified: obj.LastModified.UTC()})
		}
	}
	sort.Slice(plan.SweepBlobs, func(i, j int) bool { return plan.SweepBlobs[i].Key < plan.SweepBlobs[j].Key })
	plan.digits, plan.shards = shardBlobs(digests, plan.SweepBlobs, pr.opts.batchSize())
	plan.Warnings = append(plan.Warnings, skewWarnings(inv, now)...)
	return plan, nil
}

// chooseDrops picks the caches keep-duration and keep-storage drop.
func (pr *Pruner) chooseDrops(inv *inventory.Inventory, readable []*inventory.Manifest, now time.Time, plan *Plan) map[string]bool {
	dropped := map[string]bool{}
	drop := func(m *inventory.Manifest, reason string) {
		dropped[m.Name] = true
		plan.Drop = append(plan.Drop, Drop{Name: m.Name, Key: m.Key, LastWritten: m.LastModified.UTC(), Reason: reason})
	}
	if d := pr.opts.KeepDuration; d > 0 {
		for _, m := range readable {
			if now.Sub(m.LastModified) > d {
				drop(m, "not written in the last "+inventory.FormatDuration(d))
			}
		}
	}
	if limit := pr.opts.KeepStorage; limit >= 0 {
		var kept []*inventory.Manifest
		for _, m := range readable {
			if !dropped[m.Name] {
				kept = append(kept, m)
			}
		}
		// Newest first: the caches kept are the longest run of the most
		// recently written whose blobs fit, which is what dropping the
		// least recently written until they fit leaves.
		sort.SliceStable(kept, func(i, j int) bool {
			if !kept[i].LastModified.Equal(kept[j].LastModified) {
				return kept[i].LastModified.After(kept[j].LastModified)
			}
			return kept[i].Name < kept[j].Name
		})
		counted := map[string]bool{}
		var total int64
		over := false
		for _, m := range kept {
			if !over {
				var add int64
				var fresh []string
				for _, d := range m.Digests() {
					if !counted[d] && inv.Present(d) {
						add += inv.Size(d)
						fresh = append(fresh, d)
					}
				}
				if total+add <= limit {
					total += add
					for _, d := range fresh {
						counted[d] = true
					}
					continue
				}
				over = true
			}
			drop(m, "over keep-storage")
		}
	}
	sort.Slice(plan.Drop, func(i, j int) bool { return plan.Drop[i].Name < plan.Drop[j].Name })
	return dropped
}

// skewWarnings notes objects modified "in the future": the local clock is
// behind the store's, which shortens the grace by as much.
func skewWarnings(inv *inventory.Inventory, now time.Time) []string {
	var latest time.Time
	for _, obj := range inv.Blobs {
		if obj.LastModified.After(latest) {
			latest = obj.LastModified
		}
	}
	for _, m := range inv.Manifests {
		if m.LastModified.After(latest) {
			latest = m.LastModified
		}
	}
	if skew := latest.Sub(now); skew > time.Minute {
		return []string{fmt.Sprintf("an object was modified %s after this machine's clock says it is now; "+
			"a clock behind the store's shortens the grace by as much", skew.Round(time.Second))}
	}
	return nil
}
