package planner

import (
	"fmt"
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// snowflake writes Snowflake SQL.
//
// Snowflake stores unquoted identifiers upper case and matches quoted ones
// exactly; DESIGN.md has column names follow the unquoted rule, so a name
// that could be written unquoted is upper-cased and then quoted (keywords
// such as ORDER stay safe). In string literals a backslash starts an escape
// sequence, so both the quote and the backslash are escaped. Strings
// compare by their Unicode code points by default, which is UTF-8 byte
// order; SortKey pins the 'utf8' collation so that a column's collation
// cannot change the order the differ relies on.
type snowflake struct{}

func (snowflake) Name() string { return "snowflake" }

func (snowflake) BackslashEscapes() bool { return true }

func (snowflake) Quote(name string) string { return quoteIdent(name) }

func (snowflake) NotDistinct(a, b string) string { return a + " IS NOT DISTINCT FROM " + b }

func (snowflake) Ident(name string) string {
	if isUnquotedIdent(name) {
		name = strings.ToUpper(name)
	}
	return quoteIdent(name)
}

// String escapes the quote and the backslash, and writes control
// characters as \xhh escapes so that a literal is always one line of SQL
// text.
func (snowflake) String(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case isControl(c):
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Timestamp uses an explicit format, so the session's
// TIMESTAMP_INPUT_FORMAT cannot change how the literal reads.
func (snowflake) Timestamp(t time.Time) string {
	return "TO_TIMESTAMP_NTZ('" + t.UTC().Format("2006-01-02 15:04:05.000000000") + "', 'YYYY-MM-DD HH24:MI:SS.FF9')"
}

func (snowflake) TimeValue(expr string) string { return expr }

func (snowflake) Precision() time.Duration { return time.Nanosecond }

func (snowflake) Text(expr string) string { return "CAST(" + expr + " AS VARCHAR)" }

func (snowflake) TextMatch(op dsl.Op, x, s string) string {
	switch op {
	case dsl.OpStartsWith:
		return "STARTSWITH(" + x + ", " + s + ")"
	case dsl.OpEndsWith:
		return "ENDSWITH(" + x + ", " + s + ")"
	}
	return "CONTAINS(" + x + ", " + s + ")"
}

// Order: Snowflake compares strings by code point unless a column
// declares a collation, which then applies (COLLATE on a literal would
// break a comparison with a date column).
func (snowflake) Order(a, op, b string) string { return a + " " + op + " " + b }

func (snowflake) SortKey(col string) string { return "COLLATE(" + col + ", 'utf8')" }

// Materialized is empty: Snowflake has no hint and materializes a CTE it
// reads more than once.
func (snowflake) Materialized() string { return "" }
