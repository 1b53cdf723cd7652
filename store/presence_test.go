package store_test

import (
	"testing"
	"time"

	"github.com/s3cache/s3cache/store"
)

func TestProberPresence(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const where, other = "endpoint\x00bucket\x00blobs/", "endpoint\x00bucket2\x00blobs/"
	p := store.NewProber()
	p.NotePresent(where, []string{"a", "b"}, t0)
	p.NoteAbsent(where, []string{"b"})
	for _, tc := range []struct {
		name  string
		where string
		at    time.Time
		want  []bool
	}{
		{"just seen", where, t0, []bool{true, false, false}},
		{"within the TTL", where, t0.Add(store.PresentTTL - time.Second), []bool{true, false, false}},
		{"at the TTL", where, t0.Add(store.PresentTTL), []bool{false, false, false}},
		{"before it was seen (clock moved back)", where, t0.Add(-time.Second), []bool{false, false, false}},
		{"another bucket", other, t0, []bool{false, false, false}},
		{"no prefix named", "", t0, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.SeenPresent(tc.where, []string{"a", "b", "c"}, tc.at)
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("seen %v, want %v", got, tc.want)
					break
				}
			}
		})
	}
	var nilProber *store.Prober
	nilProber.NotePresent(where, []string{"a"}, t0)
	if got := nilProber.SeenPresent(where, []string{"a"}, t0); got[0] {
		t.Error("a nil Prober remembered a blob")
	}
}
