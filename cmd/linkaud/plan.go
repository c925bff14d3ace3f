package main

import (
	"fmt"
	"os"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/planner"
)

func init() {
	register("plan", "Print the SQL of an audience.", &planCmd{})
}

type planCmd struct {
	Dir      string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Audience string `help:"The audience to plan." required:"" short:"a" predictor:"audience"`
	Dialect  string `help:"SQL dialect: duckdb, snowflake, postgres, redshift, bigquery or databricks (default: the workspace's warehouse type; its exact_names setting applies)."`
	Now      string `help:"Cycle start for within windows, RFC 3339 (default: now)."`
	Limit    int    `help:"Keep only the first N members in key order, as preview does (0: all)." default:"0"`
}

func (c *planCmd) Run(g *Globals) error {
	ws, err := loadWorkspace(c.Dir, dsl.Options{})
	if err != nil {
		return err
	}
	a, err := findAudience(ws, c.Audience)
	if err != nil {
		return err
	}
	d, err := planner.ForWarehouse(ws.Warehouse)
	if err != nil {
		return userError(err)
	}
	if c.Dialect != "" && c.Dialect != d.Name() {
		if d, err = planner.DialectFor(c.Dialect); err != nil {
			return userError(err)
		}
		if ws.Warehouse.Settings["exact_names"] == "true" {
			d = planner.ExactNames(d)
		}
	}
	now, err := cycleStart(c.Now)
	if err != nil {
		return err
	}
	p, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: now, Limit: c.Limit})
	if err != nil {
		return userError(err)
	}
	fmt.Fprintln(os.Stdout, p.SQL+";")
	return nil
}

// findAudience returns the audience named name, or a user error with the
// closest name ("did you mean") or the workspace's audiences.
func findAudience(ws *dsl.Workspace, name string) (*dsl.Audience, error) {
	if a := ws.Audience(name); a != nil {
		return a, nil
	}
	return nil, userError(engine.NewUnknownAudienceError(name, engine.AudienceNames(ws)))
}

// cycleStart parses --now, defaulting to the current time.
func cycleStart(s string) (time.Time, error) {
	if s == "" {
		return time.Now().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, userError(fmt.Errorf("--now: want an RFC 3339 time such as 2026-03-15T12:00:00Z, got %q", s))
	}
	return t.UTC(), nil
}
