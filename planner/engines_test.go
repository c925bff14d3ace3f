package planner_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/pgload"
	"github.com/linkaud/linkaud/internal/pgtest"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
)

// pgEngine runs plans on the PostgreSQL test server through the real
// executor (pgx, Arrow batches, canonical cells), for the value-asserting
// suites: the tables of a case are copied from the DuckDB database the
// suite filled (internal/pgload), so both engines read the same data.
//
// With dialect redshift it runs the Redshift SQL where PostgreSQL reads it
// the same way: the sessions have standard_conforming_strings off (so a
// backslash escapes, as in Redshift literals) and the executor asks for
// text values, as it does of Redshift; Redshift's COLLATE(x,
// 'case_sensitive'), which PostgreSQL lacks, becomes x COLLATE "C", its
// PostgreSQL equal. Everything else of the statement runs as written.
type pgEngine struct {
	dialect planner.Dialect
	conn    *pgx.Conn // nil on a live warehouse
	wh      executor.Warehouse
	// emulated says a redshift dialect runs on PostgreSQL.
	emulated bool
}

// newPGEngine makes an engine on a new database. Random graphs may name
// two tables alike but for case, which PostgreSQL's folding would merge:
// their suites use exact names (planner.ExactNames), the others the
// dialect's folding.
func newPGEngine(t *testing.T, d planner.Dialect) *pgEngine {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	if d.Name() == "redshift" {
		// Redshift has no locale collations: text compares by its bytes.
		dsn = pgtest.NewByteOrderDatabase(t)
		dsn += "&options=" + strings.NewReplacer(" ", "%20", "=", "%3D").Replace("-c standard_conforming_strings=off -c escape_string_warning=off")
	}
	e := &pgEngine{dialect: d, conn: pgtest.Connect(t, dsn), emulated: d.Name() == "redshift"}
	w := &dsl.Warehouse{Type: d.Name(), DSN: dsl.Secret{Env: "TEST_DSN"}, Settings: map[string]string{}}
	if _, exact := d.(interface{ Exact() bool }); exact && d.Name() == "postgres" {
		// (Redshift's executor would turn enable_case_sensitive_identifier
		// on, a setting PostgreSQL lacks: it matches quoted names exactly
		// anyway.)
		w.Settings["exact_names"] = "true"
	}
	wh, err := executor.Open(context.Background(), w, executor.Options{
		LookupEnv: func(string) (string, bool) { return dsn, true },
		MaxConns:  2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	e.wh = wh
	return e
}

// load replaces the database's tables by copies of duck's tables names.
func (e *pgEngine) load(ctx context.Context, duck *sql.DB, names []dsl.TableName) error {
	if err := pgtest.ResetSchemas(ctx, e.conn); err != nil {
		return err
	}
	tables := make([]pgload.Table, len(names))
	for i, n := range names {
		tables[i] = pgload.Table{Name: n}
	}
	return pgload.Copy(ctx, duck, e.conn, tables, pgload.Options{Ident: e.dialect.Ident})
}

// rows runs plan and renders its rows canonically (canonicalRow).
func (e *pgEngine) rows(ctx context.Context, plan *planner.Plan) ([]string, error) {
	q := plan.SQL
	if e.emulated {
		q = redshiftOnPostgres(q)
	}
	rd, err := e.wh.Query(ctx, q, executor.QueryOptions{Tag: "test"})
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	var out []string
	for rd.Next() {
		rec := rd.RecordBatch()
		cells := make([]executor.Cells, rec.NumCols())
		for i := range cells {
			if cells[i], err = executor.NewCells(rec.Column(i)); err != nil {
				return nil, err
			}
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			vals := make([]any, len(cells))
			for i, c := range cells {
				switch {
				case c.IsNull(r):
				case plan.Columns[i].Role != planner.RoleEnrich:
					vals[i], _ = c.Text(r)
				default:
					vals[i] = c.Value(r)
					switch rec.Column(i).DataType().ID() {
					case arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP:
						vals[i] = canonicalTime(vals[i].(string))
					}
				}
			}
			out = append(out, canonicalRow(vals))
		}
	}
	return out, rd.Err()
}

// redshiftOnPostgres turns COLLATE(x, 'case_sensitive') into x COLLATE "C".
func redshiftOnPostgres(q string) string {
	const open = "COLLATE("
	var b strings.Builder
	for {
		i := strings.Index(q, open)
		if i < 0 {
			b.WriteString(q)
			return b.String()
		}
		b.WriteString(q[:i])
		depth, j := 1, i+len(open)
		for ; j < len(q) && depth > 0; j++ {
			switch q[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		inner := q[i+len(open) : j-1]
		arg, ok := strings.CutSuffix(inner, ", 'case_sensitive'")
		if !ok {
			b.WriteString(q[i:j])
		} else {
			b.WriteString(arg + ` COLLATE "C"`)
		}
		q = q[j:]
	}
}

// canonicalTime is a date's or timestamp's instant in RFC 3339, UTC: the
// suites compare values, and which of the two types a warehouse chose for
// a column is its own business.
func canonicalTime(s string) string {
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	return s
}

// canonicalRow renders a row's values with their Go type, as Cells.Value
// gives them (int64, uint64, float64, bool, string, json.Number).
func canonicalRow(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			parts[i] = "NULL"
		case string:
			parts[i] = strconv.Quote(v)
		case float64:
			parts[i] = strconv.FormatFloat(v, 'g', -1, 64) + "f"
		case json.Number:
			if r, ok := new(big.Rat).SetString(string(v)); ok {
				parts[i] = "n:" + r.RatString()
			} else {
				parts[i] = "n:" + string(v)
			}
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return strings.Join(parts, " | ")
}

// canonicalWant renders the evaluator's rows as canonicalRow renders the
// engine's.
func canonicalWant(rows []refeval.Row) []string {
	var out []string
	for _, r := range rows {
		vals := []any{r.ProfileKey}
		for _, k := range r.Keys {
			if k == nil {
				vals = append(vals, nil)
			} else {
				vals = append(vals, *k)
			}
		}
		for _, v := range r.Enrich {
			switch x := v.(type) {
			case time.Time:
				v = x.UTC().Format(time.RFC3339Nano)
			case int32:
				v = int64(x)
			case *big.Rat:
				v = json.Number(x.RatString())
			}
			vals = append(vals, v)
		}
		out = append(out, canonicalRow(vals))
	}
	return out
}

// graphTables lists the tables a graph reads, each once.
func graphTables(g *dsl.Graph) []dsl.TableName {
	names := []dsl.TableName{g.Profile.Table}
	for _, e := range g.Entities {
		names = append(names, e.Table)
	}
	for _, r := range g.Relationships {
		if r.Through != nil {
			names = append(names, r.Through.Table)
		}
	}
	if g.Memberships != nil {
		names = append(names, g.Memberships.Table)
	}
	if g.Events != nil {
		names = append(names, g.Events.Table)
	}
	seen := map[string]bool{}
	var out []dsl.TableName
	for _, n := range names {
		if !seen[strings.ToLower(n.String())] {
			seen[strings.ToLower(n.String())] = true
			out = append(out, n)
		}
	}
	return out
}
