package planner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/randgen"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/why"
)

// whyPGAudiences is how many random audiences TestWhyDifferentialPostgres
// asks why about (each for up to 2×whyProfiles profiles and a missing one).
var whyPGAudiences = envInt("LINKAUD_WHY_PG_AUDIENCES", 240)

// TestWhyDifferentialPostgres is TestWhyDifferential on PostgreSQL, through
// the executor and planner/why's runner (every evidence statement runs):
// why's verdict for members, non-members and a missing key equals the
// membership the audience's plan gives on the same server. why's
// statements are Selective, so the session allows nested loops for them.
func TestWhyDifferentialPostgres(t *testing.T) {
	d := planner.ExactNames(planner.Postgres)
	eng := newPGEngine(t, d)
	ctx := context.Background()
	audiences := whyPGAudiences
	if testing.Short() {
		audiences = 40
	}
	start := time.Now()
	cases, members, missing := 0, 0, 0
	var whyTime time.Duration
	for gi := 0; gi*audiencesPerGraph < audiences; gi++ {
		gen := randgen.New(uint64(*fuzzSeed)*7_000_003 + uint64(gi))
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
			t.Fatalf("load into PostgreSQL: %v", err)
		}
		duck.Close()
		var tparts []string
		for _, p := range gr.Profile.Table.Name {
			tparts = append(tparts, d.Ident(p))
		}
		key := d.Ident(gr.Profile.Key)
		keys, err := pgColumn(ctx, eng.wh, "SELECT DISTINCT "+d.Text(key)+" FROM "+strings.Join(tparts, ".")+" WHERE "+key+" IS NOT NULL")
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
			plan, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: c.Now, Unordered: true})
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, sourceText(c))
			}
			got, err := pgColumn(ctx, eng.wh, plan.SQL)
			if err != nil {
				t.Fatalf("preview: %v\n%s", err, sourceText(c))
			}
			member := map[string]bool{}
			for _, m := range got {
				member[m] = true
			}
			for _, key := range whyKeys(keys, member, k) {
				cases++
				w, err := planner.CompileWhy(a, ws.Graph, d, key, planner.Options{Now: c.Now, Limit: 5})
				if err != nil {
					t.Fatalf("why %q: %v\n%s", key, err, sourceText(c))
				}
				began := time.Now()
				res, err := why.Run(ctx, eng.wh, w)
				whyTime += time.Since(began)
				if err != nil {
					t.Fatalf("why %q: %v\n%s\n%s", key, err, sourceText(c), strings.Join(w.Statements(), "\n;\n"))
				}
				if res.Member != member[key] || res.Found != contains(keys, key) {
					t.Fatalf("why %q: member %v (found %v), the plan says member %v\n%s# data:\n%s# why SQL:\n%s",
						key, res.Member, res.Found, member[key], sourceText(c), c.DataText(), w.SQL)
				}
				if res.Member {
					members++
				}
				if !res.Found {
					missing++
				}
			}
		}
	}
	if !testing.Short() && cases < 1000 {
		t.Errorf("only %d why cases on PostgreSQL", cases)
	}
	t.Logf("%d why cases on PostgreSQL (%d members, %d no such profile) over %d audiences in %s, %s of it in why",
		cases, members, missing, audiences, time.Since(start).Round(time.Millisecond), whyTime.Round(time.Millisecond))
}

// pgColumn runs q and returns its first column as text.
func pgColumn(ctx context.Context, wh executor.Warehouse, q string) ([]string, error) {
	rd, err := wh.Query(ctx, q, executor.QueryOptions{Tag: "test"})
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	var out []string
	for rd.Next() {
		rec := rd.RecordBatch()
		c, err := executor.NewCells(rec.Column(0))
		if err != nil {
			return nil, err
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			s, _ := c.Text(r)
			out = append(out, s)
		}
	}
	return out, rd.Err()
}
