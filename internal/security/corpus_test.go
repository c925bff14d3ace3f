package security

import (
	"regexp"
	"strings"
)

// hostile are values an attacker (or an unlucky analyst) may write where a
// DSL string, name or table reference goes. None contains NUL or invalid
// UTF-8: the language cannot spell them (grammar rejects both).
var hostile = dedupe([]string{
	// Quotes and their escapes.
	`'`, `"`, `''`, `'''`, `"'"`, `\'`, `\\'`, `\`, `\\`, `'\''`, `\"`,
	`'; DROP TABLE x; --`, `"; DROP TABLE x; --`, `x' OR '1'='1`, `' OR 1=1 --`,
	`admin'--`, `'); DROP TABLE x; --`, `x'); DELETE FROM x WHERE ('1'='1`,
	`E'\x27'`, `N'x'`, `X'27'`, "`", "`; DROP TABLE x; `",
	// Comments and statement separators.
	`/* */`, `a /* b */ c`, `*/ ; /*`, `/*`, `--`, `-- x`, `//`, `// x`, `#`,
	`;`, `a;b`, `; SELECT 1; `, `;;`,
	// Dollar quoting and placeholders.
	`$$`, `$$; DROP TABLE x; $$`, `$tag$ x $tag$`, `$1`, `?`, `:name`, `${x}`, `@x`,
	// Control characters (no NUL), newlines.
	"\n", "a\nb", "\r\n", "line1\n'; DROP TABLE x; --\nline3", "\t", "\x01", "\x07",
	"\x1b[31mred\x1b[0m", "\x7f", "\x08\x0c\x0b", "-- x\n; DROP TABLE x",
	// Unicode look-alikes of quote and semicolon, direction and joiner
	// marks, a combining sequence and its precomposed twin.
	"\u02bc", "x\u02bcy", "\uff07", "\u2019", "\u2018", "\u201c", "\uff02", "\uff1b",
	"\u202e'; DROP TABLE x; --\u202c", "\u200f", "\u200e", "a\u200db", "\u200b", "\ufeff",
	"e\u0301", "\u00e9", "😀",
	// LIKE wildcards and glob characters.
	`%`, `_`, `a%b`, `a_b`, `%_%`, `[x]`, `*`, `\%`, `\_`,
	// Blank and whitespace.
	``, ` `, ` a `,
	// Long values.
	strings.Repeat("x", 100_000),
	strings.Repeat("'", 5_000),
	strings.Repeat(`\'`, 5_000),
	strings.Repeat("'; DROP TABLE x; -- ", 2_000),
	strings.Repeat("\u00e9", 10_000),
})

// names are identifiers the language accepts that SQL reserves or treats
// specially: every one must be accepted wherever a name goes and
// round-trip exactly.
var names = []string{
	"select", "from", "order", "drop", "table", "group", "user", "limit",
	"union", "default", "case", "SELECT", "Drop", "_", "__x__", "x1",
	strings.Repeat("n", 5_000),
}

// tableNames are table references the language accepts whose parts SQL
// reserves, or which use '$' or a catalog.
var tableNames = []string{
	"SELECT.FROM", "order.group", "x$y.t$", "Mixed.Case", "drop", "memory.drop.table",
}

var (
	identRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	tablePartRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
)

// isTableRef reports whether the checker should accept s as a table
// reference: one to three identifier parts.
func isTableRef(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if !tablePartRE.MatchString(p) {
			return false
		}
	}
	return true
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// short is a value as a test name shows it.
func short(s string) string {
	if len(s) > 24 {
		return strings.ToValidUTF8(s[:24], "") + "…"
	}
	return s
}
