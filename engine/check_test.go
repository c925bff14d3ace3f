package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
)

// TestCheckColumnsAtOpenAndReload: with CheckColumns, an audience whose
// columns do not fit the warehouse fails its cycles with check
// --warehouse's positioned diagnostics, never the warehouse's message, and
// the others run; it runs once the warehouse has what it reads; a reload
// that does not fit is refused and the old definitions stay.
func TestCheckColumnsAtOpenAndReload(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	dir := t.TempDir()
	src := testWorkspace + `audience paid { match profile -> account -> credit_card where balance is true }
`
	writeFiles(t, dir, map[string]string{
		"ws.la":        src,
		"profiles.csv": "segment_id,email\nu1,a@x\n",
		"accounts.csv": "id,email\na1,a@x\n",
		"cards.csv":    "id,account_id,balance\nc1,a1,Outstanding\n",
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e, err := Open(ctx, ws, Options{CheckColumns: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer e.Close()
	for _, name := range []string{"outstanding", "paid"} {
		if err := e.Store().Enable(name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Compute(ctx, ws.Audience("outstanding")); err != nil {
		t.Fatalf("the audience that fits: %v", err)
	}
	_, err = e.Compute(ctx, ws.Audience("paid"))
	const want = "ws.la:23:63: credit_card.balance is true needs a boolean column; credit_card.balance is text (VARCHAR)\n" +
		"    audience paid { match profile -> account -> credit_card where balance is true }\n" +
		"                                                                  ^^^^^^^^^^^^^^^"
	if !IsUserError(err) || !strings.HasPrefix(err.Error(), "audience paid: the warehouse does not have what audience paid reads (check --warehouse says the same):\n") || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("the audience that does not fit: %v", err)
	}
	if st, _ := e.Store().State("paid"); st.Status != diff.Failed || st.Error != strings.TrimPrefix(err.Error(), "audience paid: ") {
		t.Fatalf("its state: %+v", st)
	}

	// The warehouse changes: balance becomes a boolean; the next cycle
	// runs.
	writeFiles(t, dir, map[string]string{"cards.csv": "id,account_id,balance\nc1,a1,true\n"})
	if res, err := e.Compute(ctx, ws.Audience("paid")); err != nil || res.Members != 1 {
		t.Fatalf("once the warehouse fits: %+v %v", res, err)
	}

	// A reload with a misspelt column is refused; the old definitions stay.
	writeFiles(t, dir, map[string]string{"ws.la": strings.Replace(src, "where balance is true", "where balanse is true", 1)})
	bad, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var cc *ColumnCheckError
	err = e.Reload(ctx, bad)
	if !errors.As(err, &cc) || !IsUserError(err) || !strings.Contains(err.Error(), `ws.la:23:63: table BANK.CREDIT_CARDS has no column "balanse" (column of credit_card); did you mean balance?`) {
		t.Fatalf("reload with a misspelt column: %v", err)
	}
	if e.Workspace() != ws {
		t.Fatal("a refused reload replaced the workspace")
	}
}

// TestWorkerReloadRejectsUnfit: the worker's reload of a workspace that does
// not fit the warehouse is rejected like one with check errors.
func TestWorkerReloadRejectsUnfit(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ws.la":        testWorkspace,
		"profiles.csv": "segment_id,email\nu1,a@x\n",
		"accounts.csv": "id,email\na1,a@x\n",
		"cards.csv":    "id,account_id,balance\nc1,a1,Outstanding\n",
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rec := newRecorder()
	e, err := Open(context.Background(), ws, Options{CheckColumns: true, Hooks: []sinks.Hook{rec}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	w, err := NewWorker(e, WorkerOptions{Now: func() time.Time { return now }, Load: func() (*dsl.Workspace, dsl.Diagnostics) {
		return dsl.Load(dir, dsl.Options{})
	}})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"ws.la": strings.Replace(testWorkspace, `where balance = "Outstanding"`, `where balance > 3`, 1)})
	w.reloadFromDisk(context.Background(), "test")
	if _, _, reloads := rec.snapshot(); len(reloads) != 1 || reloads[0] {
		t.Fatalf("reloads %v", reloads)
	}
	if e.Workspace() != ws {
		t.Fatal("a rejected reload replaced the workspace")
	}
}
