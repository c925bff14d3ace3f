package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/sinks"
)

func init() {
	register("check", "Parse and check a workspace; print diagnostics and exit 1 on errors.", &checkCmd{})
}

type checkCmd struct {
	Dir       string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Warehouse bool   `help:"Also ask the warehouse that tables and columns exist."`
	MaxDepth  int    `help:"Deepest path allowed, counting profile (default: the graph's max_depth, else 6)."`
}

func (c *checkCmd) Run(g *Globals) error {
	ws, err := loadWorkspace(c.Dir, dsl.Options{MaxDepth: c.MaxDepth})
	if err != nil {
		return err
	}
	// Secrets set in this environment but too short to redact safely
	// (errors), and env() variables it does not set (warnings).
	if diags := sinks.CheckSecrets(ws, os.LookupEnv); len(diags) > 0 {
		dsl.Render(os.Stderr, diags, diagSources(ws, diags))
		if diags.HasErrors() {
			return silentExit(exitUser)
		}
	}
	if c.Warehouse {
		if err := checkWarehouse(ws); err != nil {
			return err
		}
	}
	warnStranded(g, ws)
	fmt.Fprintf(os.Stdout, "%s: %s, %s, %s: ok\n", c.Dir,
		plural(len(ws.Audiences), "audience"), plural(len(ws.Destinations), "destination"), plural(len(ws.Activations), "activation"))
	return nil
}

// loadWorkspace loads and checks dir, printing diagnostics (warnings too)
// to stderr; errors make it return a silent exit 1.
func loadWorkspace(dir string, opts dsl.Options) (*dsl.Workspace, error) {
	workspaceArg = dir
	ws, diags := dsl.Load(dir, opts)
	if len(diags) > 0 {
		dsl.Render(os.Stderr, diags, diagSources(ws, diags))
	}
	if diags.HasErrors() {
		return nil, silentExit(exitUser)
	}
	return ws, nil
}

// diagSources reads the files diagnostics point into, for the excerpts.
func diagSources(ws *dsl.Workspace, diags dsl.Diagnostics) map[string][]byte {
	if ws != nil {
		return dsl.Sources(ws.Files)
	}
	m := map[string][]byte{}
	for _, d := range diags {
		name := d.Subject.Start.Filename
		if _, ok := m[name]; !ok {
			src, _ := os.ReadFile(name)
			m[name] = src
		}
	}
	return m
}

// warnStranded warns, on stderr, of events the state holds for
// destinations the workspace no longer defines (renamed or deleted): they
// are never delivered until moved or dropped. A state that does not open
// is not check's business: it is said in one line, not an error.
func warnStranded(g *Globals, ws *dsl.Workspace) {
	if _, err := os.Stat(ws.StateDir); err != nil {
		return
	}
	quiet := slog.New(slog.DiscardHandler)
	store, err := diff.OpenReadOnly(ws.StateDir, diff.Options{Logger: quiet})
	if err != nil {
		fmt.Fprintf(os.Stderr, "warning: the state %s was not checked for stranded events: %s\n", ws.StateDir, oneLine(err))
		return
	}
	defer store.Close()
	st, err := engine.StrandedEvents(ws, store)
	if err != nil {
		fmt.Fprintf(os.Stderr, "warning: the state %s was not checked for stranded events: %s\n", ws.StateDir, oneLine(err))
		return
	}
	for _, s := range st {
		fmt.Fprintf(os.Stderr, "warning: destination %s is not in the workspace but the state holds %d pending events and %d dead letters for it; they are never delivered: `linkaud outbox %s move %s DEST`, `linkaud deadletters %s move %s DEST`, or drop them\n",
			s.Destination, s.Pending, s.DeadLetters, workspaceArg, s.Destination, workspaceArg, s.Destination)
	}
}
