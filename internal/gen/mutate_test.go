package gen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/executor"
)

func mutate(t *testing.T, dir string, percent float64, seed int64) *MutateResult {
	t.Helper()
	res, err := Mutate(context.Background(), MutateOptions{Dir: dir, Percent: percent, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// files reads every data file of a workspace.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "data", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func duck(t *testing.T) executor.Warehouse {
	t.Helper()
	wh, err := executor.Open(context.Background(), &dsl.Warehouse{Type: "duckdb"}, executor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	return wh
}

// Mutate is a function of the files, the seed and the percent: two copies
// mutated alike have the same bytes, hour after hour; another seed
// differs; nothing but the data files is left behind.
func TestMutateDeterministic(t *testing.T) {
	a, resA := generate(t, 1500, 3)
	b := t.TempDir()
	if err := os.CopyFS(b, os.DirFS(a)); err != nil {
		t.Fatal(err)
	}
	c := t.TempDir()
	if err := os.CopyFS(c, os.DirFS(a)); err != nil {
		t.Fatal(err)
	}
	for hour, seed := range []int64{11, 12, 11} {
		ra, rb := mutate(t, a, 5, seed), mutate(t, b, 5, seed)
		if fmt.Sprint(ra) != fmt.Sprint(rb) {
			t.Fatalf("hour %d: results differ:\n%v\n%v", hour, ra, rb)
		}
		fa, fb := files(t, a), files(t, b)
		if len(fa) != len(resA.Tables) {
			t.Fatalf("hour %d: data holds %d files, want %d (a temporary file left?)", hour, len(fa), len(resA.Tables))
		}
		for name, x := range fa {
			if !bytes.Equal(x, fb[name]) {
				t.Errorf("hour %d: %s differs between two mutations with one seed", hour, name)
			}
		}
	}
	mutate(t, c, 5, 99)
	fa, fc := files(t, a), files(t, c)
	for name := range fa {
		if bytes.Equal(fa[name], fc[name]) {
			t.Errorf("%s: the same bytes after mutations with other seeds", name)
		}
	}
}

// Percent 0 touches nothing; out-of-range percents and a directory
// without a workspace are refused.
func TestMutateZeroAndRejects(t *testing.T) {
	dir, res := generate(t, 800, 4)
	before := files(t, dir)
	stats := map[string]time.Time{}
	for name := range before {
		st, err := os.Stat(filepath.Join(dir, "data", name))
		if err != nil {
			t.Fatal(err)
		}
		stats[name] = st.ModTime()
	}
	got := mutate(t, dir, 0, 5)
	for i, tab := range got.Tables {
		if tab.Name != res.Tables[i].Name || tab.File != res.Tables[i].File || tab.Rows != res.Tables[i].Rows ||
			tab.Changed+tab.Added+tab.Removed != 0 {
			t.Errorf("Percent 0: %+v, generated %+v", tab, res.Tables[i])
		}
	}
	after := files(t, dir)
	for name, b := range before {
		if !bytes.Equal(b, after[name]) {
			t.Errorf("Percent 0 changed %s", name)
		}
		st, _ := os.Stat(filepath.Join(dir, "data", name))
		if !st.ModTime().Equal(stats[name]) {
			t.Errorf("Percent 0 rewrote %s", name)
		}
	}
	for _, p := range []float64{-1, 100.5} {
		if _, err := Mutate(context.Background(), MutateOptions{Dir: dir, Percent: p}); err == nil {
			t.Errorf("Percent %g accepted", p)
		}
	}
	if _, err := Mutate(context.Background(), MutateOptions{Dir: t.TempDir(), Percent: 1}); err == nil {
		t.Error("a directory without a workspace accepted")
	}
}

// keyOf is the identity of a row in each table: the key for entities and
// profiles, the whole row for the key-less tables.
var keyOf = map[string]string{
	"ANALYTICS.PROFILES": "segment_id", "BANK.ACCOUNTS": "id", "BANK.CREDIT_CARDS": "id",
	"BANK.SUBSCRIPTIONS": "id", "BANK.TRANSACTIONS": "id", "HOME.HOUSEHOLDS": "id", "HOME.PETS": "id",
	"ANALYTICS.TRACKS": "message_id",
}

// About Percent% of each table's rows change, are removed or added; the
// counts Mutate reports are what a comparison by key finds; a changed row
// keeps its key; a second mutation compounds, and keys stay unique and
// types stay the same.
func TestMutateChanges(t *testing.T) {
	const percent = 5.0
	dir, _ := generate(t, 20000, 8)
	wh := duck(t)
	old := t.TempDir()
	for hour, seed := range []int64{21, 22} {
		if err := os.RemoveAll(old); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(old, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		res := mutate(t, dir, percent, seed)
		var touched, rowsBefore int64
		for _, tab := range res.Tables {
			before := tab.Rows - tab.Added + tab.Removed
			frac := float64(tab.Changed+tab.Added+tab.Removed) / float64(before)
			t.Logf("hour %d: %-32s %7d rows: %5d changed, %5d added, %5d removed (%.2f%%)",
				hour, tab.Name, tab.Rows, tab.Changed, tab.Added, tab.Removed, 100*frac)
			if frac < 0.6*percent/100 || frac > 1.4*percent/100 {
				t.Errorf("hour %d: %s: %.2f%% of the rows touched, want about %g%%", hour, tab.Name, 100*frac, percent)
			}
			touched += tab.Changed + tab.Added + tab.Removed
			rowsBefore += before
			o := "read_parquet(" + sqlString(filepath.Join(old, tab.File)) + ")"
			n := "read_parquet(" + sqlString(filepath.Join(dir, tab.File)) + ")"
			count := func(q string) int64 {
				t.Helper()
				v, err := strconv.ParseInt(scalar(t, wh, q), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if got := count("SELECT count(*) FROM " + n); got != tab.Rows {
				t.Errorf("hour %d: %s holds %d rows, Mutate said %d", hour, tab.Name, got, tab.Rows)
			}
			// Column names and types are kept.
			if d, e := scalar(t, wh, "SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE FROM "+o+")"),
				scalar(t, wh, "SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE FROM "+n+")"); d != e {
				t.Errorf("hour %d: %s: columns were %s, are %s", hour, tab.Name, d, e)
			}
			key, keyed := keyOf[tab.Name]
			if !keyed {
				// Junction and membership rows: a row is its identity.
				if got := count(fmt.Sprintf("SELECT count(*) FROM (FROM %s EXCEPT ALL FROM %s)", o, n)); got != tab.Removed {
					t.Errorf("hour %d: %s: %d rows gone, Mutate said %d removed", hour, tab.Name, got, tab.Removed)
				}
				if got := count(fmt.Sprintf("SELECT count(*) FROM (FROM %s EXCEPT ALL FROM %s)", n, o)); got != tab.Added {
					t.Errorf("hour %d: %s: %d rows new, Mutate said %d added", hour, tab.Name, got, tab.Added)
				}
				continue
			}
			if got := count(fmt.Sprintf("SELECT count(*) - count(DISTINCT %s) FROM %s WHERE %[1]s IS NOT NULL", key, n)); got != 0 {
				t.Errorf("hour %d: %s: %d duplicate keys", hour, tab.Name, got)
			}
			checks := []struct {
				what string
				q    string
				want int64
			}{
				// Profiles without a key are left alone (and never match
				// in a join).
				{"removed", fmt.Sprintf("SELECT count(*) FROM %s o WHERE %[3]s IS NOT NULL AND %[3]s NOT IN (SELECT %[3]s FROM %[2]s WHERE %[3]s IS NOT NULL)", o, n, key), tab.Removed},
				{"added", fmt.Sprintf("SELECT count(*) FROM %s n WHERE %[3]s IS NOT NULL AND %[3]s NOT IN (SELECT %[3]s FROM %[2]s WHERE %[3]s IS NOT NULL)", n, o, key), tab.Added},
				// Rows whose key stayed but some value changed.
				{"changed", fmt.Sprintf("SELECT count(*) FROM (FROM %s WHERE %[3]s IN (SELECT %[3]s FROM %[2]s) EXCEPT ALL FROM %[2]s)", n, o, key), tab.Changed},
			}
			for _, c := range checks {
				if got := count(c.q); got != c.want {
					t.Errorf("hour %d: %s: %d rows %s by key, Mutate said %d", hour, tab.Name, got, c.what, c.want)
				}
			}
			if tab.Name == "ANALYTICS.PROFILES" {
				if got := count("SELECT count(*) FROM " + n + " WHERE segment_id IS NULL"); got != count("SELECT count(*) FROM "+o+" WHERE segment_id IS NULL") {
					t.Errorf("hour %d: rows without a key changed in number", hour)
				}
			}
		}
		if frac := float64(touched) / float64(rowsBefore); frac < 0.9*percent/100 || frac > 1.1*percent/100 {
			t.Errorf("hour %d: %.2f%% of all rows touched, want about %g%%", hour, 100*frac, percent)
		}
		// The new track events fall in one hour, after every earlier one.
		tracks := func(d string) string {
			return "read_parquet(" + sqlString(filepath.Join(d, "data", "tracks.parquet")) + ")"
		}
		if got := scalar(t, wh, fmt.Sprintf(`SELECT min(n."timestamp") > (SELECT max("timestamp") FROM %[2]s)
			AND date_trunc('hour', min(n."timestamp")) = date_trunc('hour', max(n."timestamp"))
			FROM %[1]s n ANTI JOIN %[2]s o USING (message_id)`, tracks(dir), tracks(old))); got != "true" {
			t.Errorf("hour %d: the new events do not fall in one hour after the earlier ones", hour)
		}
	}
	// What the kinds of change are made of: balances flip, accounts close
	// or freeze, plans and emails change.
	wantKinds := map[string]string{
		"balance flips":  `SELECT count(*) FROM read_parquet('%[1]s/data/credit_cards.parquet') o JOIN read_parquet('%[2]s/data/credit_cards.parquet') n USING (id) WHERE o.balance = 'Outstanding' AND n.balance = 'Paid'`,
		"status changes": `SELECT count(*) FROM read_parquet('%[1]s/data/accounts.parquet') o JOIN read_parquet('%[2]s/data/accounts.parquet') n USING (id) WHERE o.status IS DISTINCT FROM n.status`,
		"plan changes":   `SELECT count(*) FROM read_parquet('%[1]s/data/profiles.parquet') o JOIN read_parquet('%[2]s/data/profiles.parquet') n USING (segment_id) WHERE o.plan IS DISTINCT FROM n.plan`,
		"email changes":  `SELECT count(*) FROM read_parquet('%[1]s/data/profiles.parquet') o JOIN read_parquet('%[2]s/data/profiles.parquet') n USING (segment_id) WHERE o.email IS DISTINCT FROM n.email`,
		"cards closed with their account": `SELECT count(*) FROM read_parquet('%[1]s/data/credit_cards.parquet') o
			ANTI JOIN read_parquet('%[2]s/data/credit_cards.parquet') n USING (id)
			WHERE o.account_id IN (SELECT id FROM read_parquet('%[1]s/data/accounts.parquet')) AND o.account_id NOT IN (SELECT id FROM read_parquet('%[2]s/data/accounts.parquet'))`,
	}
	for what, q := range wantKinds {
		if got := scalar(t, wh, fmt.Sprintf(q, old, dir)); got == "0" {
			t.Errorf("no %s", what)
		}
	}
}

// A mutated workspace still checks and loads, and a compute cycle after a
// mutation sees members enter and leave and entities come and go.
func TestMutateCycle(t *testing.T) {
	dir, _ := generate(t, 3000, 9)
	if err := os.WriteFile(filepath.Join(dir, "extra.la"), []byte(
		"audience cards { match profile -> account -> credit_card where balance = \"Outstanding\" enrich credit_card.credit_limit }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := anchor.Add(12 * time.Hour)
	cycle := func() map[string]string {
		t.Helper()
		ws, diags := dsl.Load(dir, dsl.Options{})
		if diags.HasErrors() {
			var b bytes.Buffer
			dsl.Render(&b, diags, dsl.Sources(ws.Files))
			t.Fatalf("the mutated workspace does not check:\n%s", b.String())
		}
		now = now.Add(time.Hour)
		clock := func() time.Time { return now }
		e, err := engine.Open(context.Background(), ws, engine.Options{Logger: quiet, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		rep, err := e.RunOnce(context.Background(), engine.RunOptions{Audiences: []string{"outstanding_balance", "platinum_cat_owners", "premium_heavy_users", "cards"}, Enable: true})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, a := range rep.Audiences {
			if a.Err != nil {
				t.Fatalf("%s: %v", a.Name, a.Err)
			}
			c := a.Result.Counts
			out[a.Name] = fmt.Sprintf("members %d entered %d exited %d added %d removed %d changed %d", c.Members, c.Entered, c.Exited, c.Added, c.Removed, c.Changed)
		}
		return out
	}
	first := cycle()
	t.Logf("first cycle: %v", first)
	mutate(t, dir, 5, 1)
	second := cycle()
	t.Logf("after a 5%% mutation: %v", second)
	for name, s := range second {
		var members, entered, exited, added, removed, changed int64
		if _, err := fmt.Sscanf(s, "members %d entered %d exited %d added %d removed %d changed %d", &members, &entered, &exited, &added, &removed, &changed); err != nil {
			t.Fatal(err)
		}
		if members == 0 {
			t.Errorf("%s has no members", name)
			continue
		}
		if entered+exited == 0 {
			t.Errorf("%s: nobody entered or left after a mutation: %s", name, s)
		}
		if name == "outstanding_balance" || name == "cards" {
			if added == 0 || removed == 0 {
				t.Errorf("%s: entities were not both added and removed: %s", name, s)
			}
		}
		if name == "cards" && changed == 0 {
			t.Errorf("cards: no enrichment changed: %s", s)
		}
	}
	mutate(t, dir, 0, 2)
	for name, s := range cycle() {
		if !strings.Contains(s, "entered 0 exited 0 added 0 removed 0 changed 0") {
			t.Errorf("%s changed after a 0%% mutation: %s", name, s)
		}
	}
}
