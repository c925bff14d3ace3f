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
	register("bench", "Measure the pipeline on generated data: bare query, full cycle, no-change and mutation cycles, the EXCEPT baseline, Kafka delivery, peak RSS.", &benchCmd{})
}

type benchCmd struct {
	Profiles    int               `help:"Number of profiles of the generated data set." required:""`
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
}

func (c *benchCmd) Run(g *Globals) error {
	if c.Profiles <= 0 {
		return userError(fmt.Errorf("bench: --profiles must be positive"))
	}
	if c.Dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return userError(fmt.Errorf("bench: no user cache directory (%v): pass --dir", err))
		}
		c.Dir = filepath.Join(cache, "linkaud", "bench")
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
	})
	if err != nil {
		if strings.Contains(err.Error(), "no audience") {
			return userError(err)
		}
		return infraError(err)
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return bench.WriteTable(os.Stdout, res)
}
