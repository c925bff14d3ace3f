package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

// MemoryPlan divides one memory budget between the parts of a process that
// hold memory: the embedded DuckDB's buffer pool (joins, aggregates and
// the ORDER BY of each plan, spilled to disk beyond it), Pebble's block
// cache and memtables, and the Go heap of the pipeline (Arrow batches two
// ahead of the merge, the final batch of row changes, delivery buffers).
//
// The shares, for a budget B:
//
//	fixed        96 MB                 the binary, DuckDB's allocations outside its pool, stacks
//	Pebble cache B/32, 4 MB … 64 MB
//	memtables    2 × B/64, 4 MB … 32 MB each (Pebble keeps up to two)
//	Go heap      B/8, 40 MB … 512 MB    a soft limit (runtime/debug.SetMemoryLimit)
//	DuckDB       the rest               memory_limit; threads = B/512 MB, 1 … the CPUs
//
// DuckDB's memory_limit bounds its buffer pool, not every allocation, so
// the fixed share is an estimate measured on the 10M-profile benchmark
// (BENCHMARKS.md), not a guarantee.
type MemoryPlan struct {
	// Budget is the whole; Explicit says it came from memory_limit or
	// --memory-limit rather than from DefaultMemoryBudget.
	Budget   int64
	Explicit bool

	DuckDB         int64
	DuckDBThreads  int
	PebbleCache    int64
	PebbleMemTable int64
	GoHeap         int64
	// FinalBatchBytes bounds the row changes a cycle holds in memory
	// (diff.Options.FinalBatchBytes).
	FinalBatchBytes int
}

// memoryFixed is the share of a budget nothing configurable bounds.
const memoryFixed = 96 << 20

// PlanMemory divides budget (bytes) for a machine with cpus CPUs.
func PlanMemory(budget int64, cpus int) MemoryPlan {
	clamp := func(v, lo, hi int64) int64 { return max(lo, min(hi, v)) }
	p := MemoryPlan{Budget: budget}
	p.PebbleCache = clamp(budget/32, 4<<20, 64<<20)
	p.PebbleMemTable = clamp(budget/64, 4<<20, 32<<20)
	p.GoHeap = clamp(budget/8, 40<<20, 512<<20)
	p.FinalBatchBytes = int(clamp(budget/64, 2<<20, diff.DefaultFinalBatchBytes))
	p.DuckDB = max(budget-memoryFixed-p.PebbleCache-2*p.PebbleMemTable-p.GoHeap, 32<<20)
	p.DuckDBThreads = int(clamp(budget/(512<<20), 1, int64(max(cpus, 1))))
	return p
}

// DefaultMemoryBudget is the budget without memory_limit: a quarter of the
// memory the process may use (the cgroup's limit when lower than the
// machine's), at least 512 MB and at most 4 GB — sized for a small
// machine shared with other work, where DuckDB alone would take 80% of RAM.
func DefaultMemoryBudget() int64 {
	total := physicalMemory()
	if lim := cgroupMemoryLimit(); lim > 0 && (total == 0 || lim < total) {
		total = lim
	}
	if total == 0 {
		return 1 << 30
	}
	return max(512<<20, min(4<<30, total/4))
}

// MemoryPlanFor is the plan for a workspace: limit (--memory-limit) if set,
// else the state block's memory_limit, else DefaultMemoryBudget.
func MemoryPlanFor(ws *dsl.Workspace, limit int64) MemoryPlan {
	explicit := true
	switch {
	case limit > 0:
	case ws.MemoryLimit > 0:
		limit = ws.MemoryLimit
	default:
		limit, explicit = DefaultMemoryBudget(), false
	}
	p := PlanMemory(limit, runtime.NumCPU())
	p.Explicit = explicit
	return p
}

// apply fills the options the plan decides and the caller left unset.
func (p MemoryPlan) apply(opts *Options, ws *dsl.Workspace) {
	if opts.Store.CacheBytes == 0 {
		opts.Store.CacheBytes = p.PebbleCache
	}
	if opts.Store.MemTableBytes == 0 {
		opts.Store.MemTableBytes = uint64(p.PebbleMemTable)
	}
	if opts.Store.FinalBatchBytes == 0 {
		opts.Store.FinalBatchBytes = p.FinalBatchBytes
	}
	if ws.Warehouse == nil || ws.Warehouse.Type != "duckdb" {
		return
	}
	l, d := &opts.Warehouse.DuckDB, p.DuckDBLimits(ws.StateDir)
	if l.MemoryLimit == 0 {
		l.MemoryLimit = d.MemoryLimit
	}
	if l.Threads == 0 {
		l.Threads = d.Threads
	}
	if l.TempDir == "" {
		l.TempDir = d.TempDir
	}
	l.NoInsertionOrder = l.NoInsertionOrder || d.NoInsertionOrder
	l.FlushAllocator = l.FlushAllocator || d.FlushAllocator
}

// DuckDBLimits are the plan's settings for an embedded DuckDB whose spill
// directory goes in stateDir.
func (p MemoryPlan) DuckDBLimits(stateDir string) executor.DuckDBLimits {
	return executor.DuckDBLimits{
		MemoryLimit:      p.DuckDB,
		Threads:          p.DuckDBThreads,
		TempDir:          filepath.Join(stateDir, "duckdb-spill"),
		NoInsertionOrder: p.Explicit,
		FlushAllocator:   p.flushesDuckDB(),
	}
}

// flushAllocatorBelow is the default budget under which DuckDB hands back
// what it frees even though nobody set a budget.
const flushAllocatorBelow = 2 << 30

// flushesDuckDB says whether DuckDB's allocator returns what it frees after
// every task. Without it DuckDB keeps what it freed, and the process holds
// about twice DuckDB's share: an explicit budget has to, and so does a
// small default one. A large default budget has room for it, and the
// flush costs 15–30% of DuckDB's query time (BENCHMARKS.md, 10M
// profiles: memory).
func (p MemoryPlan) flushesDuckDB() bool {
	return p.Explicit || p.Budget < flushAllocatorBelow
}

// ApplyGoLimit gives the Go runtime its share as a soft limit
// (runtime/debug.SetMemoryLimit), unless GOMEMLIMIT already sets one. It is
// process-wide: the commands that run an engine call it, not Open.
func (p MemoryPlan) ApplyGoLimit() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(p.GoHeap)
	}
}

// String is the plan as `linkaud run --verbose` logs it.
func (p MemoryPlan) String() string {
	src := "default"
	if p.Explicit {
		src = "memory_limit"
	}
	return fmt.Sprintf("%s (%s): duckdb %s × %d threads, pebble cache %s + memtables 2 × %s, go heap %s",
		dsl.FormatBytes(p.Budget), src, dsl.FormatBytes(p.DuckDB), p.DuckDBThreads,
		dsl.FormatBytes(p.PebbleCache), dsl.FormatBytes(p.PebbleMemTable), dsl.FormatBytes(p.GoHeap))
}

// memoryError turns a warehouse's out-of-memory failure into a reason a
// person can act on.
func (p MemoryPlan) memoryError(err error) error {
	if err == nil || !errors.Is(err, executor.ErrOutOfMemory) {
		return err
	}
	return &OutOfMemoryError{Budget: p.Budget, Explicit: p.Explicit, Err: err}
}

// OutOfMemoryError is a cycle that ran out of memory under the budget.
type OutOfMemoryError struct {
	Budget   int64
	Explicit bool
	Err      error
}

func (e *OutOfMemoryError) Error() string {
	// The warehouse's first line says what did not fit; DuckDB's advice
	// after it (SET temp_directory, threads, …) names settings the budget
	// makes, so it would mislead.
	what, _, _ := strings.Cut(e.Err.Error(), "\n")
	if e.Explicit {
		return fmt.Sprintf("out of memory under memory_limit %s: raise it (%s)", dsl.FormatBytes(e.Budget), what)
	}
	return fmt.Sprintf("out of memory under the default memory budget %s: set memory_limit in the state block higher (%s)", dsl.FormatBytes(e.Budget), what)
}

func (e *OutOfMemoryError) Unwrap() error { return e.Err }

func physicalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupMemoryLimit reads a cgroup v2 (memory.max) or v1 limit; 0 when
// there is none.
func cgroupMemoryLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && n > 0 && n < 1<<50 {
			return n
		}
	}
	return 0
}
