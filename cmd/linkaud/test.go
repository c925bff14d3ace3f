package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/internal/audtest"
)

func init() {
	register("test", "Run the workspace's audience tests (test blocks) on an embedded DuckDB; exit 1 if one fails.", &testCmd{})
}

type testCmd struct {
	Dir     string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Pattern string `name:"run" help:"Run only the tests whose name matches this regular expression."`
	JUnit   string `name:"junit" help:"Also write the results as JUnit XML to this file, for CI systems." type:"path"`
}

func (c *testCmd) Run(g *Globals) error {
	var pattern *regexp.Regexp
	if c.Pattern != "" {
		var err error
		if pattern, err = regexp.Compile(c.Pattern); err != nil {
			return userError(fmt.Errorf("--run: %v", err))
		}
	}
	ws, err := loadWorkspace(c.Dir, dsl.Options{})
	if err != nil {
		return err
	}
	if len(ws.Tests) == 0 {
		return userError(fmt.Errorf("%s has no test blocks: see docs/testing.md", c.Dir))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	started := time.Now()
	rep, err := audtest.Run(ctx, ws, audtest.Options{Run: pattern})
	if err != nil {
		return infraError(err)
	}
	if len(rep.Results) == 0 {
		return userError(fmt.Errorf("no test matches --run %q", c.Pattern))
	}
	if err := rep.WriteText(os.Stdout); err != nil {
		return infraError(err)
	}
	if c.JUnit != "" {
		f, err := os.Create(c.JUnit)
		if err != nil {
			return infraError(err)
		}
		if err := rep.WriteJUnit(f, started); err != nil {
			f.Close()
			return infraError(err)
		}
		if err := f.Close(); err != nil {
			return infraError(err)
		}
	}
	if rep.Failed() > 0 {
		return silentExit(exitUser)
	}
	return nil
}
