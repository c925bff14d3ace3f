package diff_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

func quietStore(t *testing.T, o diff.Options) *diff.Store {
	t.Helper()
	if o.FS == nil {
		o.FS = vfs.NewMem()
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := diff.Open("state", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestNoChangeCycleWrites: an unchanged audience of 20k rows costs a
// bounded amount of bookkeeping, nothing proportional to its size.
func TestNoChangeCycleWrites(t *testing.T) {
	s := quietStore(t, diff.Options{})
	sc := newCrashScenario()
	if err := s.Enable("cards"); err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	for p := range 10_000 {
		id := fmt.Sprintf("u%05d", p)
		rows = append(rows, []any{id, "a" + id, "c1" + id, "Outstanding", id + "@example.com"},
			[]any{id, "a" + id, "c2" + id, "Outstanding", id + "@example.com"})
	}
	first, err := sc.cycle(t, s, rows, sc.start1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := sc.cycle(t, s, rows, sc.start2)
	if err != nil {
		t.Fatal(err)
	}
	if again.Events != 0 || again.Added+again.Removed+again.Changed+again.Entered+again.Exited != 0 {
		t.Fatalf("no-change cycle changed something: %+v", again.Counts)
	}
	// The first cycle wrote every row (> 1 MB); the second may write the
	// audience state, the run record and the in-progress marker only.
	if first.BytesWritten < 1<<20 || again.BytesWritten > 4<<10 {
		t.Fatalf("bytes written: first cycle %d, no-change cycle %d", first.BytesWritten, again.BytesWritten)
	}
	t.Logf("20k rows: first cycle wrote %d bytes, a no-change cycle %d", first.BytesWritten, again.BytesWritten)
}

// TestCycleCanceled: a cycle whose context ends is a failed cycle.
func TestCycleCanceled(t *testing.T) {
	s := quietStore(t, diff.Options{})
	sc := newCrashScenario()
	if err := s.Enable("cards"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.cycle(t, s, sc.gen1, sc.start1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rr := buildReader(t, sc.layout, sc.types, sc.gen2, 16)
	defer rr.Release()
	_, err := s.Cycle(ctx, diff.CycleInput{Audience: sc.aud, Layout: sc.layout, Activations: sc.acts, Rows: rr, Start: sc.start2})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	st, err := s.State("cards")
	if err != nil || st.Status != diff.Failed || st.Generation != 1 {
		t.Fatalf("state %+v, %v: want Failed at generation 1", st, err)
	}
}

func TestCycleInputChecks(t *testing.T) {
	s := quietStore(t, diff.Options{})
	aud := &dsl.Audience{Name: "a", Version: "v1"}
	rr := buildReader(t, diff.Layout{}, []arrow.DataType{}, nil, 1)
	defer rr.Release()
	start := time.Unix(1, 0)
	for _, c := range []struct {
		name string
		in   diff.CycleInput
		want string
	}{
		{"no audience", diff.CycleInput{Rows: rr, Start: start}, "needs an audience"},
		{"no rows", diff.CycleInput{Audience: aud, Start: start}, "needs rows"},
		{"no start", diff.CycleInput{Audience: aud, Rows: rr}, "start time"},
		{"disabled", diff.CycleInput{Audience: aud, Rows: rr, Start: start}, "disabled"},
	} {
		if _, err := s.Cycle(context.Background(), c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// A misconfigured activation fails the cycle (recorded), not the
	// process.
	if err := s.Enable("a"); err != nil {
		t.Fatal(err)
	}
	bad := []*dsl.Activation{{Name: "x", Audience: aud, Destination: &dsl.Destination{Name: "d"}, Event: dsl.EntityAdded, EntityStep: 3}}
	_, err := s.Cycle(context.Background(), diff.CycleInput{Audience: aud, Rows: rr, Start: start, Activations: bad})
	if err == nil || !strings.Contains(err.Error(), "step 3 of a 0-step path") {
		t.Fatalf("err = %v", err)
	}
	if st, _ := s.State("a"); st.Status != diff.Failed {
		t.Fatalf("status %s, want Failed", st.Status)
	}
}

func TestOptions(t *testing.T) {
	var o diff.Options
	o.EnsureDefaults()
	if o.MaxEventBytes != diff.DefaultMaxEventBytes || o.HistoryRuns != 50 || o.FS == nil || o.Logger == nil || o.Now == nil {
		t.Fatalf("defaults: %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := diff.Options{MaxEventBytes: -5, FinalBatchBytes: -1, HistoryRuns: -1, MemTableBytes: 1000}
	err := bad.Validate()
	for _, want := range []string{"MaxEventBytes", "FinalBatchBytes", "HistoryRuns", "MemTableBytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v: want it to report %s", err, want)
		}
	}
	if _, err := diff.Open("x", diff.Options{FS: vfs.NewMem(), MaxEventBytes: -5}); err == nil {
		t.Error("Open accepted invalid options")
	}
	if o := (diff.Options{MaxEventBytes: diff.NoCap}); o.Validate() != nil {
		t.Error("NoCap rejected")
	}
}
