package security

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanned is what scanSQL found inside quotes.
type scanned struct {
	strings []string // decoded string literals
	idents  []string // decoded quoted identifiers
}

// scanSQL reads SQL text the way a warehouse's lexer splits it into quoted
// and unquoted parts, and fails if anything that could end the statement or
// hide the rest of it appears outside quotes: a ';', a comment start (--,
// //, /*), a dollar quote ($$), a quote left open, or a string literal
// with a prefix letter (E'…', X'…', N'…', which change how it reads).
// backslash says whether a backslash escapes inside string literals
// (Snowflake) or is an ordinary character (DuckDB, standard SQL).
func scanSQL(sql string, backslash bool) (scanned, error) {
	return scanSQLIn(sql, lexer{backslash: backslash, doubledQuote: true})
}

// lexer is how a dialect quotes: whether a backslash escapes in string
// literals, whether a doubled quote stands for one, and what backquotes
// and double quotes delimit (BigQuery and Databricks: backquoted names,
// BigQuery's with string escapes, Databricks' with a doubled backquote;
// their double quotes delimit strings).
type lexer struct {
	backslash    bool
	doubledQuote bool // '' inside a literal is one quote (else: two literals)
	backquote    byte // 0: none; '\\': escapes as strings; '`': doubled
	dqString     bool // "…" is a string literal, not a name
}

// lexerFor is the lexer of a planner dialect.
func lexerFor(dialect string) lexer {
	switch dialect {
	case "snowflake":
		return lexer{backslash: true, doubledQuote: true}
	case "bigquery":
		return lexer{backslash: true, backquote: '\\', dqString: true}
	case "databricks":
		return lexer{backslash: true, backquote: '`', dqString: true}
	}
	return lexer{doubledQuote: true}
}

func scanSQLIn(sql string, lx lexer) (scanned, error) {
	backslash := lx.backslash
	var out scanned
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'':
			if i > 0 && isWordByte(sql[i-1]) {
				return out, fmt.Errorf("offset %d: string literal with a prefix %q", i, sql[max(0, i-8):i+1])
			}
			s, n, err := readEscaped(sql[i:], '\'', backslash, lx.doubledQuote)
			if err != nil {
				return out, fmt.Errorf("offset %d: %w", i, err)
			}
			out.strings = append(out.strings, s)
			i += n
		case c == '"' && lx.dqString:
			s, n, err := readEscaped(sql[i:], '"', backslash, lx.doubledQuote)
			if err != nil {
				return out, fmt.Errorf("offset %d: %w", i, err)
			}
			out.strings = append(out.strings, s)
			i += n
		case c == '`' && lx.backquote != 0:
			var s string
			var n int
			var err error
			if lx.backquote == '`' {
				s, n, err = readQuoted(sql[i:], '`')
			} else {
				s, n, err = readEscaped(sql[i:], '`', true, false)
			}
			if err != nil {
				return out, fmt.Errorf("offset %d: identifier: %w", i, err)
			}
			out.idents = append(out.idents, s)
			i += n
		case c == '"':
			s, n, err := readQuoted(sql[i:], '"')
			if err != nil {
				return out, fmt.Errorf("offset %d: identifier: %w", i, err)
			}
			out.idents = append(out.idents, s)
			i += n
		case c == ';':
			return out, fmt.Errorf("offset %d: ';' outside quotes", i)
		case strings.HasPrefix(sql[i:], "--"), strings.HasPrefix(sql[i:], "//"), strings.HasPrefix(sql[i:], "/*"):
			return out, fmt.Errorf("offset %d: comment %q outside quotes", i, sql[i:i+2])
		case strings.HasPrefix(sql[i:], "$$"):
			return out, fmt.Errorf("offset %d: dollar quote outside quotes", i)
		default:
			i++
		}
	}
	return out, nil
}

func isWordByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// readQuoted reads a q-quoted token whose only escape is a doubled q.
func readQuoted(s string, q byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != q {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == q {
			b.WriteByte(q)
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, fmt.Errorf("%c-quoted text never closed", q)
}

// readString reads a single-quoted literal; with backslash, Snowflake's
// escape sequences are decoded (\' \\ \n \t \r \b \f \0 \xhh \uhhhh and
// \ooo; another character stands for itself).
func readString(s string, backslash bool) (string, int, error) {
	return readEscaped(s, '\'', backslash, true)
}

// readEscaped reads a q-quoted token: with backslash, the escapes above;
// with doubled, qq stands for q.
func readEscaped(s string, q byte, backslash, doubled bool) (string, int, error) {
	if !backslash {
		return readQuoted(s, q)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case doubled && c == q && i+1 < len(s) && s[i+1] == q:
			b.WriteByte(q)
			i++
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'x':
				if i+2 >= len(s) {
					return "", 0, fmt.Errorf(`short \x escape`)
				}
				v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return "", 0, fmt.Errorf(`bad \x escape %q`, s[i-1:i+3])
				}
				b.WriteByte(byte(v))
				i += 2
			case 'u':
				if i+4 >= len(s) {
					return "", 0, fmt.Errorf(`short \u escape`)
				}
				v, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
				if err != nil {
					return "", 0, fmt.Errorf(`bad \u escape %q`, s[i-1:i+5])
				}
				b.WriteRune(rune(v))
				i += 4
			default:
				if '0' <= e && e <= '7' {
					j := i
					for j < len(s) && j < i+3 && '0' <= s[j] && s[j] <= '7' {
						j++
					}
					v, _ := strconv.ParseUint(s[i:j], 8, 8)
					b.WriteByte(byte(v))
					i = j - 1
					break
				}
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("string literal never closed")
}

// TestScanSQL pins the scanner itself: it must see what a warehouse's
// lexer sees, or the injection checks prove nothing.
func TestScanSQL(t *testing.T) {
	for _, tc := range []struct {
		sql       string
		backslash bool
		strs      []string
		idents    []string
		err       string
	}{
		{sql: `SELECT 'it''s', "a""b" FROM t`, strs: []string{"it's"}, idents: []string{`a"b`}},
		{sql: `SELECT 'a\' FROM t`, strs: []string{`a\`}},
		{sql: `SELECT 'a\' FROM t`, backslash: true, err: "never closed"},
		{sql: `SELECT 'it\'s \\ \x01 \u00e9 \101'`, backslash: true, strs: []string{"it's \\ \x01 \u00e9 A"}},
		{sql: `SELECT 'x'; DROP TABLE t`, err: "';' outside quotes"},
		{sql: `SELECT 'x' -- y`, err: "comment"},
		{sql: `SELECT 'x' /* y */`, err: "comment"},
		{sql: `SELECT 'x' // y`, err: "comment"},
		{sql: `SELECT $$x$$`, err: "dollar quote"},
		{sql: `SELECT E'\x27'`, err: "prefix"},
		{sql: `SELECT "a;--" FROM t WHERE x = ';--/*$$'`, strs: []string{";--/*$$"}, idents: []string{"a;--"}},
		{sql: `SELECT "a`, err: "never closed"},
	} {
		got, err := scanSQL(tc.sql, tc.backslash)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("scanSQL(%q) error = %v, want %q", tc.sql, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("scanSQL(%q): %v", tc.sql, err)
			continue
		}
		if fmt.Sprint(got.strings) != fmt.Sprint(tc.strs) || fmt.Sprint(got.idents) != fmt.Sprint(tc.idents) {
			t.Errorf("scanSQL(%q) = %q %q, want %q %q", tc.sql, got.strings, got.idents, tc.strs, tc.idents)
		}
	}
	// BigQuery and Databricks: backquoted names, double quotes are strings.
	for _, tc := range []struct {
		dialect, sql string
		strs, idents []string
		err          string
	}{
		{dialect: "bigquery", sql: "SELECT `a\\`;--` FROM `p`.`d` WHERE x = \"it's;\"", strs: []string{"it's;"}, idents: []string{"a`;--", "p", "d"}},
		{dialect: "bigquery", sql: `SELECT 'a\x0ab'`, strs: []string{"a\nb"}},
		{dialect: "databricks", sql: "SELECT `a``b;` FROM t WHERE x = 'it\\'s'", strs: []string{"it's"}, idents: []string{"a`b;"}},
		{dialect: "databricks", sql: `SELECT 'a''b'`, strs: []string{"a", "b"}},
		{dialect: "databricks", sql: "SELECT `a\\`; DROP TABLE t", err: "';' outside quotes"},
	} {
		got, err := scanSQLIn(tc.sql, lexerFor(tc.dialect))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s scanSQL(%q) error = %v, want %q", tc.dialect, tc.sql, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got.strings) != fmt.Sprint(tc.strs) || fmt.Sprint(got.idents) != fmt.Sprint(tc.idents) {
			t.Errorf("%s scanSQL(%q) = %q %q, %v; want %q %q", tc.dialect, tc.sql, got.strings, got.idents, err, tc.strs, tc.idents)
		}
	}
	if !utf8.ValidString(strings.Join(hostile, "")) {
		t.Fatal("the corpus holds invalid UTF-8")
	}
}
