package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"

	"github.com/linkaud/linkaud/internal/demo"
)

func init() {
	register("demo", "Build an embedded DuckDB bank + household data set, run the seed's three use cases through two cycles, print members and events; no service needed.", &demoCmd{})
}

type demoCmd struct {
	Dir       string `help:"Directory of the demo workspace (replaced if an earlier demo made it)." default:"linkaud-demo"`
	Warehouse string `help:"Where the data set goes: duckdb (bank.duckdb in the directory, the default) or postgres (schemas analytics, bank and home of the database in --dsn-env)." enum:"duckdb,postgres" default:"duckdb"`
	DSNEnv    string `help:"With --warehouse postgres: the environment variable holding the DSN." default:"PG_DSN" placeholder:"NAME"`
}

func (c *demoCmd) Run(g *Globals) error {
	// The story goes to stdout; logs only from warnings up unless asked
	// for more, so they do not drown it.
	log := g.Logger()
	if g.LogLevel == "info" {
		log = slog.New(levelFloor{log.Handler(), slog.LevelWarn})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := demo.Options{Dir: c.Dir, Logger: log, DSNEnv: c.DSNEnv}
	if c.Warehouse == "postgres" {
		if opts.PostgresDSN = os.Getenv(c.DSNEnv); opts.PostgresDSN == "" {
			return userError(errors.New("demo: --warehouse postgres reads the DSN from " + c.DSNEnv + ", which is not set"))
		}
	}
	err := demo.Run(ctx, opts)
	switch {
	case errors.Is(err, demo.ErrDirInUse):
		return userError(err)
	case err != nil:
		return infraError(err)
	}
	return nil
}

// levelFloor drops records below min.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}
