package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// withEnabled is testWorkspace with `enabled VALUE` in audience
// outstanding ("" leaves it out).
func withEnabled(value string) string {
	if value == "" {
		return testWorkspace
	}
	return strings.Replace(testWorkspace, "  enrich credit_card.balance, trait.email\n", "  enrich credit_card.balance, trait.email\n  enabled "+value+"\n", 1)
}

func reloadWith(t *testing.T, e *Engine, dir, src string) *dsl.Workspace {
	t.Helper()
	writeFiles(t, dir, map[string]string{"ws.la": src})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := e.Reload(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestDeclaredLifecycle: `enabled` in the file decides, over the state and
// the commands; without it the state decides, as before.
func TestDeclaredLifecycle(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ws.la":        withEnabled("true"),
		"profiles.csv": "segment_id,email\nu1,a@x\n",
		"accounts.csv": "id,email\na1,a@x\n",
		"cards.csv":    "id,account_id,balance\nc1,a1,Outstanding\n",
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// Before anything wrote the state, a read-only view shows the file's
	// decision.
	if st, err := StatusOf(ws, nil, "outstanding"); err != nil || !st.Enabled || st.Status != diff.Computing {
		t.Fatalf("status before the state exists: %+v %v", st, err)
	}
	e, err := Open(ctx, ws, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if st, _ := e.Store().State("outstanding"); !st.Enabled {
		t.Fatalf("enabled true in the file, the state after Open: %+v", st)
	}
	_, err = SetEnabled(ws, e.Store(), "outstanding", false)
	if !errors.Is(err, ErrDeclared) || err.Error() != "cannot disable audience outstanding: its file decides (ws.la:18:3: enabled true); edit the file to change it" {
		t.Fatalf("disable of an audience whose file says enabled true: %v", err)
	}
	rep, err := e.RunOnce(ctx, RunOptions{})
	if err != nil || len(rep.Audiences) != 1 || rep.Err() != nil {
		t.Fatalf("run of the file-enabled audience: %+v %v", rep, err)
	}

	// enabled false: the reload disables it; run by name is refused, even
	// with Enable.
	ws = reloadWith(t, e, dir, withEnabled("false"))
	if st, _ := e.Store().State("outstanding"); st.Enabled || st.Status != diff.Disabled || st.Members != 1 {
		t.Fatalf("after a reload with enabled false: %+v", st)
	}
	var disabled *AudienceDisabledError
	_, err = e.RunOnce(ctx, RunOptions{Audiences: []string{"outstanding"}, Enable: true})
	if !errors.As(err, &disabled) || err.Error() != "audience outstanding is disabled by its file (ws.la:18:3: enabled false)" {
		t.Fatalf("run --enable of a file-disabled audience: %v", err)
	}
	if _, err := SetEnabled(ws, e.Store(), "outstanding", true); !errors.Is(err, ErrDeclared) {
		t.Fatalf("enable of an audience whose file says enabled false: %v", err)
	}

	// No enabled: the state keeps what the file last said, and the
	// commands decide again.
	ws = reloadWith(t, e, dir, withEnabled(""))
	if st, _ := e.Store().State("outstanding"); st.Enabled {
		t.Fatalf("enabled removed from the file: %+v", st)
	}
	if st, err := SetEnabled(ws, e.Store(), "outstanding", true); err != nil || st.Status != diff.Live {
		t.Fatalf("enable without enabled in the file: %+v %v", st, err)
	}
}

// TestWorkerDeclaredLifecycle: a reload that says enabled false stops the
// worker's runs of the audience and its API refuses to enable it.
func TestWorkerDeclaredLifecycle(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	e, _, dir := openTestEngine(t, &now)
	w, err := NewWorker(e, WorkerOptions{Now: func() time.Time { return now }, Load: func() (*dsl.Workspace, dsl.Diagnostics) {
		return dsl.Load(dir, dsl.Options{})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Enable("outstanding"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ws.la"), []byte(withEnabled("false")), 0o644); err != nil {
		t.Fatal(err)
	}
	w.reloadFromDisk(context.Background(), "test")
	w.mu.Lock()
	s := w.auds["outstanding"]
	on, queued := s.enabled, s.queued
	w.mu.Unlock()
	if on || queued {
		t.Fatalf("after a reload with enabled false: enabled %v, queued %v", on, queued)
	}
	if st, _ := e.Store().State("outstanding"); st.Enabled {
		t.Fatalf("state after the reload: %+v", st)
	}
	if err := w.Enable("outstanding"); !errors.Is(err, ErrDeclared) {
		t.Fatalf("worker enable of a file-disabled audience: %v", err)
	}
}
