package planner_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/linkaud/linkaud/planner"
)

// goldenNow is the cycle start of the golden SQL.
var goldenNow = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// TestGoldenSQL prints the SQL of audiences over testdata/sql/graph.la in
// every dialect. `plan [dialect=NAME] [limit=N]` plans the last audience of
// its input; the output is the SQL per dialect, or the planning error.
// Regenerate with -rewrite and read the diff.
func TestGoldenSQL(t *testing.T) {
	dir := filepath.Join("..", "testdata", "sql")
	graph, err := os.ReadFile(filepath.Join(dir, "graph.la"))
	if err != nil {
		t.Fatal(err)
	}
	datadriven.Walk(t, dir, func(t *testing.T, path string) {
		if strings.HasSuffix(path, ".la") {
			return
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "plan" {
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			dialects := planner.Dialects
			opts := planner.Options{Now: goldenNow}
			for _, a := range d.CmdArgs {
				switch a.Key {
				case "dialect":
					dl, err := planner.DialectFor(a.Vals[0])
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					dialects = []planner.Dialect{dl}
				case "limit":
					opts.Limit, _ = strconv.Atoi(a.Vals[0])
				}
			}
			ws, err := checkSources(map[string]string{"graph.la": string(graph), "audiences.la": d.Input})
			if err != nil {
				return err.Error()
			}
			a := ws.Audiences[len(ws.Audiences)-1]
			var b strings.Builder
			for _, dl := range dialects {
				p, err := planner.Compile(a, ws.Graph, dl, opts)
				if err != nil {
					b.WriteString("-- " + dl.Name() + ": " + err.Error() + "\n")
					continue
				}
				b.WriteString("-- " + dl.Name() + "\n" + p.SQL + "\n")
			}
			return b.String()
		})
	})
}
