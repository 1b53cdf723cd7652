package spec

import (
	"fmt"
	"slices"
	"strings"
)

// unknownAttrWarnings lists attributes FromAttrs does not understand, in
// sorted key order, with a suggestion for likely typos. BuildKit ignores
// unknown attributes silently, which turns a typo into a default.
func unknownAttrWarnings(attrs map[string]string) []string {
	var keys []string
	for k := range attrs {
		if k != "type" && !slices.Contains(knownAttrs, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var warnings []string
	for _, k := range keys {
		w := fmt.Sprintf("unknown attribute %q ignored", k)
		if s := suggest(k); s != "" {
			w += fmt.Sprintf("; did you mean %q?", s)
		}
		warnings = append(warnings, w)
	}
	return warnings
}

// suggest returns the known attribute closest to key: first one that only
// differs in case, dashes or underscores (BuildKit mixes both separators),
// then the nearest within edit distance 2, ties going to the earlier one.
func suggest(key string) string {
	norm := normalizeKey(key)
	for _, a := range knownAttrs {
		if normalizeKey(a) == norm {
			return a
		}
	}
	lower := []rune(strings.ToLower(key))
	best, bestDist := "", 3
	for _, a := range knownAttrs {
		if d := editDistance(lower, []rune(a), bestDist); d < bestDist {
			best, bestDist = a, d
		}
	}
	return best
}

func normalizeKey(s string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
}

// editDistance is the optimal-string-alignment Damerau-Levenshtein distance
// (adjacent transpositions cost 1). It returns limit as soon as the result is
// known to be at least limit, which keeps huge fuzzed keys cheap.
func editDistance(a, b []rune, limit int) int {
	if abs(len(a)-len(b)) >= limit {
		return limit
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], limit)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
