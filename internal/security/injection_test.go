package security

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bindings "github.com/duckdb/duckdb-go-bindings"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/planner"
)

// world names every table and column of the test graph. Positions under
// test replace one of them with a hostile or reserved name; the tables are
// created in DuckDB with exactly those names.
type world struct {
	profTable, acctTable, petTable, jTable, evTable, memTable string // DSL table references
	profKey, profEmail, note                                  string
	acct, acctKey, acctEmail, status, amount                  string
	petKey, kind, jAlias, jProf, jPet                         string
	evUser, evName, evTime, channel                           string
	memProf, memAud                                           string
}

func defaultWorld() world {
	return world{
		profTable: "S.PROFILES", acctTable: "S.ACCOUNTS", petTable: "S.PETS", jTable: "S.OWNERS",
		evTable: "S.TRACKS", memTable: "S.MEMBERSHIPS",
		profKey: "pk", profEmail: "pemail", note: "note",
		acct: "account", acctKey: "ak", acctEmail: "aemail", status: "status", amount: "amount",
		petKey: "petk", kind: "kind", jAlias: "hp", jProf: "jp", jPet: "jpet",
		evUser: "ev_user", evName: "ev_name", evTime: "ev_ts", channel: "channel",
		memProf: "m_prof", memAud: "m_aud",
	}
}

// graph is the world's graph block. Names go in raw, as an analyst would
// type them; table references as DSL strings.
func (w world) graph() string {
	q := grammar.Quote
	return fmt.Sprintf(`graph {
  profile { table %s key %s }
  entity %s { table %s key %s }
  entity pet { table %s key %s }
  relationship profile -> %s on profile.%s = %s.%s
  relationship profile -> pet through %s as %s
      on profile.%s = %s.%s and %s.%s = pet.%s
  events { table %s profile %s name %s time %s }
  memberships { table %s profile %s audience %s }
}
`, q(w.profTable), w.profKey,
		w.acct, q(w.acctTable), w.acctKey,
		q(w.petTable), w.petKey,
		w.acct, w.profEmail, w.acct, w.acctEmail,
		q(w.jTable), w.jAlias,
		w.profKey, w.jAlias, w.jProf, w.jAlias, w.jPet, w.petKey,
		q(w.evTable), w.evUser, w.evName, w.evTime,
		q(w.memTable), w.memProf, w.memAud)
}

// create makes the world's tables in db with one profile per value: profile
// p<i> has note vals[i], an account a<i> with status vals[i] and amount i,
// a pet pet<i> of kind vals[i], an event named vals[i] on channel vals[i],
// and a membership in audience vals[i]; extraAud adds memberships of p1.
func (w world) create(db *sql.DB, vals []string, extraAud ...string) error {
	type table struct {
		ref  string
		cols []string
		typs []string
		rows func(i int) []any
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tables := []table{
		{w.profTable, []string{w.profKey, w.profEmail, w.note}, []string{"VARCHAR", "VARCHAR", "VARCHAR"},
			func(i int) []any { return []any{fmt.Sprintf("p%d", i), fmt.Sprintf("e%d", i), vals[i]} }},
		{w.acctTable, []string{w.acctKey, w.acctEmail, w.status, w.amount}, []string{"VARCHAR", "VARCHAR", "VARCHAR", "BIGINT"},
			func(i int) []any { return []any{fmt.Sprintf("a%d", i), fmt.Sprintf("e%d", i), vals[i], i} }},
		{w.petTable, []string{w.petKey, w.kind}, []string{"VARCHAR", "VARCHAR"},
			func(i int) []any { return []any{fmt.Sprintf("pet%d", i), vals[i]} }},
		{w.jTable, []string{w.jProf, w.jPet}, []string{"VARCHAR", "VARCHAR"},
			func(i int) []any { return []any{fmt.Sprintf("p%d", i), fmt.Sprintf("pet%d", i)} }},
		{w.evTable, []string{w.evUser, w.evName, w.evTime, w.channel}, []string{"VARCHAR", "VARCHAR", "TIMESTAMP", "VARCHAR"},
			func(i int) []any { return []any{fmt.Sprintf("p%d", i), vals[i], ts, vals[i]} }},
		{w.memTable, []string{w.memProf, w.memAud}, []string{"VARCHAR", "VARCHAR"},
			func(i int) []any { return []any{fmt.Sprintf("p%d", i), vals[i]} }},
	}
	for _, t := range tables {
		parts := strings.Split(t.ref, ".")
		if len(parts) > 1 {
			if _, err := db.Exec("CREATE SCHEMA IF NOT EXISTS " + sqlIdents(parts[:len(parts)-1])); err != nil {
				return fmt.Errorf("schema of %s: %w", t.ref, err)
			}
		}
		defs := make([]string, len(t.cols))
		marks := make([]string, len(t.cols))
		for i, c := range t.cols {
			defs[i] = sqlIdent(c) + " " + t.typs[i]
			marks[i] = "?"
		}
		name := sqlIdents(parts)
		if _, err := db.Exec("CREATE TABLE " + name + " (" + strings.Join(defs, ", ") + ")"); err != nil {
			return fmt.Errorf("table %s: %w", t.ref, err)
		}
		ins, err := db.Prepare("INSERT INTO " + name + " VALUES (" + strings.Join(marks, ", ") + ")")
		if err != nil {
			return err
		}
		for i := range vals {
			if _, err := ins.Exec(t.rows(i)...); err != nil {
				ins.Close()
				return fmt.Errorf("row %d of %s: %w", i, t.ref, err)
			}
		}
		ins.Close()
	}
	for _, a := range extraAud {
		if _, err := db.Exec("INSERT INTO "+sqlIdents(strings.Split(w.memTable, "."))+" VALUES ('p1', ?)", a); err != nil {
			return err
		}
	}
	return nil
}

// sqlIdent quotes a DuckDB identifier for the test's own DDL, independently
// of the planner's quoting.
func sqlIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sqlIdents(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = sqlIdent(p)
	}
	return strings.Join(q, ".")
}

type posKind int

const (
	posString posKind = iota // a DSL string, written with grammar.Quote
	posIdent                 // a name, written raw
	posTable                 // a table reference, a DSL string
)

// position is one place in the language that reaches SQL.
type position struct {
	name string
	kind posKind
	// set applies v to the world (names and table references) and returns
	// the audience's body, the memberships to add for p1, and the profile
	// keys that must come back over vals.
	set func(w *world, v string, vals []string) (body string, extraAud []string, want []string)
	// check, if set, inspects the result rows further.
	check func(rows [][]string) error
	// reject: the checker must refuse every value here (dates).
	reject bool
	// refuses, if set, names the values the checker refuses here for a
	// reason of the language, not of quoting.
	refuses func(v string) bool
}

// emptyEvent: `performed ""` names no event.
func emptyEvent(v string) bool { return v == "" }

// keysWhere lists p<i> for each vals[i] satisfying ok.
func keysWhere(vals []string, ok func(string) bool) []string {
	var out []string
	for i, s := range vals {
		if ok(s) {
			out = append(out, fmt.Sprintf("p%d", i))
		}
	}
	return out
}

func eq(v string) func(string) bool { return func(s string) bool { return s == v } }

// ident positions run over vals {alpha, beta, gamma}: p1 is "beta".
var beta = []string{"p1"}

func positions() []position {
	q := grammar.Quote
	ps := []position{
		// Strings: each value against every stored value.
		{name: "where_eq", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match profile -> account where status = " + q(v), nil, keysWhere(vals, eq(v))
		}},
		{name: "trait_eq", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match trait note = " + q(v), nil, keysWhere(vals, eq(v))
		}},
		{name: "trait_ne", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match trait note != " + q(v), nil, keysWhere(vals, func(s string) bool { return s != v })
		}},
		{name: "in_list", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match trait note in (" + q(v) + `, "la-not-stored")`, nil, keysWhere(vals, eq(v))
		}},
		{name: "not_in_list", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match trait note not in (" + q(v) + ")", nil, keysWhere(vals, func(s string) bool { return s != v })
		}},
		{name: "contains", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match trait note contains " + q(v), nil, keysWhere(vals, func(s string) bool { return strings.Contains(s, v) })
		}},
		{name: "not_contains", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match trait note not contains " + q(v), nil, keysWhere(vals, func(s string) bool { return !strings.Contains(s, v) })
		}},
		{name: "starts_with", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match profile -> account where status starts with " + q(v), nil, keysWhere(vals, func(s string) bool { return strings.HasPrefix(s, v) })
		}},
		{name: "ends_with", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match profile -> pet where kind ends with " + q(v), nil, keysWhere(vals, func(s string) bool { return strings.HasSuffix(s, v) })
		}},
		{name: "junction_step_eq", kind: posString, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match profile -> pet where kind = " + q(v), nil, keysWhere(vals, eq(v))
		}},
		{name: "performed_event", kind: posString, refuses: emptyEvent, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match performed " + q(v), nil, keysWhere(vals, eq(v))
		}},
		{name: "performed_where", kind: posString, refuses: emptyEvent, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match performed " + q(v) + " at least 1 times where channel = " + q(v), nil, keysWhere(vals, eq(v))
		}},
		{name: "not_performed", kind: posString, refuses: emptyEvent, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match not performed " + q(v), nil, keysWhere(vals, func(s string) bool { return s != v })
		}},
		{name: "date_after", kind: posString, reject: true, set: func(w *world, v string, vals []string) (string, []string, []string) {
			return "match performed \"x\" where ev_ts after " + q(v), nil, nil
		}},

		// Names: written raw where the language takes an identifier.
		{name: "trait_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.note = v
			return "match trait " + v + ` = "beta"`, nil, beta
		}},
		{name: "where_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.status = v
			return "match profile -> account where " + v + ` = "beta"`, nil, beta
		}},
		{name: "reference_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.note = v
			return "match profile -> account where status = trait." + v, nil, []string{"p0", "p1", "p2"}
		}},
		{name: "profile_key", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.profKey = v
			return `match profile -> pet where kind = "beta"`, nil, beta
		}},
		{name: "profile_join_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.profEmail = v
			return `match profile -> account where status = "beta"`, nil, beta
		}},
		{name: "entity_join_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.acctEmail = v
			return `match profile -> account where status = "beta"`, nil, beta
		}},
		{name: "entity_key", kind: posIdent, check: wantRow("p1", "a1"), set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.acctKey = v
			return `match profile -> account where status = "beta"`, nil, beta
		}},
		{name: "entity_name", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.acct = v
			return "match profile -> " + v + ` where status = "beta"`, nil, beta
		}},
		{name: "junction_alias", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.jAlias = v
			return `match profile -> pet where kind = "beta"`, nil, beta
		}},
		{name: "junction_profile_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.jProf = v
			return `match profile -> pet where kind = "beta"`, nil, beta
		}},
		{name: "junction_entity_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.jPet = v
			return `match profile -> pet where kind = "beta"`, nil, beta
		}},
		{name: "junction_target_key", kind: posIdent, check: wantRow("p1", "pet1"), set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.petKey = v
			return `match profile -> pet where kind = "beta"`, nil, beta
		}},
		{name: "events_profile_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.evUser = v
			return `match performed "beta"`, nil, beta
		}},
		{name: "events_name_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.evName = v
			return `match performed "beta"`, nil, beta
		}},
		{name: "events_time_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.evTime = v
			return `match performed "beta" within 36500 days`, nil, beta
		}},
		{name: "events_where_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.channel = v
			return `match performed "beta" at least 1 times where ` + v + ` = "beta"`, nil, beta
		}},
		{name: "memberships_profile_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.memProf = v
			return "match in audience beta", nil, beta
		}},
		{name: "memberships_audience_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.memAud = v
			return "match in audience beta", nil, beta
		}},
		{name: "in_audience_name", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			return "match in audience " + v, []string{v}, beta
		}},
		{name: "enrich_column", kind: posIdent, check: wantRow("p1", "a1", "1"), set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.amount = v
			return `match profile -> account where status = "beta"` + "\n  enrich account." + v, nil, beta
		}},
		{name: "having_column", kind: posIdent, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.amount = v
			return "match profile -> account having sum(" + v + ") > 0", nil, []string{"p1", "p2"}
		}},

		// Table references.
		{name: "profile_table", kind: posTable, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.profTable = v
			return `match trait note = "beta"`, nil, beta
		}},
		{name: "entity_table", kind: posTable, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.acctTable = v
			return `match profile -> account where status = "beta"`, nil, beta
		}},
		{name: "junction_target_table", kind: posTable, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.petTable = v
			return `match profile -> pet where kind = "beta"`, nil, beta
		}},
		{name: "junction_table", kind: posTable, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.jTable = v
			return `match profile -> pet where kind = "beta"`, nil, beta
		}},
		{name: "events_table", kind: posTable, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.evTable = v
			return `match performed "beta"`, nil, beta
		}},
		{name: "memberships_table", kind: posTable, set: func(w *world, v string, _ []string) (string, []string, []string) {
			w.memTable = v
			return "match in audience beta", nil, beta
		}},
	}
	return ps
}

// wantRow checks that the result is exactly one row with these leading
// columns.
func wantRow(want ...string) func(rows [][]string) error {
	return func(rows [][]string) error {
		if len(rows) != 1 || len(rows[0]) < len(want) || !slices.Equal(rows[0][:len(want)], want) {
			return fmt.Errorf("rows = %q, want one starting %q", rows, want)
		}
		return nil
	}
}

// injectionNow is every plan's cycle start; events happened before it.
var injectionNow = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// compile checks the workspace made of w's graph and the audience body and
// plans it in dialect d. ok is false when the checker refused it (diags
// says why).
func compile(t *testing.T, w world, body string, d planner.Dialect) (plan *planner.Plan, diags string, ok bool) {
	t.Helper()
	src := w.graph() + "audience la_under_test {\n  " + body + "\n}\n"
	ws, diags := lastChecked.check(t, src)
	if ws == nil {
		return nil, diags, false
	}
	a := ws.Audience("la_under_test")
	if a == nil {
		return nil, "no audience la_under_test", false
	}
	p, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: injectionNow})
	if err != nil {
		// The checker accepted it: the planner must plan it.
		t.Fatalf("planner refused a checked audience: %v\n%s", err, src)
	}
	return p, "", true
}

// checkedSource remembers the last workspace source checked: each value is
// planned in every dialect from one check.
type checkedSource struct {
	src   string
	ws    *dsl.Workspace
	diags string
}

var lastChecked checkedSource

func (c *checkedSource) check(t *testing.T, src string) (*dsl.Workspace, string) {
	if c.src == src && src != "" {
		return c.ws, c.diags
	}
	*c = checkedSource{src: src}
	f, errs := grammar.ParseFile("ws.la", []byte(src))
	if len(errs) > 0 {
		var b strings.Builder
		for _, e := range errs {
			b.WriteString(e.Error() + "\n")
		}
		c.diags = b.String()
		return nil, c.diags
	}
	ws, ds := dsl.Check(t.TempDir(), []*grammar.File{f}, dsl.Options{})
	if ds.HasErrors() {
		c.diags = ds.Error()
		return nil, c.diags
	}
	c.ws = ws
	return ws, ""
}

// duckParser counts statements with DuckDB's own parser
// (duckdb_extract_statements).
type duckParser struct {
	mu   sync.Mutex
	db   bindings.Database
	conn bindings.Connection
}

func newDuckParser(t *testing.T) *duckParser {
	p := &duckParser{}
	if bindings.Open(":memory:", &p.db) == bindings.StateError {
		t.Fatal("duckdb: open failed")
	}
	if bindings.Connect(p.db, &p.conn) == bindings.StateError {
		t.Fatal("duckdb: connect failed")
	}
	t.Cleanup(func() {
		bindings.Disconnect(&p.conn)
		bindings.Close(&p.db)
	})
	return p
}

func (p *duckParser) statements(sql string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st bindings.ExtractedStatements
	n := bindings.ExtractStatements(p.conn, sql, &st)
	defer bindings.DestroyExtracted(&st)
	if n == 0 {
		return 0, fmt.Errorf("duckdb parser: %s", bindings.ExtractStatementsError(st))
	}
	return int(n), nil
}

// checkText verifies the SQL's structure in one dialect: one statement,
// nothing outside quotes that ends or hides it, and (Snowflake, BigQuery,
// Databricks, whose quoting the scanner knows) the hostile value present as
// a decoded literal or identifier.
func checkText(p *duckParser, plan *planner.Plan, pos position, v string) error {
	sc, err := scanSQLIn(plan.SQL, lexerFor(plan.Dialect))
	if err != nil {
		return err
	}
	if plan.Dialect == "duckdb" {
		n, err := p.statements(plan.SQL)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("DuckDB parses %d statements", n)
		}
		return nil
	}
	// Snowflake folds names to upper case; BigQuery and Databricks quote
	// them as written.
	name := strings.ToUpper
	if plan.Dialect != "snowflake" {
		name = func(s string) string { return s }
	}
	literal := func(v string) bool {
		if plan.Dialect != "databricks" {
			return slices.Contains(sc.strings, v)
		}
		// Databricks writes control characters as chr(n) terms between
		// the literals of the other characters.
		for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			if !slices.Contains(sc.strings, part) {
				return false
			}
		}
		return true
	}
	switch pos.kind {
	case posString:
		if !literal(v) {
			return fmt.Errorf("no %s literal decodes to the value", plan.Dialect)
		}
	case posIdent:
		switch pos.name {
		case "entity_name", "junction_alias", "in_audience_name":
			// Not identifiers in the SQL (the audience name is a
			// literal, found below).
			if pos.name == "in_audience_name" && !literal(v) {
				return fmt.Errorf("no %s literal decodes to the audience name", plan.Dialect)
			}
		default:
			if !slices.Contains(sc.idents, name(v)) {
				return fmt.Errorf("no %s identifier decodes to %q", plan.Dialect, name(v))
			}
		}
	case posTable:
		for _, part := range strings.Split(v, ".") {
			if !slices.Contains(sc.idents, name(part)) {
				return fmt.Errorf("no %s identifier decodes to %q", plan.Dialect, name(part))
			}
		}
	}
	return nil
}

func openDuck(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return db
}

// runPlan runs the SQL and returns its rows as text (NULL as "NULL").
func runPlan(db *sql.DB, sqlText string) ([][]string, error) {
	rows, err := db.Query(sqlText)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func profileKeys(rows [][]string) []string {
	var ks []string
	for _, r := range rows {
		ks = append(ks, r[0])
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// canary is a table every DuckDB database of the test holds; a statement
// smuggled into the SQL would most likely drop or change it.
func addCanary(db *sql.DB) error {
	_, err := db.Exec(`CREATE TABLE x (v VARCHAR); INSERT INTO x VALUES ('canary')`)
	return err
}

func checkCanary(db *sql.DB) error {
	var v string
	if err := db.QueryRow(`SELECT string_agg(v, ',') FROM x`).Scan(&v); err != nil || v != "canary" {
		return fmt.Errorf("canary table changed: %q, %v", v, err)
	}
	return nil
}

// TestInjection pushes every value of the corpus through every position of
// the language that reaches SQL, in four dialects (PostgreSQL's and
// Redshift's literals are held by their differential tests on a server). A value the language
// can spell there must be accepted, planned as exactly one statement, and,
// on DuckDB, select exactly the rows holding that value byte for byte (a
// look-alike never matches the ASCII quote; % and _ are no wildcards); a
// value it cannot spell must be refused by the parser or checker.
func TestInjection(t *testing.T) {
	parser := newDuckParser(t)
	dialects := []planner.Dialect{planner.DuckDB, planner.Snowflake, planner.BigQuery, planner.Databricks}

	// String positions share one world holding every hostile value.
	shared := openDuck(t)
	defer shared.Close()
	if err := defaultWorld().create(shared, hostile); err != nil {
		t.Fatal(err)
	}
	if err := addCanary(shared); err != nil {
		t.Fatal(err)
	}
	small := []string{"alpha", "beta", "gamma"}

	var cases, accepted, refused, ran int
	for _, pos := range positions() {
		values := hostile
		switch pos.kind {
		case posIdent:
			values = append(slices.Clone(names), hostile...)
		case posTable:
			values = append(slices.Clone(tableNames), hostile...)
		}
		t.Run(pos.name, func(t *testing.T) {
			acc0, ref0 := accepted, refused
			defer func() {
				t.Logf("%d values: %d accepted, %d refused", len(values), (accepted-acc0)/len(dialects), (refused-ref0)/len(dialects))
			}()
			for _, v := range values {
				if pos.kind == posIdent {
					// Blanks around a name are the source's layout, not
					// part of the name.
					v = strings.Trim(v, " \t\r\n")
				}
				var wantAccept bool
				switch pos.kind {
				case posString:
					wantAccept = !pos.reject && (pos.refuses == nil || !pos.refuses(v))
				case posIdent:
					wantAccept = identRE.MatchString(v)
				case posTable:
					wantAccept = isTableRef(v)
				}
				vals := small
				if pos.kind == posString {
					vals = hostile
				}
				for _, d := range dialects {
					cases++
					w := defaultWorld()
					body, extra, want := pos.set(&w, v, vals)
					plan, diags, ok := compile(t, w, body, d)
					if ok != wantAccept {
						t.Errorf("%s %q: accepted = %v, want %v\n%s", d.Name(), short(v), ok, wantAccept, diags)
						continue
					}
					if !ok {
						refused++
						continue
					}
					accepted++
					if err := checkText(parser, plan, pos, v); err != nil {
						t.Errorf("%s %q: %v\n%s", d.Name(), short(v), err, plan.SQL)
						continue
					}
					if d != planner.DuckDB {
						continue
					}
					db := shared
					if pos.kind != posString {
						db = openDuck(t)
						if err := w.create(db, vals, extra...); err != nil {
							db.Close()
							t.Errorf("%q: creating the world: %v", short(v), err)
							continue
						}
						if err := addCanary(db); err != nil {
							t.Fatal(err)
						}
					}
					ran++
					rows, err := runPlan(db, plan.SQL)
					if err == nil {
						err = checkCanary(db)
					}
					if db != shared {
						db.Close()
					}
					if err != nil {
						t.Errorf("%q: running the plan: %v", short(v), err)
						continue
					}
					slices.Sort(want)
					if got := profileKeys(rows); !slices.Equal(got, want) {
						t.Errorf("%q: members %q, want %q", short(v), got, want)
						continue
					}
					if pos.check != nil {
						if err := pos.check(rows); err != nil {
							t.Errorf("%q: %v", short(v), err)
						}
					}
				}
			}
		})
	}
	t.Logf("injection: %d cases (%d positions, %d hostile values + %d names + %d table names, %d dialects): %d accepted and checked, %d refused by the checker, %d run on DuckDB",
		cases, len(positions()), len(hostile), len(names), len(tableNames), len(dialects), accepted, refused, ran)
}
