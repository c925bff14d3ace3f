package planner

import (
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// redshift writes Amazon Redshift SQL. Redshift speaks PostgreSQL's wire
// protocol, and much of the SQL is PostgreSQL 8's, with these differences
// (each from Redshift's SQL reference,
// https://docs.aws.amazon.com/redshift/latest/dg/cm_chap_SQLCommandRef.html):
//
//   - Names: unquoted and (unless enable_case_sensitive_identifier is on)
//     quoted identifiers are folded to lower case (Names and identifiers,
//     r_names.html). Names are lower-cased and quoted as for PostgreSQL;
//     exact_names true quotes them as written and the executor turns
//     enable_case_sensitive_identifier on.
//   - Strings: a backslash in a literal escapes the next character
//     (QUOTE_LITERAL "doubles any embedded single quotation marks and
//     backslashes", r_QUOTE_LITERAL.html), so both are doubled; control
//     characters are CHR(n) terms.
//   - No IS NOT DISTINCT FROM: NULL-matching equality is spelt out.
//   - No MATERIALIZED hint on WITH: Redshift plans a WITH clause itself
//     (WITH clause, r_WITH_clause.html).
//   - Text: a VARCHAR without length is VARCHAR(256), so keys are cast to
//     VARCHAR(65535), the largest (Character types, r_Character_types.html).
//   - Byte order: Redshift supports no locale collations; strings compare
//     by their bytes unless a column or database is case_insensitive.
//     SortKey applies COLLATE(x, 'case_sensitive') (COLLATE function,
//     r_COLLATE.html), which undoes that.
//   - Literal text matching without wildcards: STRPOS (r_STRPOS.html) for
//     contains; starts with is STRPOS(x, s) = 1 and ends with
//     STRPOS(REVERSE(x), REVERSE(s)) = 1, with the empty string matching
//     any string (OCTET_LENGTH(s) = 0), whatever STRPOS makes of it.
//   - Timestamps: CAST('…' AS TIMESTAMP), microsecond precision (Datetime
//     types, r_Datetime_types.html).
type redshift struct{}

func (redshift) Name() string { return "redshift" }

func (redshift) BackslashEscapes() bool { return true }

func (redshift) Quote(name string) string { return quoteIdent(name) }

func (redshift) NotDistinct(a, b string) string {
	return "(" + a + " = " + b + " OR (" + a + " IS NULL AND " + b + " IS NULL))"
}

func (redshift) Ident(name string) string { return foldLower(name) }

func (redshift) String(s string) string {
	return chrLiteral(strings.ReplaceAll(s, `\`, `\\`), "CHR")
}

func (redshift) Timestamp(t time.Time) string {
	return "CAST('" + microTimestamp(t) + "' AS TIMESTAMP)"
}

func (redshift) TimeValue(expr string) string { return expr }

func (redshift) Precision() time.Duration { return time.Microsecond }

func (redshift) Text(expr string) string { return "CAST(" + expr + " AS VARCHAR(65535))" }

func (redshift) TextMatch(op dsl.Op, x, s string) string {
	// The empty string is in every string, but not in NULL.
	empty := x + " IS NOT NULL AND OCTET_LENGTH(" + s + ") = 0"
	switch op {
	case dsl.OpStartsWith:
		return "(" + empty + " OR STRPOS(" + x + ", " + s + ") = 1)"
	case dsl.OpEndsWith:
		return "(" + empty + " OR STRPOS(REVERSE(" + x + "), REVERSE(" + s + ")) = 1)"
	}
	return "(" + empty + " OR STRPOS(" + x + ", " + s + ") > 0)"
}

// Order: Redshift compares strings by their bytes unless a column or the
// database is case_insensitive, which then applies.
func (redshift) Order(a, op, b string) string { return a + " " + op + " " + b }

func (redshift) SortKey(col string) string { return "COLLATE(" + col + ", 'case_sensitive')" }

func (redshift) Materialized() string { return "" }
