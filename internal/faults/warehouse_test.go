package faults

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/sinks"
)

// rowsHook calls fn with the running count of rows each time the differ
// takes a batch from the warehouse (engine.HookRowsRead).
type rowsHook struct {
	mu   sync.Mutex
	fn   func(rows int64)
	read int64 // rows read by the latest cycle when its stream ended
}

func (h *rowsHook) OnRowsRead(_ string, rows int64, done bool) {
	h.mu.Lock()
	fn := h.fn
	if done {
		h.read = rows
	}
	h.mu.Unlock()
	if !done && fn != nil {
		fn(rows)
	}
}

func (h *rowsHook) arm(fn func(rows int64)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fn = fn
}

func (h *rowsHook) lastRead() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.read
}

var _ engine.HookRowsRead = (*rowsHook)(nil)

// TestWarehouseErrorInView: the warehouse's credit card table is a view
// that validates its data and raises DuckDB's error() on a corrupt row
// near the end of the file, as a data contract in the warehouse would. The
// cycle fails with DuckDB's message as the reason; generation 1 and the
// outbox stay; the next cycle, on repaired data, emits exactly what a clean
// run emits.
func TestWarehouseErrorInView(t *testing.T) {
	f := fixture{profiles: 3000, rawCards: true, warehouse: []string{`path "wh.duckdb"`}}
	want1, want2 := cleanRun(t, f, engine.Options{})
	dir := f.write(t)
	createValidatingView(t, dir)
	hook := &rowsHook{}
	clk := &clock{}
	e := open(t, load(t, dir), clk, engine.Options{Hooks: []sinks.Hook{hook}})
	defer e.Close()
	mustCompute(t, e, clk, start1)
	if d := diffSnapshots(take(t, e.Store()), want1); d != "" {
		t.Fatalf("generation 1 through the view differs from a clean run:\n%s", d)
	}

	gen2 := f.data(2)
	corrupt := strings.Replace(gen2["cards.csv"], "c02901-1,a02901,Outstanding", "c02901-1,a02901,corrupt", 1)
	if corrupt == gen2["cards.csv"] {
		t.Fatal("the fixture has no card c02901-1 to corrupt")
	}
	writeFiles(t, dir, map[string]string{"cards.csv": corrupt})
	_, err := compute(e, clk, start2)
	if err == nil || !strings.Contains(err.Error(), "card c02901-1: corrupt balance") {
		t.Fatalf("cycle over a corrupt row: %v", err)
	}
	checkFailed(t, e.Store(), want1, "card c02901-1: corrupt balance")
	// DuckDB sorts the whole result (ORDER BY is blocking) before the
	// first batch, so an error in the data surfaces before any row
	// streams; TestWarehouseSpillLostMidStream fails after batches.
	t.Logf("the view's error surfaced after %d rows streamed", hook.lastRead())

	writeFiles(t, dir, gen2)
	mustCompute(t, e, clk, start2)
	if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
		t.Fatalf("the cycle after the failure differs from a clean run:\n%s", d)
	}
}

// createValidatingView creates the warehouse file wh.duckdb in dir: schema
// RAW holds the cards as the workspace's load defines them, and
// BANK.CREDIT_CARDS is a view over it that raises an error for a row whose
// balance reads "corrupt".
func createValidatingView(t *testing.T, dir string) {
	t.Helper()
	db, err := sql.Open("duckdb", filepath.Join(dir, "wh.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cards := strings.ReplaceAll(filepath.Join(dir, "cards.csv"), "'", "''")
	for _, stmt := range []string{
		`CREATE SCHEMA "RAW"`,
		fmt.Sprintf(`CREATE VIEW "RAW"."CARDS" AS SELECT * FROM read_csv('%s')`, cards),
		`CREATE SCHEMA "BANK"`,
		`CREATE VIEW "BANK"."CREDIT_CARDS" AS
		   SELECT id, account_id,
		          CASE WHEN balance = 'corrupt' THEN error('card ' || id || ': corrupt balance') ELSE balance END AS balance,
		          due_date
		   FROM "RAW"."CARDS"`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// TestWarehouseSpillLostMidStream makes DuckDB spill the audience's sort to
// its temp directory (a memory_limit below the result's size) and
// truncates the spill files once the first batch has reached the differ:
// DuckDB then fails with a real IO error while the result streams, after
// rows were read and merged. The cycle is Failed with DuckDB's error;
// generation 1 and the outbox are untouched; the next cycle emits exactly a
// clean run's events.
func TestWarehouseSpillLostMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("sorts 250k rows five times")
	}
	// No joins (their hash tables would not fit either): the memory goes
	// to the sort, which spills.
	f := fixture{profiles: 250_000, traitOnly: true, parquet: true, warehouse: []string{`memory_limit "20MB"`, "threads 1"}}
	// Staged: the changes read before the failure are already written to
	// Pebble, and must be discarded.
	opts := engine.Options{Store: diff.Options{FinalBatchBytes: 64 << 10}}
	want1, want2 := cleanRun(t, f, opts)
	dir := f.write(t)
	ws := load(t, dir)
	// The language has no temp_directory setting (DuckDB's default is
	// under the working directory); the test needs to know where the
	// spill files are.
	spill := t.TempDir()
	ws.Warehouse.Settings["temp_directory"] = spill
	hook := &rowsHook{}
	clk := &clock{}
	opts.Hooks = []sinks.Hook{hook}
	e := open(t, ws, clk, opts)
	defer e.Close()
	mustCompute(t, e, clk, start1)
	if d := diffSnapshots(take(t, e.Store()), want1); d != "" {
		t.Fatalf("generation 1 differs from a clean run:\n%s", d)
	}

	f.writeData(t, dir, f.data(2))
	var (
		truncated []string
		at        int64
	)
	hook.arm(func(rows int64) {
		if truncated != nil {
			return
		}
		at = rows
		truncated = truncateFiles(t, spill)
	})
	_, err := compute(e, clk, start2)
	hook.arm(nil)
	if len(truncated) == 0 {
		t.Fatal("DuckDB wrote no spill file: the sort fitted in memory_limit")
	}
	if err == nil || !strings.Contains(err.Error(), "IO Error") {
		t.Fatalf("cycle whose spill files were lost: %v", err)
	}
	read := hook.lastRead()
	if read <= at {
		t.Fatalf("the failure came before a second batch (%d rows read)", read)
	}
	checkFailed(t, e.Store(), want1, "IO Error")
	t.Logf("spill files truncated after %d rows; DuckDB failed after %d rows had streamed: %v", at, read, err)

	mustCompute(t, e, clk, start2)
	if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
		t.Fatalf("the cycle after the failure differs from a clean run:\n%s", d)
	}
}

// truncateFiles truncates every file under dir to zero bytes and returns
// their names.
func truncateFiles(t testing.TB, dir string) []string {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, d.Name())
		return os.Truncate(p, 0)
	})
	if err != nil {
		t.Error(err)
	}
	return names
}

// TestCycleCancelledMidStream cancels the cycle's context after batch k of
// the stream, for several k, with the changes held for one final batch and
// with them staged: each attempt is Failed with the cancellation, and
// leaves generation 1 and the outbox exactly as they were; the cycle that
// then runs to the end emits exactly a clean run's events.
func TestCycleCancelledMidStream(t *testing.T) {
	f := fixture{profiles: 12_000}
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%t", staged), func(t *testing.T) {
			var opts engine.Options
			if staged {
				opts.Store.FinalBatchBytes = 16 << 10
			}
			want1, want2 := cleanRun(t, f, opts)
			dir := f.write(t)
			hook := &rowsHook{}
			clk := &clock{}
			opts.Hooks = []sinks.Hook{hook}
			e := open(t, load(t, dir), clk, opts)
			defer e.Close()
			mustCompute(t, e, clk, start1)
			writeFiles(t, dir, f.data(2))
			aud := e.Workspace().Audience(audience)
			injected := 0
			for _, k := range []int{1, 2, 4} {
				ctx, cancel := context.WithCancel(context.Background())
				batches := 0
				hook.arm(func(int64) {
					if batches++; batches == k {
						cancel()
					}
				})
				clk.set(start2)
				_, err := e.Compute(ctx, aud)
				hook.arm(nil)
				cancel()
				if batches < k {
					t.Fatalf("the stream had %d batches, not %d", batches, k)
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled after batch %d: %v", k, err)
				}
				checkFailed(t, e.Store(), want1, "context canceled")
				injected++
			}
			res := mustCompute(t, e, clk, start2)
			if res.Staged != staged {
				t.Fatalf("staged = %t, want %t", res.Staged, staged)
			}
			if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
				t.Fatalf("the cycle after %d cancellations differs from a clean run:\n%s", injected, d)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			checkLeftovers(t, vfs.Default, e.Workspace().StateDir)
		})
	}
}

// TestWarehouseClosedMidStream reloads the workspace with a changed
// warehouse block while a cycle streams: the engine closes the old
// warehouse under the reader, the cycle fails with DuckDB's closed error,
// and the next cycle, on the new warehouse, emits a clean run's events.
func TestWarehouseClosedMidStream(t *testing.T) {
	f := fixture{profiles: 12_000}
	want1, want2 := cleanRun(t, f, engine.Options{})
	dir := f.write(t)
	hook := &rowsHook{}
	clk := &clock{}
	e := open(t, load(t, dir), clk, engine.Options{Hooks: []sinks.Hook{hook}})
	defer e.Close()
	mustCompute(t, e, clk, start1)

	writeFiles(t, dir, f.data(2))
	g := f
	g.warehouse = []string{"threads 1"}
	writeFiles(t, dir, map[string]string{"ws.la": g.workspaceText()})
	ws2 := load(t, dir)
	var reloadErr error
	reloaded := false
	hook.arm(func(int64) {
		if !reloaded {
			reloaded = true
			reloadErr = e.Reload(context.Background(), ws2)
		}
	})
	_, err := compute(e, clk, start2)
	hook.arm(nil)
	if reloadErr != nil {
		t.Fatal(reloadErr)
	}
	if err == nil {
		t.Fatal("the cycle survived its warehouse closing")
	}
	checkFailed(t, e.Store(), want1, "closed")
	t.Logf("cycle on a closed warehouse: %v", err)

	mustCompute(t, e, clk, start2)
	if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
		t.Fatalf("the cycle after the reload differs from a clean run:\n%s", d)
	}
}
