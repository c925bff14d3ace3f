package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/sinks"
)

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// The progress hook draws the rows a real cycle reads, and clears its line
// when the stream ends.
func TestRowsProgress(t *testing.T) {
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("segment_id,plan\n")
	for i := range 5000 {
		fmt.Fprintf(&csv, "u%d,gold\n", i)
	}
	for name, body := range map[string]string{
		"ws.la": `warehouse { load "APP.PROFILES" from "profiles.csv" }
state "state"
graph { profile { table "APP.PROFILES" key segment_id } }
audience gold { match trait plan = "gold" }
`,
		"profiles.csv": csv.String(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	out := &lockedWriter{}
	p := newRowsProgressTo(out)
	ctx := context.Background()
	e, err := engine.Open(ctx, ws, engine.Options{Hooks: []sinks.Hook{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Store().Enable("gold"); err != nil {
		t.Fatal(err)
	}
	res, err := e.Compute(ctx, ws.Audience("gold"))
	if err != nil {
		t.Fatal(err)
	}
	if res.RowsRead != 5000 {
		t.Fatalf("read %d rows", res.RowsRead)
	}
	got := out.String()
	if !strings.Contains(got, "gold: 2,048 rows read") || !strings.Contains(got, "rows/s") {
		t.Fatalf("progress output %q", got)
	}
	// Cleared on finish: the output ends with a carriage return over a
	// blank line.
	if !strings.HasSuffix(strings.TrimRight(got, " "), "\r") {
		t.Fatalf("progress line not cleared: %q", got)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bars) != 0 {
		t.Fatalf("bars left: %v", p.bars)
	}
}

func TestGroupDigits(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 12: "12", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45678: "-45,678"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}
