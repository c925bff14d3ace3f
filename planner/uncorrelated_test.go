package planner

import "testing"

// TestCheckUncorrelated pins what the shape check accepts: only SELECTs
// that open a WITH relation, continue its UNION, or are the final one.
func TestCheckUncorrelated(t *testing.T) {
	for _, tc := range []struct {
		sql       string
		backslash bool
		ok        bool
	}{
		{`SELECT 1`, false, true},
		{`WITH a AS (SELECT 1 AS x), b AS MATERIALIZED (SELECT x FROM a UNION ALL SELECT x FROM a) SELECT * FROM b ORDER BY x`, false, true},
		{`WITH a AS (SELECT 1 AS x UNION SELECT 2) SELECT x FROM a`, false, true},
		// Literals, quoted names and comments may say anything.
		{`WITH a AS (SELECT '(SELECT 1) EXISTS' AS "(SELECT" -- (SELECT
		) SELECT /* EXISTS (SELECT */ 1 FROM a`, false, true},
		{`WITH a AS (SELECT 'it''s (SELECT' AS x) SELECT x FROM a`, false, true},
		{`WITH a AS (SELECT 'back\' AS x) SELECT x FROM a`, false, true},
		{`WITH a AS (SELECT 'it\'s (SELECT' AS x) SELECT x FROM a`, true, true},
		{"WITH `a` AS (SELECT 1 AS `(select`) SELECT 1 FROM `a`", false, true},
		// Anything that could correlate is refused.
		{`SELECT 1 FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.a = p.a)`, false, false},
		{`SELECT 1 FROM p WHERE p.a IN (SELECT a FROM q)`, false, false},
		{`SELECT (SELECT COUNT(*) FROM q WHERE q.a = p.a) FROM p`, false, false},
		{`SELECT * FROM (SELECT 1 AS x) AS d`, false, false},
		{`WITH a AS (SELECT * FROM (SELECT 1 AS x) AS d) SELECT * FROM a`, false, false},
		{`WITH a AS (SELECT 1 AS x WHERE 1 IN (SELECT 1)) SELECT * FROM a`, false, false},
		{`SELECT * FROM p, LATERAL (SELECT p.a) AS l`, false, false},
		{`WITH a AS (WITH b AS (SELECT 1 AS x) SELECT x FROM b) SELECT * FROM a`, false, false},
		{`WITH a AS (SELECT 'x' AS y) SELECT y FROM a WHERE y IN ((SELECT 'x'))`, false, false},
		// With backslash escapes, 'it\'s' is one literal: what follows is SQL.
		{`WITH a AS (SELECT 'it\'s' AS x) SELECT x FROM a WHERE EXISTS (SELECT 1)`, true, false},
		// BigQuery's backquoted names have string escapes: \` does not end one.
		{"WITH `a\\`(SELECT` AS (SELECT 1 AS x) SELECT x FROM `a\\`(SELECT`", true, true},
		{"WITH `a\\`` AS (SELECT 1 AS x) SELECT x FROM a WHERE EXISTS (SELECT 1)", true, false},
		{`SELECT 'unterminated`, false, false},
		{`SELECT (1`, false, false},
	} {
		err := checkUncorrelated(tc.sql, tc.backslash)
		if (err == nil) != tc.ok {
			t.Errorf("checkUncorrelated(%q, backslash=%v) = %v, want ok=%v", tc.sql, tc.backslash, err, tc.ok)
		}
	}
}
