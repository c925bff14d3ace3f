package planner_test

import (
	"database/sql"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/linkaud/linkaud/internal/randgen"
	"github.com/linkaud/linkaud/planner"
)

// TestWhyDifferential holds CompileWhy's verdict to preview's membership:
// for random graphs, data and audiences (the generator of TestDifferential,
// with its NULLs, junction duplicates, exactly 0, not, or, dynamic
// references and windows), the audience's plan gives the members, and why
// must say member for each of them and non-member for every other profile
// key, and for a key no profile has. Every why statement also goes through
// DuckDB's parser for subqueries, as the plans do.
func TestWhyDifferential(t *testing.T) {
	audiences := 300
	if testing.Short() {
		audiences = 80
	}
	runWhyDifferential(t, audiences, openDB, planner.DuckDB, func(db *sql.DB, q string) error { return noSubquery(db, q) })
}

// whyProfiles is how many profile keys of each case are asked about,
// besides every member up to that many and a key nobody has.
const whyProfiles = 3

func runWhyDifferential(t *testing.T, audiences int, open func(testing.TB) *sql.DB, d planner.Dialect, check func(*sql.DB, string) error) {
	start := time.Now()
	seed := *fuzzSeed
	cases, members, missing := 0, 0, 0
	for gi := 0; gi*audiencesPerGraph < audiences; gi++ {
		gen := randgen.New(uint64(seed)*7_000_003 + uint64(gi))
		gr := gen.Graph()
		db := open(t)
		if err := load(db, gr); err != nil {
			t.Fatalf("load: %v\n%s", err, gr.Text())
		}
		keys, err := column(db, "SELECT DISTINCT "+textCast(d, gr.Profile.Key)+" FROM "+gr.Profile.Table.SQLName()+" WHERE "+quoteCol(gr.Profile.Key)+" IS NOT NULL ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < audiencesPerGraph && gi*audiencesPerGraph+k < audiences; k++ {
			helpers, target := gen.Audiences(gr)
			c := &randgen.Case{Graph: gr, Helpers: helpers, Target: target, Now: gen.Now()}
			ws, err := checkCase(c)
			if err != nil {
				t.Fatalf("generated text does not check: %v\n%s", err, sourceText(c))
			}
			a := ws.Audience("target")
			plan, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: c.Now})
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, sourceText(c))
			}
			got, err := column(db, "SELECT DISTINCT profile_key FROM ("+plan.SQL+") AS r")
			if err != nil {
				t.Fatalf("preview: %v\n%s", err, sourceText(c))
			}
			member := map[string]bool{}
			for _, m := range got {
				member[m] = true
			}
			ask := whyKeys(keys, member, k)
			for _, key := range ask {
				cases++
				w, err := planner.CompileWhy(a, ws.Graph, d, key, planner.Options{Now: c.Now, Limit: 5})
				if err != nil {
					t.Fatalf("why %q: %v\n%s", key, err, sourceText(c))
				}
				// The evidence statements of every fourth graph run too,
				// and go through the dialect's check.
				for i, s := range w.Statements() {
					if gi%4 != 0 {
						break
					}
					if check != nil {
						if err := check(db, s); err != nil {
							t.Fatalf("why %q statement %d: %v\n%s", key, i, err, s)
						}
					}
					if i > 0 {
						if _, err := query(db, s); err != nil {
							t.Fatalf("why %q statement %d: %v\n%s\n%s", key, i, err, sourceText(c), s)
						}
					}
				}
				verdict, found, err := whyVerdict(db, w)
				if err != nil {
					t.Fatalf("why %q: %v\n%s\n%s", key, err, sourceText(c), w.SQL)
				}
				if !found {
					missing++
				}
				if verdict {
					members++
				}
				if verdict != member[key] || found != contains(keys, key) {
					t.Fatalf("why %q: member %v (profile found %v), preview says member %v\n%s# data:\n%s# why SQL:\n%s\n# plan:\n%s",
						key, verdict, found, member[key], sourceText(c), c.DataText(), w.SQL, plan.SQL)
				}
			}
		}
		db.Close()
	}
	if cases < 1000 && !testing.Short() {
		t.Errorf("only %d (graph, data, audience, profile) cases", cases)
	}
	t.Logf("%d why cases (%d members, %d no such profile) over %d audiences in %s", cases, members, missing, audiences, time.Since(start).Round(time.Millisecond))
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// whyVerdict runs w's main statement: a member when one of the profile's
// rows satisfies the tree.
func whyVerdict(db *sql.DB, w *planner.Why) (member, found bool, err error) {
	rows, err := db.Query(w.SQL)
	if err != nil {
		return false, false, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		found = true
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return false, false, err
		}
		if w.Root.Holds(func(col int) bool { return fmt.Sprint(vals[col]) == "1" }) {
			member = true
		}
	}
	return member, found, rows.Err()
}

func column(db *sql.DB, q string) ([]string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s.String)
	}
	return out, rows.Err()
}

func quoteCol(c string) string { return `"` + c + `"` }

func textCast(d planner.Dialect, c string) string { return d.Text(quoteCol(c)) }

// whyKeys are the profile keys a case asks why about: members and
// non-members up to whyProfiles each, and a key that is no profile's.
func whyKeys(keys []string, member map[string]bool, k int) []string {
	var ask []string
	nm, nn := 0, 0
	for _, key := range keys {
		if member[key] && nm < whyProfiles {
			ask, nm = append(ask, key), nm+1
		} else if !member[key] && nn < whyProfiles {
			ask, nn = append(ask, key), nn+1
		}
	}
	return append(ask, "no such profile "+strconv.Itoa(k))
}
