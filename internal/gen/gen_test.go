package gen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

var anchor = time.Date(2026, 11, 28, 15, 30, 0, 0, time.UTC)

func generate(t *testing.T, profiles int, seed int64) (string, *Result) {
	t.Helper()
	dir := t.TempDir()
	res, err := Generate(context.Background(), Options{Profiles: profiles, Out: dir, Seed: seed, Anchor: anchor})
	if err != nil {
		t.Fatal(err)
	}
	return dir, res
}

// scalar runs a query returning one cell and gives its text.
func scalar(t *testing.T, wh executor.Warehouse, sql string) string {
	t.Helper()
	rr, err := wh.Query(context.Background(), sql, executor.QueryOptions{})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rr.Release()
	if !rr.Next() {
		t.Fatalf("%s: no row: %v", sql, rr.Err())
	}
	c, err := executor.NewCells(rr.RecordBatch().Column(0))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := c.Text(0)
	if !ok {
		return "NULL"
	}
	return s
}

func TestGenerate(t *testing.T) {
	const n = 2000
	dir, res := generate(t, n, 7)
	if !res.Anchor.Equal(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("anchor %v", res.Anchor)
	}

	// The workspace checks, and its warehouse block loads every file.
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		var b bytes.Buffer
		dsl.Render(&b, diags, dsl.Sources(ws.Files))
		t.Fatalf("workspace.la does not check:\n%s", b.String())
	}
	if got := len(ws.Audiences); got != 3 {
		t.Fatalf("%d audiences", got)
	}
	wh, err := executor.Open(context.Background(), ws.Warehouse, executor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if d := dsl.CheckColumns(context.Background(), ws, wh); len(d) > 0 {
		t.Fatalf("CheckColumns: %v", d)
	}

	count := func(sql string) int {
		t.Helper()
		var v int
		fmt.Sscan(scalar(t, wh, sql), &v)
		return v
	}
	for _, tab := range res.Tables {
		if got := count("SELECT count(*) FROM " + tab.Name); got != int(tab.Rows) || got == 0 {
			t.Errorf("%s: %d rows, Generate said %d", tab.Name, got, tab.Rows)
		}
	}
	if got := count(`SELECT count(*) FROM ANALYTICS.PROFILES WHERE segment_id IS NOT NULL`); got != n {
		t.Errorf("%d profiles with a key, want %d", got, n)
	}
	if got := count(`SELECT count(DISTINCT segment_id) FROM ANALYTICS.PROFILES`); got != n {
		t.Errorf("%d distinct keys", got)
	}
	for _, key := range []string{"BANK.ACCOUNTS", "BANK.CREDIT_CARDS", "BANK.SUBSCRIPTIONS", "BANK.TRANSACTIONS", "HOME.HOUSEHOLDS", "HOME.PETS"} {
		if got := count("SELECT count(*) - count(DISTINCT id) FROM " + key); got != 0 {
			t.Errorf("%s: %d duplicate ids", key, got)
		}
	}

	// Types as the audiences expect them.
	types := map[string]string{
		`SELECT typeof(amount) FROM BANK.TRANSACTIONS LIMIT 1`:     "DECIMAL(12,2)",
		`SELECT typeof(due_date) FROM BANK.CREDIT_CARDS LIMIT 1`:   "DATE",
		`SELECT typeof(opened_at) FROM BANK.ACCOUNTS LIMIT 1`:      "TIMESTAMP",
		`SELECT typeof("timestamp") FROM ANALYTICS.TRACKS LIMIT 1`: "TIMESTAMP",
		`SELECT typeof(ltv) FROM ANALYTICS.PROFILES LIMIT 1`:       "DECIMAL(12,2)",
	}
	for q, want := range types {
		if got := scalar(t, wh, q); got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
	// Every time lies before the anchor date.
	for _, q := range []string{
		`SELECT max(created_at) FROM ANALYTICS.PROFILES`, `SELECT max(opened_at) FROM BANK.ACCOUNTS`,
		`SELECT max(created_at) FROM BANK.TRANSACTIONS`, `SELECT max("timestamp") FROM ANALYTICS.TRACKS`,
	} {
		if got := scalar(t, wh, q); got > "2026-11-28T00:00:00Z" {
			t.Errorf("%s = %s, after the anchor", q, got)
		}
	}

	// The awkwardness real warehouses have.
	awkward := map[string]string{
		"profiles without a key":        `SELECT count(*) FROM ANALYTICS.PROFILES WHERE segment_id IS NULL`,
		"profiles without an email":     `SELECT count(*) FROM ANALYTICS.PROFILES WHERE email IS NULL AND segment_id IS NOT NULL`,
		"profiles sharing an email":     `SELECT count(*) FROM (SELECT email FROM ANALYTICS.PROFILES WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1)`,
		"profiles without a household":  `SELECT count(*) FROM ANALYTICS.PROFILES WHERE household_id IS NULL AND segment_id IS NOT NULL`,
		"households that do not exist":  `SELECT count(*) FROM ANALYTICS.PROFILES p WHERE household_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM HOME.HOUSEHOLDS h WHERE h.id = p.household_id)`,
		"profiles without accounts":     `SELECT count(*) FROM ANALYTICS.PROFILES p WHERE NOT EXISTS (SELECT 1 FROM BANK.ACCOUNTS a WHERE a.email = p.email)`,
		"accounts of no profile":        `SELECT count(*) FROM BANK.ACCOUNTS a WHERE NOT EXISTS (SELECT 1 FROM ANALYTICS.PROFILES p WHERE a.email = p.email)`,
		"cards of missing accounts":     `SELECT count(*) FROM BANK.CREDIT_CARDS c WHERE NOT EXISTS (SELECT 1 FROM BANK.ACCOUNTS a WHERE a.id = c.account_id)`,
		"cards without a balance":       `SELECT count(*) FROM BANK.CREDIT_CARDS WHERE balance IS NULL`,
		"transactions of missing cards": `SELECT count(*) FROM BANK.TRANSACTIONS t WHERE card_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM BANK.CREDIT_CARDS c WHERE c.id = t.card_id)`,
		"transactions on card and sub":  `SELECT count(*) FROM BANK.TRANSACTIONS WHERE card_id IS NOT NULL AND subscription_id IS NOT NULL`,
		"junction rows listed twice":    `SELECT count(*) FROM (SELECT household_id, pet_id FROM HOME.HOUSEHOLD_PETS GROUP BY ALL HAVING count(*) > 1)`,
		"pets of two households":        `SELECT count(*) FROM (SELECT pet_id FROM HOME.HOUSEHOLD_PETS GROUP BY pet_id HAVING count(DISTINCT household_id) > 1)`,
		"junction rows of missing pets": `SELECT count(*) FROM HOME.HOUSEHOLD_PETS hp WHERE NOT EXISTS (SELECT 1 FROM HOME.PETS p WHERE p.id = hp.pet_id)`,
		"Cat, not cat":                  `SELECT count(*) FROM HOME.PETS WHERE type = 'Cat'`,
		"pets of unknown type":          `SELECT count(*) FROM HOME.PETS WHERE type IS NULL`,
		"memberships of unknown users":  `SELECT count(*) FROM ANALYTICS.AUDIENCE_MEMBERSHIPS m WHERE NOT EXISTS (SELECT 1 FROM ANALYTICS.PROFILES p WHERE p.segment_id = m.segment_id)`,
		"memberships listed twice":      `SELECT count(*) FROM (SELECT segment_id, audience_key FROM ANALYTICS.AUDIENCE_MEMBERSHIPS GROUP BY ALL HAVING count(*) > 1)`,
		"events of unknown users":       `SELECT count(*) FROM ANALYTICS.TRACKS e WHERE NOT EXISTS (SELECT 1 FROM ANALYTICS.PROFILES p WHERE p.segment_id = e.user_id)`,
		"names outside ASCII":           `SELECT count(*) FROM ANALYTICS.PROFILES WHERE first_name <> regexp_replace(first_name, '[^\x00-\x7F]', '', 'g')`,
		"names with a quote":            `SELECT count(*) FROM ANALYTICS.PROFILES WHERE last_name LIKE '%''%'`,
		"names with a backslash":        `SELECT count(*) FROM ANALYTICS.PROFILES WHERE contains(last_name, '\')`,
		"non-ASCII emails":              `SELECT count(*) FROM ANALYTICS.PROFILES WHERE email <> regexp_replace(email, '[^\x00-\x7F]', '', 'g')`,
		"frozen accounts":               `SELECT count(*) FROM BANK.ACCOUNTS WHERE status = 'frozen'`,
	}
	for what, q := range awkward {
		if got := count(q); got == 0 {
			t.Errorf("no %s", what)
		}
	}

	// The seed's three use cases have members, written out by hand here
	// (the planner's own tests hold its SQL to the semantics).
	members := map[string]string{
		"outstanding_balance": `
			SELECT count(*) FROM ANALYTICS.PROFILES p WHERE segment_id IS NOT NULL AND EXISTS (
				SELECT 1 FROM BANK.ACCOUNTS a JOIN BANK.CREDIT_CARDS c ON a.id = c.account_id
				WHERE a.email = p.email AND c.balance = 'Outstanding')`,
		"platinum_cat_owners": `
			SELECT count(*) FROM ANALYTICS.PROFILES p WHERE segment_id IS NOT NULL AND EXISTS (
				SELECT 1 FROM HOME.HOUSEHOLDS h JOIN HOME.HOUSEHOLD_PETS hp ON h.id = hp.household_id
				JOIN HOME.PETS pet ON hp.pet_id = pet.id
				WHERE h.id = p.household_id AND pet.type = 'cat')
			AND EXISTS (SELECT 1 FROM ANALYTICS.AUDIENCE_MEMBERSHIPS m WHERE m.segment_id = p.segment_id AND m.audience_key = 'platinum_tier')`,
		"premium_heavy_users": `
			SELECT count(*) FROM ANALYTICS.PROFILES p WHERE segment_id IS NOT NULL
			AND EXISTS (
				SELECT 1 FROM BANK.ACCOUNTS a JOIN BANK.SUBSCRIPTIONS s ON a.id = s.account_id
				WHERE a.email = p.email AND a.status = 'open' AND a.opened_at >= TIMESTAMP '2026-11-28 15:30:00' - INTERVAL 365 DAY
				AND s.tier = 'Premium'
				AND (SELECT count(DISTINCT t.id) FROM BANK.TRANSACTIONS t WHERE t.subscription_id = s.id AND t.amount > 100) >= 5)
			AND p.plan IN ('gold', 'platinum')
			AND NOT EXISTS (SELECT 1 FROM BANK.ACCOUNTS a WHERE a.email = p.email AND a.status = 'frozen')
			AND (SELECT count(*) FROM ANALYTICS.TRACKS e WHERE e.user_id = p.segment_id AND e.event = 'Order Completed'
			     AND e."timestamp" >= TIMESTAMP '2026-11-28 15:30:00' - INTERVAL 30 DAY AND e.total > 50) >= 3`,
	}
	for name, q := range members {
		got := count(q)
		t.Logf("%s: %d members of %d profiles", name, got, n)
		if got == 0 || got == n {
			t.Errorf("%s: %d members", name, got)
		}
	}
}

// The same seed, size and anchor give the same rows; another seed does not.
func TestGenerateDeterministic(t *testing.T) {
	a, resA := generate(t, 500, 42)
	b, _ := generate(t, 500, 42)
	c, _ := generate(t, 500, 43)
	wh, err := executor.Open(context.Background(), &dsl.Warehouse{Type: "duckdb"}, executor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	diff := func(x, y, file string) string {
		fx, fy := filepath.Join(x, file), filepath.Join(y, file)
		return scalar(t, wh, fmt.Sprintf(`SELECT (SELECT count(*) FROM (FROM read_parquet('%[1]s') EXCEPT ALL FROM read_parquet('%[2]s')))
			+ (SELECT count(*) FROM (FROM read_parquet('%[2]s') EXCEPT ALL FROM read_parquet('%[1]s')))`, fx, fy))
	}
	changed := 0
	for _, tab := range resA.Tables {
		if d := diff(a, b, tab.File); d != "0" {
			t.Errorf("%s: %s rows differ between runs with one seed", tab.Name, d)
		}
		if d := diff(a, c, tab.File); d != "0" {
			changed++
		}
	}
	if changed < len(resA.Tables)-1 {
		t.Errorf("another seed changed only %d of %d tables", changed, len(resA.Tables))
	}
	wa, _ := os.ReadFile(filepath.Join(a, WorkspaceFile))
	wb, _ := os.ReadFile(filepath.Join(b, WorkspaceFile))
	if !bytes.Equal(wa, wb) {
		t.Error("workspace.la differs between runs")
	}
	if !strings.Contains(string(wa), `load "BANK.TRANSACTIONS" from "data/transactions.parquet"`) {
		t.Errorf("workspace.la:\n%s", wa)
	}
}

func TestGenerateRejects(t *testing.T) {
	if _, err := Generate(context.Background(), Options{Profiles: 0, Out: t.TempDir()}); err == nil {
		t.Fatal("zero profiles accepted")
	}
}

// --audiences adds audiences that check, each its own query.
func TestManyAudiences(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(context.Background(), Options{Profiles: 300, Out: dir, Seed: 1, Anchor: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), Audiences: 60}); err != nil {
		t.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(ws.Audiences) != 63 {
		t.Fatalf("%d audiences, want the seed's 3 and 60 generated", len(ws.Audiences))
	}
	versions := map[string]string{}
	for _, a := range ws.Audiences {
		if prev, ok := versions[a.Version]; ok {
			t.Errorf("%s and %s are the same audience", prev, a.Name)
		}
		versions[a.Version] = a.Name
	}
}
