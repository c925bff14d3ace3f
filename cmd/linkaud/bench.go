package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/linkaud/linkaud/internal/bench"
)

func init() {
	register("bench", "Measure the pipeline on generated data: bare query, full cycle, no-change and mutation cycles, the EXCEPT baseline, Kafka delivery, peak RSS; with --audiences N, the worker's scheduler over N audiences.", &benchCmd{})
}

type benchCmd struct {
	Profiles    int               `help:"Number of profiles of the generated data set (required, except with --audiences: 100000)."`
	Dir         string            `help:"Where the generated data (reused across runs of the same size and seed) and the run's workspace go (default: the user cache directory, linkaud/bench)." type:"path"`
	Seed        int64             `help:"Seed of the generated data." default:"1"`
	Repeat      int               `help:"Timed passes of the query floor and of the mutation hours; figures are medians." default:"1"`
	Mutate      float64           `help:"Percentage of rows each mutation hour rewrites." default:"1"`
	Audience    []string          `help:"Audience to measure (repeatable; default the seed's three use cases)." short:"a"`
	Skip        []string          `help:"Phases to leave out: query, except, mutate, kafka." enum:"query,except,mutate,kafka"`
	DuckDB      map[string]string `help:"DuckDB setting for every embedded instance, e.g. --duckdb memory_limit=1GB." name:"duckdb"`
	MemoryLimit byteSize          `help:"Memory budget, as linkaud run --memory-limit (default: a quarter of RAM, 512MB to 4GB)." placeholder:"SIZE"`
	JSON        bool              `help:"Print one JSON object instead of the table."`
	Profile     string            `help:"Write a CPU profile of the measured phases (after generation) to this file, for go tool pprof." type:"path"`

	Warehouse string `help:"Where the audiences run: duckdb (embedded, over the generated files) or postgres (the data set loaded into the database of --dsn-env, its tables analytics.*, bank.*, home.* replaced; the EXCEPT baseline is DuckDB's only)." enum:"duckdb,postgres" default:"duckdb"`
	DSNEnv    string `help:"With --warehouse postgres: the environment variable holding the DSN of the database to load and query." default:"PG_DSN" placeholder:"NAME"`
	NoIndexes bool   `help:"With --warehouse postgres: no indexes on the key and join columns."`

	Audiences     int `help:"Instead of the phases: the worker's scheduler runs N generated audiences (linkaud gen --audiences N), each every 15 minutes, until each ran once, then a steady round of no-change cycles; reports cycles per minute, scheduler overhead, peak RSS, state and /metrics size, and whether every audience met its schedule." placeholder:"N"`
	MaxConcurrent int `help:"With --audiences: most cycles at once, as linkaud worker --max-concurrent." default:"5"`
	Rounds        int `help:"With --audiences: 1 (first cycles only) or 2 (then the steady round)." default:"2"`
}

func (c *benchCmd) Run(g *Globals) error {
	if c.Audiences != 0 {
		return c.runSchedule(g)
	}
	if c.Profiles <= 0 {
		return userError(fmt.Errorf("bench: --profiles N is required and must be positive (or --audiences N, which measures the scheduler on 100000 profiles)"))
	}
	if err := c.defaultDir(); err != nil {
		return err
	}
	var dsn string
	if c.Warehouse == "postgres" {
		if dsn = os.Getenv(c.DSNEnv); dsn == "" {
			return userError(fmt.Errorf("bench: --warehouse postgres reads the DSN from %s, which is not set", c.DSNEnv))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := bench.Run(ctx, bench.Options{
		Warehouse:   c.Warehouse,
		PostgresDSN: dsn,
		NoIndexes:   c.NoIndexes,
		Profiles:    c.Profiles,
		Dir:         c.Dir,
		Seed:        c.Seed,
		Repeat:      c.Repeat,
		Mutate:      c.Mutate,
		Audiences:   c.Audience,
		DuckDB:      c.DuckDB,
		MemoryLimit: int64(c.MemoryLimit),
		Skip:        c.Skip,
		Logger:      g.Logger(),
		Profile:     c.Profile,
		// The broker keeps every record in memory: not in the measured
		// process.
		BrokerCommand: brokerCommand(),
	})
	if err != nil {
		if strings.Contains(err.Error(), "no audience") {
			return userError(err)
		}
		return infraError(err)
	}
	return c.print(res, func() error { return bench.WriteTable(os.Stdout, res) })
}

// brokerCommand runs `linkaud devbroker` from this binary; nil (the broker
// in process) when the binary cannot be found.
func brokerCommand() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, "devbroker"}
}

// defaultDir puts the generated data in the user cache directory.
func (c *benchCmd) defaultDir() error {
	if c.Dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return userError(fmt.Errorf("bench: no user cache directory (%v): pass --dir", err))
		}
		c.Dir = filepath.Join(cache, "linkaud", "bench")
	}
	return nil
}

// runSchedule is bench --audiences N.
func (c *benchCmd) runSchedule(g *Globals) error {
	switch {
	case c.Audiences < 0:
		return userError(fmt.Errorf("bench: --audiences must be positive"))
	case c.Profiles < 0:
		return userError(fmt.Errorf("bench: --profiles must be positive"))
	case c.MaxConcurrent < 1:
		return userError(fmt.Errorf("bench: --max-concurrent must be at least 1"))
	case c.Rounds != 1 && c.Rounds != 2:
		return userError(fmt.Errorf("bench: --rounds must be 1 or 2"))
	case len(c.Audience) > 0 || len(c.Skip) > 0 || c.Warehouse != "duckdb" || c.Repeat != 1:
		return userError(fmt.Errorf("bench: --audiences runs the generated audiences on the embedded DuckDB: --audience, --skip, --repeat and --warehouse do not apply"))
	}
	if err := c.defaultDir(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := bench.RunSchedule(ctx, bench.ScheduleOptions{
		Audiences:     c.Audiences,
		Profiles:      c.Profiles,
		Dir:           c.Dir,
		Seed:          c.Seed,
		MaxConcurrent: c.MaxConcurrent,
		Rounds:        c.Rounds,
		DuckDB:        c.DuckDB,
		MemoryLimit:   int64(c.MemoryLimit),
		Logger:        g.Logger(),
		Profile:       c.Profile,
	})
	if err != nil {
		return infraError(err)
	}
	return c.print(res, func() error { return bench.WriteScheduleTable(os.Stdout, res) })
}

// print writes res as JSON with --json, else as the table.
func (c *benchCmd) print(res any, table func() error) error {
	if !c.JSON {
		return table()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
