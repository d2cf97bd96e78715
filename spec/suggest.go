package spec

import (
	"fmt"
	"strings"
)

// suggest returns " (did you mean "key"?)" for the field key most likely
// meant by an unknown key: the same but for case, one edit or swap of two
// neighbours away per four characters, or extended by a unit or suffix
// (memory for memoryMiB); "" when none is close. The Field is returned too.
func suggest(key string, fs []Field) (string, *Field) {
	best, bestDist := -1, 0
	lk := strings.ToLower(key)
	for i, f := range fs {
		lf := strings.ToLower(f.Key)
		d := editDistance(lk, lf)
		if len(lk) >= 4 && (strings.HasPrefix(lf, lk) || strings.HasPrefix(lk, lf)) {
			d = min(d, 1)
		}
		if d <= max(1, len(key)/4) && (best < 0 || d < bestDist) {
			best, bestDist = i, d
		}
	}
	if best < 0 {
		return "", nil
	}
	return fmt.Sprintf(" (did you mean %q?)", fs[best].Key), &fs[best]
}

// editDistance is the optimal string alignment distance of a and b: the
// insertions, deletions, substitutions and swaps of two neighbouring
// characters that turn one into the other (podCIRD is one from podCIDR).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
