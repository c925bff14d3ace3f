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
	// Quote quotes a name the planner made up (its relations, their
	// columns, the result columns): lower case ASCII letters, digits and
	// underscores, to be used exactly as written.
	Quote(name string) string
	// NotDistinct is the equality of two values of the same type where
	// NULL equals NULL (IS NOT DISTINCT FROM), for joining on values that
	// may be NULL.
	NotDistinct(a, b string) string
	// Ident quotes one part of a table or column name, applying the
	// warehouse's rule for unquoted identifiers (DuckDB: case-insensitive;
	// Snowflake: stored upper case), so that SQL keywords and any
	// character are safe.
	Ident(name string) string
	// String is a string literal (or constant expression) whose value is
	// exactly s, on one line of SQL text: the planner re-indents statements.
	// NUL bytes and invalid UTF-8 have already been rejected.
	String(s string) string
	// BackslashEscapes reports whether a backslash in String's literals
	// escapes the next character (Snowflake) rather than standing for
	// itself (DuckDB, standard SQL).
	BackslashEscapes() bool
	// Timestamp is a timestamp literal without a zone for the wall-clock
	// time of t in UTC, exact to t's nanosecond where the warehouse can
	// compare at that precision.
	Timestamp(t time.Time) string
	// TimeValue is expr, a date or timestamp column (or a value of one),
	// as a value Timestamp's literals compare with: expr itself where the
	// warehouse compares dates and timestamps of any kind with them
	// (every dialect but BigQuery, whose DATE, DATETIME and TIMESTAMP
	// do not compare with each other).
	TimeValue(expr string) string
	// Precision is the finest time the warehouse's timestamps hold: a
	// window's bounds are rounded inward to it, which keeps the test exact
	// for the values a column can hold.
	Precision() time.Duration
	// Text casts expr to the warehouse's text type.
	Text(expr string) string
	// TextMatch is the boolean test `x op s` for dsl.OpContains,
	// dsl.OpStartsWith or dsl.OpEndsWith, with no wildcard characters: both
	// operands are text expressions.
	TextMatch(op dsl.Op, x, s string) string
	// Order is the ordering comparison a op b (op one of < <= > >=), with
	// text compared by its bytes (UTF-8 code point order) where the
	// warehouse would otherwise follow a locale.
	Order(a, op, b string) string
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
	DuckDB     Dialect = duckDB{}
	Snowflake  Dialect = snowflake{}
	Postgres   Dialect = postgres{}
	Redshift   Dialect = redshift{}
	BigQuery   Dialect = bigQuery{}
	Databricks Dialect = databricks{}
)

// Dialects lists every dialect, by name.
var Dialects = []Dialect{DuckDB, Snowflake, Postgres, Redshift, BigQuery, Databricks}

// DialectNames is the list of dialect names, for messages.
func DialectNames() string {
	names := make([]string, len(Dialects))
	for i, d := range Dialects {
		names[i] = d.Name()
	}
	return strings.Join(names, ", ")
}

// DialectFor returns the dialect named name ("" is duckdb).
func DialectFor(name string) (Dialect, error) {
	if name == "" {
		return DuckDB, nil
	}
	for _, d := range Dialects {
		if d.Name() == name {
			return d, nil
		}
	}
	return nil, fmt.Errorf("planner: unknown dialect %q: one of %s", name, DialectNames())
}

// ForWarehouse returns the dialect of a workspace's warehouse block: its
// type, with exact names when the block says exact_names true.
func ForWarehouse(w *dsl.Warehouse) (Dialect, error) {
	if w == nil {
		return DuckDB, nil
	}
	d, err := DialectFor(w.Type)
	if err != nil {
		return nil, err
	}
	if w.Settings["exact_names"] == "true" {
		d = ExactNames(d)
	}
	return d, nil
}

// ExactNames returns d with table and column names quoted exactly as
// written, case included, instead of by the warehouse's rule for unquoted
// names: for objects created with quoted mixed-case names
// ("UserProfiles"). DuckDB matches names case-insensitively either way.
func ExactNames(d Dialect) Dialect {
	if e, ok := d.(exactNames); ok {
		return e
	}
	return exactNames{d}
}

type exactNames struct{ Dialect }

func (e exactNames) Ident(name string) string { return e.Dialect.Quote(name) }

// Exact reports that names are used exactly as written.
func (e exactNames) Exact() bool { return true }

// quoteIdent double-quotes s, doubling embedded quotes: the SQL standard
// form DuckDB, Snowflake, PostgreSQL and Redshift share.
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
