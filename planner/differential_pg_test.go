package planner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/internal/randgen"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
)

// TestDifferentialPostgres is TestDifferential on PostgreSQL: the same
// random graphs, data and audiences (the same seed gives the same cases),
// planned in the postgres dialect, run on the test server through the
// executor, every row compared with the reference evaluator. EXPLAIN of
// each statement must show no SubPlan: PostgreSQL runs a correlated
// subquery as one, once per outer row.
func TestDifferentialPostgres(t *testing.T) {
	differentialOn(t, planner.ExactNames(planner.Postgres), *fuzzCases)
}

// TestDifferentialRedshiftOnPostgres runs the redshift dialect's SQL on
// PostgreSQL where the two read it alike (see pgEngine): its literals,
// text matching, NULL-matching joins, casts and time windows.
func TestDifferentialRedshiftOnPostgres(t *testing.T) {
	differentialOn(t, planner.ExactNames(planner.Redshift), min(*fuzzCases, 400))
}

func differentialOn(t *testing.T, d planner.Dialect, cases int) {
	if testing.Short() && cases > 200 {
		cases = 200
	}
	eng := newPGEngine(t, d)
	ctx := context.Background()
	seed := *fuzzSeed
	var st stats
	failures := 0
	start := time.Now()
	for gi := 0; gi*audiencesPerGraph < cases; gi++ {
		first := gi * audiencesPerGraph
		if *fuzzOne >= 0 && (*fuzzOne < first || *fuzzOne >= first+audiencesPerGraph) {
			continue
		}
		gen := randgen.New(uint64(seed)*1_000_003 + uint64(gi))
		gr := gen.Graph()
		duck := openDB(t)
		if err := load(duck, gr); err != nil {
			t.Fatalf("load: %v\n%s", err, gr.Text())
		}
		var names []dsl.TableName
		for _, tb := range gr.Tables() {
			names = append(names, dsl.TableName(tb.Name))
		}
		if err := eng.load(ctx, duck, names); err != nil {
			t.Fatalf("load into PostgreSQL: %v\n%s", err, gr.Text())
		}
		duck.Close()
		for k := 0; k < audiencesPerGraph && first+k < cases; k++ {
			helpers, target := gen.Audiences(gr)
			c := &randgen.Case{Graph: gr, Helpers: helpers, Target: target, Now: gen.Now(), Limit: gen.Limit()}
			ws, err := checkCase(c)
			if err != nil {
				t.Fatalf("case %d: generated text does not check: %v\n%s", first+k, err, sourceText(c))
			}
			if a := ws.Audience("target"); a.Primary != nil {
				var steps []string
				for _, s := range a.Primary.Steps {
					steps = append(steps, s.Entity.Name)
				}
				target.Enrich = gen.Enrich(gr, steps)
			}
			if *fuzzOne >= 0 && *fuzzOne != first+k {
				continue
			}
			r := eng.runCase(ctx, c)
			st.add(c, r)
			if r.ok() {
				continue
			}
			failures++
			t.Errorf("%s case %d (-seed=%d -case=%d): %s\n%s", d.Name(), first+k, seed, first+k, r.summary(), reproducer(c, r))
			if failures >= 3 {
				t.Fatalf("stopping after %d failures", failures)
			}
		}
	}
	t.Logf("%s, seed %d: %d cases in %s; %s", d.Name(), seed, st.cases, time.Since(start).Round(time.Millisecond), st.String())
}

func (e *pgEngine) runCase(ctx context.Context, c *randgen.Case) *result {
	r := &result{}
	ws, err := checkCase(c)
	if err != nil {
		r.checkErr = err
		return r
	}
	a := ws.Audience("target")
	plan, err := planner.Compile(a, ws.Graph, e.dialect, planner.Options{Now: c.Now, Limit: c.Limit})
	if err != nil {
		r.planErr = err
		return r
	}
	r.sql = plan.SQL
	if e.dialect.Name() == "postgres" && e.conn != nil {
		if err := e.noSubPlan(ctx, plan.SQL); err != nil {
			r.queryErr = err
			return r
		}
	}
	r.got, r.queryErr = e.rows(ctx, plan)
	r.got = keyOrder(r.got, plan.KeyColumns())
	rows, err := refeval.Evaluate(a, ws.Graph, refDB(c.Graph), c.Now)
	if err != nil {
		r.evalErr = err
		return r
	}
	r.want = keyOrder(canonicalWant(limitMembers(rows, c.Limit)), plan.KeyColumns())
	return r
}

// limitMembers keeps the rows of the first limit members (all when limit
// is 0).
func limitMembers(rows []refeval.Row, limit int) []refeval.Row {
	if limit <= 0 {
		return rows
	}
	m := refeval.Members(rows)
	if len(m) <= limit {
		return rows
	}
	n := 0
	for n < len(rows) && rows[n].ProfileKey <= m[limit-1] {
		n++
	}
	return rows[:n]
}

// noSubPlan fails when PostgreSQL's plan of q has a SubPlan: how it runs a
// correlated subquery (and an uncorrelated one it cannot hoist), once per
// row of the outer query.
func (e *pgEngine) noSubPlan(ctx context.Context, q string) error {
	rows, err := e.conn.Query(ctx, "EXPLAIN (FORMAT JSON) "+q)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		b.WriteString(s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	if p := b.String(); strings.Contains(p, "SubPlan") {
		return fmt.Errorf("the plan has a SubPlan:\n%s", p)
	}
	return nil
}
