package planner

import (
	"strconv"
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// databricks writes Databricks SQL (SQL warehouses; Databricks SQL and
// Runtime 16.1 or later, for collations). Each rule follows a page of the
// SQL language reference (https://docs.databricks.com/sql/language-manual/):
//
//   - Names: backquoted as written, a backquote doubled (Identifiers,
//     sql-ref-identifiers: delimited identifiers; "Identifiers are
//     case-insensitive when referenced"); a table is
//     [[catalog.]schema.]table, each part quoted on its own (Names,
//     sql-ref-names), unqualified parts resolved against the executor's
//     catalog and schema settings.
//   - The planner's relation and column names are quoted the same way:
//     Databricks reads a double-quoted "la_members" as a string literal.
//   - Strings: single-quoted, a backslash starts an escape sequence (STRING
//     type, data-types/string-type: \' and \\ stand for the quote and the
//     backslash). A doubled quote is not an escape: 'it”s' is two literals
//     that Databricks concatenates. Control characters are chr(n) terms
//     (functions/chr) joined with || (functions/concatpipe), so a literal
//     is always one line of SQL.
//   - IS NOT DISTINCT FROM (functions/isnotdistinct).
//   - Timestamps: TIMESTAMP 'YYYY-MM-DD HH:MM:SS.FFFFFFZ', microsecond
//     precision, with the zone written out (TIMESTAMP type,
//     data-types/timestamp-type: zoneId Z). A TIMESTAMP_NTZ or DATE column
//     compared with it is read in the session time zone, so the executor
//     refuses a warehouse whose TIMEZONE is not UTC.
//   - Text: CAST(x AS STRING) (functions/cast).
//   - Literal matching: contains, startswith and endswith (functions/contains,
//     functions/startswith, functions/endswith) take no wildcards; the text
//     operand is COLLATE UTF8_BINARY (Collation, sql-ref-collation; COLLATE
//     expression, functions/collate), since they follow a column's
//     collation, and UTF8_LCASE would match case-insensitively.
//   - Byte order: SortKey is x COLLATE UTF8_BINARY, "byte-by-byte" order
//     of the UTF-8 encoding (sql-ref-collation), whatever collation a
//     column or schema declares by default.
//   - No MATERIALIZED hint exists for WITH (Common table expression,
//     sql-ref-syntax-qry-select-cte).
type databricks struct{}

func (databricks) Name() string { return "databricks" }

func (databricks) BackslashEscapes() bool { return true }

func (databricks) Quote(name string) string { return doubledBackquote(name) }

func (databricks) NotDistinct(a, b string) string { return a + " IS NOT DISTINCT FROM " + b }

func (databricks) Ident(name string) string { return doubledBackquote(name) }

func doubledBackquote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

func (databricks) String(s string) string {
	quote := func(part string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(part) + "'"
	}
	if !hasControl(s) {
		return quote(s)
	}
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if isControl(s[i]) {
			if i > start {
				parts = append(parts, quote(s[start:i]))
			}
			parts = append(parts, "chr("+strconv.Itoa(int(s[i]))+")")
			start = i + 1
		}
	}
	if start < len(s) {
		parts = append(parts, quote(s[start:]))
	}
	return "(" + strings.Join(parts, " || ") + ")"
}

// Timestamp always writes the fraction: the documented literal takes a
// zoneId only after it.
func (databricks) Timestamp(t time.Time) string {
	return "TIMESTAMP '" + t.UTC().Format("2006-01-02 15:04:05.000000") + "Z'"
}

// TimeValue: a DATE or TIMESTAMP_NTZ compared with a TIMESTAMP is cast to
// it implicitly (SQL data type rules, sql-ref-datatype-rules).
func (databricks) TimeValue(expr string) string { return expr }

func (databricks) Precision() time.Duration { return time.Microsecond }

func (databricks) Text(expr string) string { return "CAST(" + expr + " AS STRING)" }

func (databricks) TextMatch(op dsl.Op, x, s string) string {
	x += " COLLATE UTF8_BINARY"
	switch op {
	case dsl.OpStartsWith:
		return "startswith(" + x + ", " + s + ")"
	case dsl.OpEndsWith:
		return "endswith(" + x + ", " + s + ")"
	}
	return "contains(" + x + ", " + s + ")"
}

// Order: strings compare by their bytes unless a column declares a
// collation, which then applies (as Snowflake: COLLATE would be an error
// on the other types the operands may have).
func (databricks) Order(a, op, b string) string { return a + " " + op + " " + b }

func (databricks) SortKey(col string) string { return col + " COLLATE UTF8_BINARY" }

func (databricks) Materialized() string { return "" }
