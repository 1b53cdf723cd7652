package store

import "time"

// Internals of the Prober and its Index, for store_test.

func (x *Index) Complete() bool  { return x.complete }
func (x *Index) Through() string { return x.through }

var KeyspaceFraction = keyspaceFraction

const CrowdedTTL = crowdedTTL

func (p *Prober) Remembered(where string, now time.Time) (float64, bool) {
	return p.objects(where, now)
}

func (p *Prober) Remember(where string, objects float64, now time.Time) { p.set(where, objects, now) }
