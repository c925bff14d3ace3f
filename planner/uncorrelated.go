package planner

import (
	"fmt"
	"strings"
)

// checkUncorrelated verifies the shape every plan must have: a WITH list of
// named relations and a final SELECT, where every SELECT is the body of a
// relation, a branch of a relation's UNION, or the final SELECT, and no
// EXISTS, LATERAL or nested WITH appears. A subquery in an expression or a
// FROM clause is the only way one SELECT could read another's row, so a
// statement of this shape has no correlated subquery, in any dialect.
//
// Compile runs it on every statement it writes (it is linear in the
// statement's length), so every test that plans an audience checks the
// invariant; backslash says whether a backslash escapes the next character
// of a string literal in the statement's dialect, and so of a backquoted
// name (BigQuery's quoted identifiers have the escapes of its strings;
// Databricks doubles a backquote, and the names it quotes hold no
// backslash: table parts and columns are identifiers).
func checkUncorrelated(sql string, backslash bool) error {
	toks, err := sqlWords(sql, backslash)
	if err != nil {
		return err
	}
	// body[d] says whether the parenthesis opened at depth d is the body of
	// a WITH relation.
	var body []bool
	prev := func(i, back int) string {
		if i-back < 0 {
			return ""
		}
		return toks[i-back]
	}
	for i, t := range toks {
		switch t {
		case "(":
			isBody := len(body) == 0 && (prev(i, 1) == "AS" || prev(i, 1) == "MATERIALIZED")
			body = append(body, isBody)
		case ")":
			if len(body) == 0 {
				return fmt.Errorf("unbalanced parenthesis in the statement")
			}
			body = body[:len(body)-1]
		case "EXISTS", "LATERAL":
			return fmt.Errorf("%s in a plan: the plan must not correlate", t)
		case "WITH":
			if len(body) > 0 {
				return fmt.Errorf("a nested WITH in a plan")
			}
		case "SELECT":
			switch {
			case len(body) == 0:
			case len(body) == 1 && body[0] && (prev(i, 1) == "(" || prev(i, 1) == "UNION" ||
				prev(i, 1) == "ALL" && prev(i, 2) == "UNION" || prev(i, 1) == "DISTINCT" && prev(i, 2) == "UNION"):
			default:
				return fmt.Errorf("a subquery in a plan (SELECT at word %d): the plan must not correlate", i)
			}
		}
	}
	if len(body) != 0 {
		return fmt.Errorf("unbalanced parenthesis in the statement")
	}
	return nil
}

// sqlWords splits a statement into its words (upper-cased) and
// punctuation, leaving out literals, quoted identifiers and comments.
func sqlWords(sql string, backslash bool) ([]string, error) {
	var out []string
	for i := 0; i < len(sql); {
		ch := sql[i]
		switch {
		case ch == '\'' || ch == '"' || ch == '`':
			end, err := quotedEnd(sql, i, backslash && (ch == '\'' || ch == '`'))
			if err != nil {
				return nil, err
			}
			out = append(out, "lit")
			i = end
		case ch == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case ch == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment in the statement")
			}
			i += end + 4
		case isWordByte(ch):
			j := i
			for j < len(sql) && (isWordByte(sql[j]) || sql[j] >= '0' && sql[j] <= '9' || sql[j] == '$') {
				j++
			}
			out = append(out, strings.ToUpper(sql[i:j]))
			i = j
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		default:
			out = append(out, string(ch))
			i++
		}
	}
	return out, nil
}

func isWordByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

// quotedEnd returns the index after the quoted text starting at i: the
// quote character doubled stands for itself, and with backslash a
// backslash escapes the next character.
func quotedEnd(s string, i int, backslash bool) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case backslash && s[j] == '\\':
			j++
		case s[j] == q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated quoted text in the statement")
}
