package planner

import (
	"fmt"
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// bigQuery writes GoogleSQL for BigQuery. Each rule follows a page of the
// GoogleSQL reference (https://cloud.google.com/bigquery/docs/reference/standard-sql/):
//
//   - Names: backquoted, as written (Lexical structure and syntax,
//     lexical#quoted_identifiers: "Quoted identifiers must be enclosed by
//     backtick characters … have the same escape sequences as string
//     literals"), so a backquote or backslash in a name is escaped. Column
//     names are case-insensitive and dataset and table names
//     case-sensitive (lexical#case_sensitivity), which quoting does not
//     change; a table is [project.]dataset.table or a table of the
//     executor's default dataset, each part quoted on its own.
//   - The planner's relation and column names are quoted the same way:
//     BigQuery reads a double-quoted "la_members" as a string literal.
//   - Strings: single-quoted, a backslash starts an escape sequence
//     (lexical#string_and_bytes_literals), so the quote and the backslash
//     are escaped and control characters written \xhh; a quoted string
//     cannot hold a newline, so the literal stays on one line.
//   - IS NOT DISTINCT FROM (Operators, operators#is_distinct).
//   - Timestamps: TIMESTAMP 'YYYY-MM-DD HH:MM:SS.FFFFFF+00', microsecond
//     precision (Data types, data-types#timestamp_type; lexical#timestamp_literals),
//     with the zone written out so that a session's @@time_zone cannot
//     change it. DATE, DATETIME and TIMESTAMP do not compare with each
//     other (Conversion rules, conversion_rules: a DATE coerces to DATETIME
//     only, a TIMESTAMP to nothing), so a column compared with a time
//     literal is CAST(x AS TIMESTAMP) first, which reads a DATE as its
//     midnight and a DATETIME as wall-clock time in UTC (Conversion
//     functions, conversion_functions#cast_as_timestamp: the default time
//     zone is UTC). The window of `within` is two literals of the cycle's
//     start, not TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL …)
//     (timestamp_functions#timestamp_sub): a cycle's statement is then the
//     same wherever it runs, and a query using CURRENT_TIMESTAMP is never
//     served from BigQuery's result cache (Using cached query results,
//     cached-results#cache-exceptions).
//   - Text: CAST(x AS STRING).
//   - Literal matching: STRPOS, STARTS_WITH and ENDS_WITH (String
//     functions, string_functions#strpos, #starts_with, #ends_with) take no
//     wildcards, but follow a column's collation ("This function supports
//     specifying collation"); both operands are CAST(… AS BYTES) (the
//     UTF-8 bytes, conversion_functions#cast_bytes), which have none. The
//     empty string is in every string: STRPOS's documentation does not
//     say what it returns for it, so contains spells it out.
//   - Byte order: strings compare by code point unless a collation applies
//     (Collation, collation-concepts); SortKey is CAST(x AS BYTES), bytes
//     compare byte by byte (data-types#orderable_data_types).
//   - No MATERIALIZED hint exists for WITH (Query syntax,
//     query-syntax#with_clause); BigQuery decides itself whether to
//     compute a relation read twice once.
type bigQuery struct{}

func (bigQuery) Name() string { return "bigquery" }

func (bigQuery) BackslashEscapes() bool { return true }

func (bigQuery) Quote(name string) string { return backquote(name) }

func (bigQuery) NotDistinct(a, b string) string { return a + " IS NOT DISTINCT FROM " + b }

func (bigQuery) Ident(name string) string { return backquote(name) }

// backquote quotes a BigQuery name; a quoted identifier has the escape
// sequences of a string literal.
func backquote(name string) string { return escapeBackslash(name, '`') }

func (bigQuery) String(s string) string { return escapeBackslash(s, '\'') }

// escapeBackslash quotes s with q, escaping q and the backslash with a
// backslash and writing control characters as \xhh.
func escapeBackslash(s string, q byte) string {
	var b strings.Builder
	b.WriteByte(q)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == q || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case isControl(c):
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func (bigQuery) Timestamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() != 0 {
		return "TIMESTAMP '" + t.Format("2006-01-02 15:04:05.000000") + "+00'"
	}
	return "TIMESTAMP '" + t.Format("2006-01-02 15:04:05") + "+00'"
}

func (bigQuery) TimeValue(expr string) string { return "CAST(" + expr + " AS TIMESTAMP)" }

func (bigQuery) Precision() time.Duration { return time.Microsecond }

func (bigQuery) Text(expr string) string { return "CAST(" + expr + " AS STRING)" }

func (bigQuery) TextMatch(op dsl.Op, x, s string) string {
	bx, bs := "CAST("+x+" AS BYTES)", "CAST("+s+" AS BYTES)"
	switch op {
	case dsl.OpStartsWith:
		return "STARTS_WITH(" + bx + ", " + bs + ")"
	case dsl.OpEndsWith:
		return "ENDS_WITH(" + bx + ", " + bs + ")"
	}
	if len(s) > 2 && s[0] == '\'' {
		// A literal that is not empty: String writes one quoted literal.
		return "(STRPOS(" + bx + ", " + bs + ") > 0)"
	}
	// NULL, not false, when x is NULL: `not contains` is NOT of this.
	return "(" + x + " IS NOT NULL AND BYTE_LENGTH(" + s + ") = 0 OR STRPOS(" + bx + ", " + bs + ") > 0)"
}

// Order: BigQuery compares strings by code point unless a column declares
// a collation, which then applies (as Snowflake; a cast to BYTES would be
// an error on the other types the operands may have).
func (bigQuery) Order(a, op, b string) string { return a + " " + op + " " + b }

func (bigQuery) SortKey(col string) string { return "CAST(" + col + " AS BYTES)" }

func (bigQuery) Materialized() string { return "" }
