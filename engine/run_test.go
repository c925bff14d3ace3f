package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
)

func TestRunOnce(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e, _, dir := openTestEngine(t, &now)

	// Nothing enabled: no cycle, the destinations are still delivered.
	rep, err := e.RunOnce(ctx, RunOptions{})
	if err != nil || len(rep.Audiences) != 0 || len(rep.Destinations) != 1 || rep.Err() != nil {
		t.Fatalf("nothing enabled: %+v, %v", rep, err)
	}
	var disabled *AudienceDisabledError
	if _, err := e.RunOnce(ctx, RunOptions{Audiences: []string{"outstanding"}}); !errors.As(err, &disabled) || !errors.Is(err, diff.ErrDisabled) {
		t.Fatalf("a disabled audience by name: %v", err)
	}
	var unknown *UnknownAudienceError
	if _, err := e.RunOnce(ctx, RunOptions{Audiences: []string{"outstandin"}}); !errors.As(err, &unknown) || unknown.Suggestion != "outstanding" || !errors.Is(err, ErrUnknownAudience) {
		t.Fatalf("a misspelt audience: %v", err)
	}

	rep, err = e.RunOnce(ctx, RunOptions{Audiences: []string{"outstanding"}, Enable: true})
	if err != nil || rep.Err() != nil {
		t.Fatal(err, rep.Err())
	}
	a := rep.Audiences[0]
	if a.Result.Entered != 2 || a.Result.Events != 4 || a.Delivered != 4 || rep.Destinations[0].Delivered != 4 || rep.Destinations[0].Backlog != 0 {
		t.Fatalf("first run: %+v %+v %+v", a, a.Result.Counts, rep.Destinations[0])
	}
	runs, err := e.Store().Runs("outstanding")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Delivered != 4 || runs[0].Delivery <= 0 {
		t.Fatalf("the run history lacks the delivery: %+v", runs)
	}

	// A failed cycle is in the report, not an error of RunOnce; delivery
	// still runs.
	writeFiles(t, dir, map[string]string{"cards.csv": "id,account_id\nc1,a1\n"})
	now = now.Add(time.Hour)
	rep, err = e.RunOnce(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Audiences[0].Err == nil || rep.Audiences[0].Result != nil || !strings.Contains(rep.Err().Error(), "audience outstanding: cycle failed") {
		t.Fatalf("a failing cycle: %+v, %v", rep.Audiences[0], rep.Err())
	}
	var b strings.Builder
	if err := rep.WriteSummary(&b, SummaryOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "outstanding: FAILED; nothing changed") || !strings.Contains(b.String(), "audit (file): 0 delivered\n") {
		t.Fatalf("summary:\n%s", b.String())
	}

	// Deliver only: no cycle.
	rep, err = e.RunOnce(ctx, RunOptions{DeliverOnly: true})
	if err != nil || len(rep.Audiences) != 0 {
		t.Fatalf("deliver only: %+v %v", rep, err)
	}
	if got := len(events(t, filepath.Join(dir, "events.jsonl"))); got != 4 {
		t.Fatalf("%d events in the file", got)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0.00ms"},
		{420 * time.Microsecond, "0.42ms"},
		{12300 * time.Microsecond, "12.3ms"},
		{1234 * time.Millisecond, "1.23s"},
		{123400 * time.Millisecond, "123.4s"},
	} {
		if got := FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
