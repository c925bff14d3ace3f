package planner

import (
	"strconv"
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// duckDB writes DuckDB SQL.
//
// Identifiers are case-insensitive in DuckDB even when quoted, so names are
// quoted as written. String literals use the standard form: a quote is
// doubled and a backslash is an ordinary character. VARCHAR compares and
// sorts by its UTF-8 bytes unless a collation is set; SortKey adds
// COLLATE "binary" so that a default_collation setting cannot change the
// order the differ relies on.
type duckDB struct{}

func (duckDB) Name() string { return "duckdb" }

func (duckDB) BackslashEscapes() bool { return false }

func (duckDB) Quote(name string) string { return quoteIdent(name) }

func (duckDB) NotDistinct(a, b string) string { return a + " IS NOT DISTINCT FROM " + b }

func (duckDB) Ident(name string) string { return quoteIdent(name) }

// String writes a standard literal; control characters (a newline above
// all) become chr(n) terms, so that a literal is always one line of SQL
// text and re-indenting the statement cannot change its value.
func (duckDB) String(s string) string {
	if !hasControl(s) {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if isControl(s[i]) {
			if i > start {
				parts = append(parts, "'"+strings.ReplaceAll(s[start:i], "'", "''")+"'")
			}
			parts = append(parts, "chr("+strconv.Itoa(int(s[i]))+")")
			start = i + 1
		}
	}
	if start < len(s) {
		parts = append(parts, "'"+strings.ReplaceAll(s[start:], "'", "''")+"'")
	}
	return "(" + strings.Join(parts, " || ") + ")"
}

// Timestamp writes a TIMESTAMP literal (microseconds), or TIMESTAMP_NS when
// t has a sub-microsecond part, so that comparisons stay exact: DuckDB
// compares TIMESTAMP with TIMESTAMP_NS at nanosecond precision.
func (duckDB) Timestamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()%1000 != 0 {
		return "TIMESTAMP_NS '" + t.Format("2006-01-02 15:04:05.000000000") + "'"
	}
	if t.Nanosecond() != 0 {
		return "TIMESTAMP '" + t.Format("2006-01-02 15:04:05.000000") + "'"
	}
	return "TIMESTAMP '" + t.Format("2006-01-02 15:04:05") + "'"
}

func (duckDB) TimeValue(expr string) string { return expr }

func (duckDB) Precision() time.Duration { return time.Nanosecond }

func (duckDB) Text(expr string) string { return "CAST(" + expr + " AS VARCHAR)" }

func (duckDB) TextMatch(op dsl.Op, x, s string) string {
	switch op {
	case dsl.OpStartsWith:
		return "starts_with(" + x + ", " + s + ")"
	case dsl.OpEndsWith:
		return "ends_with(" + x + ", " + s + ")"
	}
	return "contains(" + x + ", " + s + ")"
}

// Order: DuckDB compares text by its bytes unless a collation is set.
func (duckDB) Order(a, op, b string) string { return a + " " + op + " " + b }

func (duckDB) SortKey(col string) string { return col + ` COLLATE "binary"` }

// Materialized keeps the members apart from the rows' subqueries: DuckDB
// 1.5.6 inlines a plain CTE, and on some shapes (a NOT EXISTS whose filter
// the table statistics prove empty, below a chain through a junction) its
// optimizer then fails with an internal error; the randomized differential
// test found one.
func (duckDB) Materialized() string { return " MATERIALIZED" }
