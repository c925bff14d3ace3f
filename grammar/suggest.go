package grammar

import "strings"

// Suggest returns the candidate closest to name by edit distance, when it
// is close enough to be a plausible misspelling (at most one edit per four
// letters, between one and three), else "". Case is ignored; ties go to
// the candidate that sorts first. Every "did you mean" of linkaud — the
// parser's, the checker's, the CLI's — uses it, so they agree.
func Suggest(name string, candidates []string) string {
	best, bestDist := "", 0
	limit := max(1, min(3, (len(name)+2)/4))
	lower := strings.ToLower(name)
	for _, c := range candidates {
		if c == name || c == "" {
			continue
		}
		d := editDistance(lower, strings.ToLower(c))
		if d > limit {
			continue
		}
		if best == "" || d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: Levenshtein with
// transpositions of adjacent letters.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
