package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/linkaud/linkaud/internal/gen"
)

func init() {
	register("gen", "Write a synthetic bank + household workspace of any size (Parquet files and workspace.la).", &genCmd{})
}

type genCmd struct {
	Profiles int    `help:"Number of profiles." required:""`
	Out      string `help:"Workspace directory to write (created if missing)." required:"" type:"path"`
	Seed     int64  `help:"Seed: the same seed, size and anchor give the same data." default:"1"`
	Anchor   string `help:"Date the data's times lead up to, YYYY-MM-DD (default: today, UTC)."`
	Force    bool   `help:"Replace an existing workspace.la in --out."`
}

func (c *genCmd) Run(g *Globals) error {
	if c.Profiles <= 0 {
		return userError(fmt.Errorf("gen: --profiles must be positive"))
	}
	var anchor time.Time
	if c.Anchor != "" {
		var err error
		if anchor, err = time.Parse(time.DateOnly, c.Anchor); err != nil {
			return userError(fmt.Errorf("gen: --anchor: want YYYY-MM-DD, got %q", c.Anchor))
		}
	}
	ws := filepath.Join(c.Out, gen.WorkspaceFile)
	if _, err := os.Stat(ws); err == nil && !c.Force {
		return userError(fmt.Errorf("gen: %s exists; pass --force to replace it", ws))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return infraError(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	res, err := gen.Generate(ctx, gen.Options{Profiles: c.Profiles, Out: c.Out, Seed: c.Seed, Anchor: anchor})
	if err != nil {
		return infraError(err)
	}
	var rows int64
	for _, t := range res.Tables {
		fmt.Printf("%-32s %12d rows  %s\n", t.Name, t.Rows, t.File)
		rows += t.Rows
	}
	fmt.Printf("%d rows in %s; workspace %s (anchor %s)\n", rows, time.Since(start).Round(time.Millisecond), res.Workspace, res.Anchor.Format(time.DateOnly))
	return nil
}
