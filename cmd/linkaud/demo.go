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
	Dir string `help:"Directory of the demo workspace (replaced if an earlier demo made it)." default:"linkaud-demo"`
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
	err := demo.Run(ctx, demo.Options{Dir: c.Dir, Logger: log})
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
