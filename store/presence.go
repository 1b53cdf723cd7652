package store

import "time"

// PresentTTL is how long a Prober vouches for a blob it saw in the bucket
// (NotePresent): a merge=true export does not check again, within it, a
// blob of another writer that this process saw less than that ago. The
// check guards against deletions outside the prune protocol (a lifecycle
// rule, prune --force, a person); its answer is already as old as the
// build when the export writes (it is made when the build starts), so ten
// minutes more do not change what it promises for builds of that length.
const PresentTTL = 10 * time.Minute

// maxPresent bounds the keys a Prober remembers as present (about 150
// bytes each).
const maxPresent = 200_000

// presentKey is a key of the Prober's presence memory: a key under a
// prefix as Query.Where names it.
type presentKey struct{ where, key string }

// SeenPresent reports, for each of keys under where, whether NotePresent
// recorded it less than PresentTTL before now.
func (p *Prober) SeenPresent(where string, keys []string, now time.Time) []bool {
	seen := make([]bool, len(keys))
	if p == nil || where == "" {
		return seen
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, k := range keys {
		if at, ok := p.present[presentKey{where, k}]; ok && now.Sub(at) < PresentTTL && !at.After(now) {
			seen[i] = true
		}
	}
	return seen
}

// NotePresent records that keys under where existed at at (when the check
// that found them started). When the memory is full it first forgets what
// has expired, then records no more.
func (p *Prober) NotePresent(where string, keys []string, at time.Time) {
	if p == nil || where == "" || len(keys) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.present == nil {
		p.present = map[presentKey]time.Time{}
	}
	if len(p.present)+len(keys) > maxPresent {
		for k, t := range p.present {
			if at.Sub(t) >= PresentTTL {
				delete(p.present, k)
			}
		}
	}
	for _, k := range keys {
		if len(p.present) >= maxPresent {
			return
		}
		p.present[presentKey{where, k}] = at
	}
}

// NoteAbsent forgets keys under where: a check found them gone.
func (p *Prober) NoteAbsent(where string, keys []string) {
	if p == nil || where == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		delete(p.present, presentKey{where, k})
	}
}
