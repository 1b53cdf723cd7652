package gc

import (
	"strings"

	"github.com/s3cache/s3cache/store"
)

// shardBlobs chooses how to group the sweep for its re-check: by shard,
// the digest's algorithm and first k hex digits, so that a batch can
// re-read a shard with a LIST where that takes fewer requests than a HEAD
// per candidate. It picks the k that needs the fewest requests, counting
// a shard split over several batches as listed by each, among those whose
// shards are at most maxShardPages LIST pages (the re-check must stay
// short: it opens the window the protocol closes), and returns k and the
// number of blobs per shard.
func shardBlobs(digests []string, sweep []Blob, batch int) (int, map[string]int) {
	bestK, bestCost := -1, 0
	var best map[string]int
	for k := 0; k <= maxShardDigits; k++ {
		counts := map[string]int{}
		for _, d := range digests {
			counts[shardOf(d, k)]++
		}
		fits := true
		for _, n := range counts {
			if pages(n) > maxShardPages {
				fits = false
				break
			}
		}
		if !fits {
			continue
		}
		cands := map[string]int{}
		for _, b := range sweep {
			cands[shardOf(b.Digest, k)]++
		}
		cost := 0
		for sh, c := range cands {
			cost += min(c, pages(counts[sh])*((c+batch-1)/batch+1))
		}
		// Ties go to the longer prefix: smaller shards, shorter re-checks.
		if bestK < 0 || cost <= bestCost {
			bestK, bestCost, best = k, cost, counts
		}
	}
	if bestK < 0 {
		// Not seen with real digests; shards this small are re-checked with HEADs.
		bestK, best = maxShardDigits, map[string]int{}
		for _, d := range digests {
			best[shardOf(d, bestK)]++
		}
	}
	return bestK, best
}

// pages is the number of LIST requests n keys take, as store.ProbeCounted
// counts them when it chooses between a LIST and HEADs.
func pages(n int) int { return store.ListRequests(n) }

func shardOf(dgst string, k int) string {
	i := strings.IndexByte(dgst, ':')
	hex := dgst[i+1:]
	return dgst[:i+1] + hex[:min(k, len(hex))]
}

// segment is the candidates of one batch that share a shard.
type segment struct {
	shard string // shard prefix of the digest
	blobs []Blob
}

func (p *Plan) batches(size int) [][]segment {
	var out [][]segment
	var cur []segment
	n := 0
	for _, b := range p.SweepBlobs {
		sh := shardOf(b.Digest, p.digits)
		if n == size {
			out = append(out, cur)
			cur, n = nil, 0
		}
		if len(cur) == 0 || cur[len(cur)-1].shard != sh {
			cur = append(cur, segment{shard: sh})
		}
		cur[len(cur)-1].blobs = append(cur[len(cur)-1].blobs, b)
		n++
	}
	if n > 0 {
		out = append(out, cur)
	}
	return out
}

// batch re-checks, re-marks and deletes one batch, in that order: a blob
