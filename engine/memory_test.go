package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

func TestPlanMemory(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		budget, cpus                  int64
		duck, cache, memtable, goHeap int64
		threads                       int
	}{
		// 512MB: 96 fixed + 16 cache + 2×8 memtables + 64 Go = 192; DuckDB the rest.
		{512 * mb, 2, 320 * mb, 16 * mb, 8 * mb, 64 * mb, 1},
		// The floors: 4MB cache, 4MB memtables, 40MB Go; DuckDB keeps 32MB at least.
		{128 * mb, 2, 32 * mb, 4 * mb, 4 * mb, 40 * mb, 1},
		// The ceilings: 64MB cache, 32MB memtables, 512MB Go; a thread per 512MB up to the CPUs.
		{4096 * mb, 2, (4096 - 96 - 64 - 64 - 512) * mb, 64 * mb, 32 * mb, 512 * mb, 2},
		{2048 * mb, 8, (2048 - 96 - 64 - 64 - 256) * mb, 64 * mb, 32 * mb, 256 * mb, 4},
	} {
		p := PlanMemory(tc.budget, int(tc.cpus))
		got := [...]int64{p.DuckDB, p.PebbleCache, p.PebbleMemTable, p.GoHeap, int64(p.DuckDBThreads)}
		want := [...]int64{tc.duck, tc.cache, tc.memtable, tc.goHeap, int64(tc.threads)}
		if got != want {
			t.Errorf("PlanMemory(%s, %d) = duckdb, cache, memtable, go, threads %v, want %v", dsl.FormatBytes(tc.budget), tc.cpus, got, want)
		}
		if sum := memoryFixed + p.DuckDB + p.PebbleCache + 2*p.PebbleMemTable + p.GoHeap; tc.budget >= 256*mb && sum != tc.budget {
			t.Errorf("PlanMemory(%s): the shares add up to %s", dsl.FormatBytes(tc.budget), dsl.FormatBytes(sum))
		}
	}
	if d := DefaultMemoryBudget(); d < 512*mb || d > 4096*mb {
		t.Errorf("DefaultMemoryBudget() = %s, want 512MB … 4GB", dsl.FormatBytes(d))
	}
}

func TestMemoryPlanFor(t *testing.T) {
	ws := &dsl.Workspace{MemoryLimit: 600 << 20}
	if p := MemoryPlanFor(ws, 0); p.Budget != 600<<20 || !p.Explicit {
		t.Errorf("the state block's memory_limit: %+v", p)
	}
	if p := MemoryPlanFor(ws, 300<<20); p.Budget != 300<<20 || !p.Explicit {
		t.Errorf("--memory-limit over the state block: %+v", p)
	}
	if p := MemoryPlanFor(&dsl.Workspace{}, 0); p.Budget != DefaultMemoryBudget() || p.Explicit {
		t.Errorf("no setting: %+v", p)
	}
	// DuckDB's allocator hands memory back under any explicit budget and
	// under a small default one, not under a large default one.
	for _, tc := range []struct {
		p     MemoryPlan
		flush bool
	}{
		{MemoryPlan{Budget: 8 << 30, Explicit: true}, true},
		{MemoryPlan{Budget: 512 << 20}, true},
		{MemoryPlan{Budget: 2<<30 - 1}, true},
		{MemoryPlan{Budget: 2 << 30}, false},
		{MemoryPlan{Budget: 4 << 30}, false},
	} {
		if got := tc.p.DuckDBLimits("s").FlushAllocator; got != tc.flush {
			t.Errorf("%s (explicit %t): FlushAllocator %t, want %t", dsl.FormatBytes(tc.p.Budget), tc.p.Explicit, got, tc.flush)
		}
	}
}

// TestMemoryLimitReachesDuckDB reads the settings back from the running
// DuckDB: the state block's memory_limit, divided, and a warehouse setting
// that names one of them itself keeps its value.
func TestMemoryLimitReachesDuckDB(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ws.la": `
warehouse { threads 1 }
state "state" { memory_limit "512MB" }
graph { profile { table "ANALYTICS.PROFILES" key segment_id } }
`,
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e, err := Open(context.Background(), ws, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got := map[string]string{}
	for _, name := range []string{"memory_limit", "threads", "temp_directory", "preserve_insertion_order",
		"allocator_flush_threshold", "allocator_bulk_deallocation_flush_threshold"} {
		v, err := duckSetting(e, name)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = v
	}
	want := map[string]string{
		"memory_limit":             "320.0 MiB",
		"threads":                  "1",
		"temp_directory":           filepath.Join(dir, "state", "duckdb-spill"),
		"preserve_insertion_order": "false",
		// DuckDB hands what it frees back to the system after every task.
		"allocator_flush_threshold":                   "0 bytes",
		"allocator_bulk_deallocation_flush_threshold": "0 bytes",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("DuckDB settings %v, want %v", got, want)
	}
	if p := e.Memory(); p.Budget != 512<<20 || !p.Explicit {
		t.Errorf("plan %+v", p)
	}
	if s := e.Store().Options(); s.CacheBytes != 16<<20 || s.MemTableBytes != 8<<20 {
		t.Errorf("Pebble cache %d, memtable %d", s.CacheBytes, s.MemTableBytes)
	}
}

// TestOutOfMemoryFailsTheAudience: a budget too small for an audience
// fails that audience with a reason saying what to raise; its previous
// generation and the outbox stay as they were.
func TestOutOfMemoryFailsTheAudience(t *testing.T) {
	dir := t.TempDir()
	var profiles, accounts strings.Builder
	profiles.WriteString("segment_id,email\n")
	accounts.WriteString("id,email,note\n")
	pad := strings.Repeat("x", 200)
	for i := range 300_000 {
		fmt.Fprintf(&profiles, "u%d,e%d@example.com\n", i, i)
		fmt.Fprintf(&accounts, "a%d,e%d@example.com,%s%d\n", i, i, pad, i)
	}
	writeFiles(t, dir, map[string]string{
		"profiles.csv": profiles.String(),
		"accounts.csv": accounts.String(),
		"ws.la": `
warehouse {
  load "ANALYTICS.PROFILES" from "profiles.csv"
  load "BANK.ACCOUNTS" from "accounts.csv"
  # No spilling: the sort has to fit in memory.
  temp_directory ""
}
state "state" { memory_limit "128MB" }
graph {
  profile { table "ANALYTICS.PROFILES" key segment_id }
  entity account { table "BANK.ACCOUNTS" key id }
  relationship profile -> account on profile.email = account.email
}
audience noted {
  match profile -> account where note starts with "x"
  enrich account.note
}
`,
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e, err := Open(context.Background(), ws, Options{Now: func() time.Time { return time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Store().Enable("noted"); err != nil {
		t.Fatal(err)
	}
	_, err = e.Compute(context.Background(), ws.Audience("noted"))
	if err == nil {
		t.Fatal("an audience over the memory budget computed")
	}
	const want = "out of memory under memory_limit 128MB: raise it"
	st, serr := e.Store().State("noted")
	if serr != nil {
		t.Fatal(serr)
	}
	if st.Status != diff.Failed || !strings.Contains(st.Error, want) || st.Generation != 0 {
		t.Fatalf("state %+v, want Failed with %q (cycle error: %v)", st, want, err)
	}
	// DuckDB's own advice (SET temp_directory, persistent storage) is
	// about settings linkaud makes: only its first line is kept.
	if strings.Contains(st.Error, "\n") || strings.Contains(st.Error, "SET ") {
		t.Errorf("reason %q carries DuckDB's advice", st.Error)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
}

// duckSetting reads a setting of the engine's DuckDB.
func duckSetting(e *Engine, name string) (string, error) {
	r, err := e.wh.Query(context.Background(), "SELECT current_setting('"+name+"')::VARCHAR AS v", executor.QueryOptions{})
	if err != nil {
		return "", err
	}
	defer r.Release()
	for r.Next() {
		col := r.RecordBatch().Column(0).(*array.String)
		if col.Len() > 0 {
			return strings.Clone(col.Value(0)), nil
		}
	}
	return "", fmt.Errorf("no value of %s: %v", name, r.Err())
}
