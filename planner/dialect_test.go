package planner_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/planner"
)

func TestDialectQuoting(t *testing.T) {
	tests := []struct {
		d                 planner.Dialect
		name, ident       string
		str, strLit       string
		ts                time.Time
		tsLit             string
		match             dsl.Op
		matchSQL, sortKey string
	}{
		{d: planner.DuckDB, name: "order", ident: `"order"`, str: `it's \ "x"`, strLit: `'it''s \ "x"'`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tsLit: `TIMESTAMP '2026-01-02 03:04:05'`,
			match: dsl.OpContains, matchSQL: `contains(a, b)`, sortKey: `k COLLATE "binary"`},
		{d: planner.DuckDB, name: `we"ird`, ident: `"we""ird"`, str: "", strLit: `''`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), tsLit: `TIMESTAMP '2026-01-02 03:04:05.123456'`,
			match: dsl.OpStartsWith, matchSQL: `starts_with(a, b)`},
		{d: planner.DuckDB, name: "Mixed", ident: `"Mixed"`, str: "日本\n'x\r", strLit: "('日本' || chr(10) || '''x' || chr(13))",
			ts: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("", 3600)), tsLit: `TIMESTAMP_NS '2026-01-02 02:04:05.123456789'`,
			match: dsl.OpEndsWith, matchSQL: `ends_with(a, b)`},
		{d: planner.Snowflake, name: "order", ident: `"ORDER"`, str: `it's \ "x"`, strLit: `'it\'s \\ "x"'`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tsLit: `TO_TIMESTAMP_NTZ('2026-01-02 03:04:05.000000000', 'YYYY-MM-DD HH24:MI:SS.FF9')`,
			match: dsl.OpContains, matchSQL: `CONTAINS(a, b)`, sortKey: `COLLATE(k, 'utf8')`},
		{d: planner.Snowflake, name: "seg$1", ident: `"SEG$1"`, str: `\'`, strLit: `'\\\''`,
			match: dsl.OpStartsWith, matchSQL: `STARTSWITH(a, b)`},
		{d: planner.Snowflake, name: `not an identifier`, ident: `"not an identifier"`,
			match: dsl.OpEndsWith, matchSQL: `ENDSWITH(a, b)`},
		{d: planner.Snowflake, name: `a"b`, ident: `"a""b"`, str: "a\nb\tc", strLit: `'a\x0ab\x09c'`},
		{d: planner.Postgres, name: "ORDER", ident: `"order"`, str: `it's \ "x"`, strLit: `'it''s \ "x"'`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tsLit: `TIMESTAMP '2026-01-02 03:04:05'`,
			match: dsl.OpContains, matchSQL: `(strpos(a, b) > 0)`, sortKey: `k COLLATE "C"`},
		{d: planner.Postgres, name: "Mixed Case", ident: `"Mixed Case"`, str: "a\nb", strLit: `('a' || chr(10) || 'b')`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), tsLit: `TIMESTAMP '2026-01-02 03:04:05.123456'`,
			match: dsl.OpEndsWith, matchSQL: `(right(a, length(b)) = b)`},
		{d: planner.Postgres, name: "Seg$1", ident: `"seg$1"`, match: dsl.OpStartsWith, matchSQL: `starts_with(a, b)`},
		{d: planner.ExactNames(planner.Postgres), name: "UserProfiles", ident: `"UserProfiles"`},
		{d: planner.Redshift, name: "ORDER", ident: `"order"`, str: `it's \ "x"`, strLit: `'it''s \\ "x"'`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tsLit: `CAST('2026-01-02 03:04:05' AS TIMESTAMP)`,
			match: dsl.OpContains, matchSQL: `(a IS NOT NULL AND OCTET_LENGTH(b) = 0 OR STRPOS(a, b) > 0)`, sortKey: `COLLATE(k, 'case_sensitive')`},
		{d: planner.Redshift, name: "x", ident: `"x"`, str: "\\\n", strLit: `('\\' || CHR(10))`,
			match: dsl.OpEndsWith, matchSQL: `(a IS NOT NULL AND OCTET_LENGTH(b) = 0 OR STRPOS(REVERSE(a), REVERSE(b)) = 1)`},
		{d: planner.ExactNames(planner.Snowflake), name: "UserProfiles", ident: `"UserProfiles"`},
		{d: planner.BigQuery, name: "order", ident: "`order`", str: `it's \ "x"`, strLit: `'it\'s \\ "x"'`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tsLit: `TIMESTAMP '2026-01-02 03:04:05+00'`,
			match: dsl.OpContains, matchSQL: `(a IS NOT NULL AND BYTE_LENGTH(b) = 0 OR STRPOS(CAST(a AS BYTES), CAST(b AS BYTES)) > 0)`, sortKey: `CAST(k AS BYTES)`},
		{d: planner.BigQuery, name: "Mixed`Case\\", ident: "`Mixed\\`Case\\\\`", str: "a\nb\x7f", strLit: `'a\x0ab\x7f'`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.FixedZone("", -3600)), tsLit: `TIMESTAMP '2026-01-02 04:04:05.123456+00'`,
			match: dsl.OpStartsWith, matchSQL: `STARTS_WITH(CAST(a AS BYTES), CAST(b AS BYTES))`},
		{d: planner.BigQuery, name: "x", ident: "`x`", match: dsl.OpEndsWith, matchSQL: `ENDS_WITH(CAST(a AS BYTES), CAST(b AS BYTES))`},
		{d: planner.Databricks, name: "order", ident: "`order`", str: `it's \ "x"`, strLit: `'it\'s \\ "x"'`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tsLit: `TIMESTAMP '2026-01-02 03:04:05.000000Z'`,
			match: dsl.OpContains, matchSQL: `contains(a COLLATE UTF8_BINARY, b)`, sortKey: `k COLLATE UTF8_BINARY`},
		{d: planner.Databricks, name: "a`b", ident: "`a``b`", str: "x\ty'", strLit: `('x' || chr(9) || 'y\'')`,
			ts: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), tsLit: `TIMESTAMP '2026-01-02 03:04:05.123456Z'`,
			match: dsl.OpStartsWith, matchSQL: `startswith(a COLLATE UTF8_BINARY, b)`},
		{d: planner.Databricks, name: "Mixed", ident: "`Mixed`", match: dsl.OpEndsWith, matchSQL: `endswith(a COLLATE UTF8_BINARY, b)`},
	}
	for _, tc := range tests {
		if got := tc.d.Ident(tc.name); got != tc.ident {
			t.Errorf("%s Ident(%q) = %s, want %s", tc.d.Name(), tc.name, got, tc.ident)
		}
		if tc.strLit != "" {
			if got := tc.d.String(tc.str); got != tc.strLit {
				t.Errorf("%s String(%q) = %s, want %s", tc.d.Name(), tc.str, got, tc.strLit)
			}
		}
		if tc.tsLit != "" {
			if got := tc.d.Timestamp(tc.ts); got != tc.tsLit {
				t.Errorf("%s Timestamp(%s) = %s, want %s", tc.d.Name(), tc.ts, got, tc.tsLit)
			}
		}
		if tc.matchSQL != "" {
			if got := tc.d.TextMatch(tc.match, "a", "b"); got != tc.matchSQL {
				t.Errorf("%s TextMatch(%s) = %s, want %s", tc.d.Name(), tc.match, got, tc.matchSQL)
			}
		}
		if tc.sortKey != "" {
			if got := tc.d.SortKey("k"); got != tc.sortKey {
				t.Errorf("%s SortKey = %s, want %s", tc.d.Name(), got, tc.sortKey)
			}
		}
	}
	if _, err := planner.DialectFor("postgress"); err == nil {
		t.Error("DialectFor(postgress) did not fail")
	}
}

// TestDuckDBLiteralsRoundTrip runs random strings and names through DuckDB:
// a string literal must read back as exactly the string, a quoted name as
// exactly the name, whatever quotes, backslashes, SQL or unicode they hold.
func TestDuckDBLiteralsRoundTrip(t *testing.T) {
	db := openDB(t)
	defer db.Close()
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"'", `"`, `\`, ";", "--", "/*", "*/", "%", "_", "a", "Z", " ", "\n", "\t", "é", "日", "😀", "$$", "?", "$1", "NULL", ")", "("}
	for i := 0; i < 300; i++ {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		var got string
		if err := db.QueryRow("SELECT " + planner.DuckDB.String(s)).Scan(&got); err != nil {
			t.Fatalf("String(%q): %v", s, err)
		}
		if got != s {
			t.Fatalf("String(%q) read back %q", s, got)
		}
		if s == "" {
			continue
		}
		rows, err := db.Query("SELECT 1 AS " + planner.DuckDB.Ident(s))
		if err != nil {
			t.Fatalf("Ident(%q): %v", s, err)
		}
		cols, _ := rows.Columns()
		rows.Close()
		if len(cols) != 1 || cols[0] != s {
			t.Fatalf("Ident(%q) named the column %q", s, cols)
		}
	}
	// Timestamps: the literal is the instant, at nanosecond precision.
	for _, ts := range []time.Time{
		time.Date(2026, 3, 15, 10, 30, 0, 0, time.UTC),
		time.Date(2026, 3, 15, 10, 30, 0, 123456000, time.UTC),
		time.Date(2026, 3, 15, 10, 30, 0, 123456789, time.UTC),
	} {
		var ok bool
		q := "SELECT " + planner.DuckDB.Timestamp(ts) + " = TIMESTAMP_NS '" + ts.Format("2006-01-02 15:04:05.000000000") + "'"
		if err := db.QueryRow(q).Scan(&ok); err != nil || !ok {
			t.Errorf("%s: %v %v", q, ok, err)
		}
	}
}

// TestCompileRejects lists what Compile refuses rather than write.
func TestCompileRejects(t *testing.T) {
	ws, err := checkSources(map[string]string{
		"graph.la":     "graph { profile { table \"P\" key id } }",
		"audiences.la": `audience a { match trait x = "ok" }  audience w { match trait t within 3 days }`,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := ws.Audience("a")
	cmp := a.Match.(*dsl.Trait).Compare
	for _, bad := range []dsl.Literal{
		{Kind: dsl.LitString, Text: "nul\x00byte"},
		{Kind: dsl.LitString, Text: "bad \xff utf-8"},
		{Kind: dsl.LitNumber, Text: "1; DROP TABLE t"},
		{Kind: dsl.LitNumber, Text: "1e5"},
	} {
		saved := cmp.Value
		cmp.Value = bad
		_, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{})
		cmp.Value = saved
		if err == nil {
			t.Errorf("literal %q was accepted", bad.Text)
		}
	}
	if _, err := planner.Compile(ws.Audience("w"), ws.Graph, planner.DuckDB, planner.Options{}); err == nil ||
		!strings.Contains(err.Error(), "Options.Now") {
		t.Errorf("within without Now: %v", err)
	}
}
