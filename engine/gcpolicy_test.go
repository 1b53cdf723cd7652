package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/util/disk"
)

func TestGCPolicySpace(t *testing.T) {
	dstat := disk.DiskStat{Total: 100e9, Free: 50e9}
	def := gcPolicy(config.GCConfig{}, nil, dstat)
	set := gcPolicy(config.GCConfig{
		GCReservedSpace: config.DiskSpace{Bytes: 1000e6},
		GCMinFreeSpace:  config.DiskSpace{Bytes: 2000e6},
		GCMaxUsedSpace:  config.DiskSpace{Bytes: 3000e6},
	}, nil, dstat)
	if len(def) != len(set) || len(set) < 2 {
		t.Fatalf("policies have %d and %d rules", len(def), len(set))
	}
	last := set[len(set)-1]
	if !last.All || last.ReservedSpace != 1000e6 || last.MinFreeSpace != 2000e6 || last.MaxUsedSpace != 3000e6 {
		t.Errorf("last rule = %+v, want all with reserved 1000MB, free 2000MB, max 3000MB", last)
	}
	if d := def[len(def)-1]; d.ReservedSpace == 1000e6 && d.MaxUsedSpace == 3000e6 {
		t.Errorf("default policy took the given space: %+v", d)
	}
}

func TestSnapshotterRefusesUnknown(t *testing.T) {
	for _, name := range []string{"native", "overlayfs"} {
		if sn, err := snapshotter(t.TempDir(), name); err != nil || sn.Name != name {
			t.Errorf("snapshotter(%q) = %q, %v", name, sn.Name, err)
		}
	}
	if _, err := snapshotter(t.TempDir(), "stargz"); err == nil {
		t.Error("stargz accepted")
	}
}

func TestGCPolicyRules(t *testing.T) {
	dstat := disk.DiskStat{Total: 100e9, Free: 50e9}
	rules := []config.GCPolicy{
		{Filters: []string{"type==source.local"}, KeepDuration: config.Duration{Duration: 48 * time.Hour}, KeepBytes: config.DiskSpace{Bytes: 512e6}},
		{All: true, ReservedSpace: config.DiskSpace{Percentage: 10}, KeepBytes: config.DiskSpace{Bytes: 1}},
	}
	// Rules replace the default policy, so the space is not read.
	got := gcPolicy(config.GCConfig{GCReservedSpace: config.DiskSpace{Bytes: 7}}, rules, dstat)
	want := []client.PruneInfo{
		{Filter: []string{"type==source.local"}, KeepDuration: 48 * time.Hour, ReservedSpace: 512e6},
		{All: true, ReservedSpace: 10e9},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("policy %+v, want %+v", got, want)
	}
}
