package why_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/why"
)

// bank is the reference pages' example workspace (CSV files on an
// in-memory DuckDB); each test case adds its audiences to it.
const bank = "../../docs/examples/bank"

var now = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// TestWhy prints why's text and JSON for chosen profiles: the golden
// outputs of testdata/why (regenerate with -rewrite, and read the diff).
//
//	why audience=A profile=KEY [format=json] [max-rows=N]
//	<audience blocks>
func TestWhy(t *testing.T) {
	datadriven.RunTest(t, "testdata/why", func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "why" {
			t.Fatalf("unknown command %q", d.Cmd)
		}
		var aud, profile, format string
		maxRows := 10
		d.ScanArgs(t, "audience", &aud)
		d.ScanArgs(t, "profile", &profile)
		d.MaybeScanArgs(t, "format", &format)
		d.MaybeScanArgs(t, "max-rows", &maxRows)
		ws := workspace(t, d.Input)
		res := explain(t, ws, aud, profile, maxRows)
		var b strings.Builder
		if format == "json" {
			out, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			if _, ok := m["member"].(bool); !ok {
				t.Fatalf("no top-level boolean member: %s", out)
			}
			b.Write(out)
			b.WriteByte('\n')
		} else if err := res.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	})
}

// workspace copies the bank workspace into a temporary directory with
// audiences.la holding src.
func workspace(t testing.TB, src string) *dsl.Workspace {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(bank)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "audiences.la"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatalf("%v", diags)
	}
	return ws
}

func explain(t testing.TB, ws *dsl.Workspace, aud, profile string, maxRows int) *why.Result {
	ctx := context.Background()
	wh, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	a := ws.Audience(aud)
	if a == nil {
		t.Fatalf("no audience %s", aud)
	}
	w, err := planner.CompileWhy(a, ws.Graph, planner.DuckDB, profile, planner.Options{Now: now, Limit: maxRows})
	if err != nil {
		t.Fatal(err)
	}
	res, err := why.Run(ctx, wh, w)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
