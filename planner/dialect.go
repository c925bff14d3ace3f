package planner

import (
	"fmt"
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// Dialect is what differs between warehouses in the SQL the planner writes.
// Everything else (the shape of the statement, semi-joins, the meaning of
// each construct) is shared, so a new warehouse is one file implementing
// these methods and a line in DialectFor.
//
// Every method receives trusted SQL fragments (expr, x, s, col) built by the
// planner, and untrusted DSL values only as Go strings it must quote itself.
type Dialect interface {
	// Name is the dialect's name as the CLI and the executor spell it.
	Name() string
	// Ident quotes one part of a table or column name, applying the
	// warehouse's rule for unquoted identifiers (DuckDB: case-insensitive;
	// Snowflake: stored upper case), so that SQL keywords and any
	// character are safe.
	Ident(name string) string
	// String is a string literal (or constant expression) whose value is
	// exactly s, on one line of SQL text: the planner re-indents statements.
	// NUL bytes and invalid UTF-8 have already been rejected.
	String(s string) string
	// Timestamp is a timestamp literal without a zone for the wall-clock
	// time of t in UTC, exact to t's nanosecond where the warehouse can
	// compare at that precision.
	Timestamp(t time.Time) string
	// Text casts expr to the warehouse's text type.
	Text(expr string) string
	// TextMatch is the boolean test `x op s` for dsl.OpContains,
	// dsl.OpStartsWith or dsl.OpEndsWith, with no wildcard characters: both
	// operands are text expressions.
	TextMatch(op dsl.Op, x, s string) string
	// SortKey wraps a text column for ORDER BY so that it sorts in byte
	// order of its UTF-8 text whatever the session or column collation.
	SortKey(col string) string
	// Materialized is what goes between AS and the body of a CTE to have
	// it computed once (" MATERIALIZED"), or "" where the warehouse
	// decides by itself.
	Materialized() string
}

// Dialects by name.
var (
	DuckDB    Dialect = duckDB{}
	Snowflake Dialect = snowflake{}
)

// DialectFor returns the dialect named name ("duckdb" or "snowflake").
func DialectFor(name string) (Dialect, error) {
	switch name {
	case "duckdb", "":
		return DuckDB, nil
	case "snowflake":
		return Snowflake, nil
	}
	return nil, fmt.Errorf("planner: unknown dialect %q: duckdb or snowflake", name)
}

// quoteIdent double-quotes s, doubling embedded quotes: the SQL standard
// form both dialects share.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// isControl reports whether c is an ASCII control character, which string
// literals spell out rather than embed.
func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if isControl(s[i]) {
			return true
		}
	}
	return false
}

// isUnquotedIdent reports whether s could be written as an unquoted
// identifier, which is when the warehouse's case rule applies to it.
func isUnquotedIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return true
}
