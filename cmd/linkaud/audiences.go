package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/web"
)

func init() {
	register("audiences", "Audience lifecycle and run history: DIR list | enable A | disable A | status A | runs A | purge A.", &audiencesCmd{})
}

type audiencesCmd struct {
	Dir audiencesDir `arg:""`
}

// audiencesDir is kong's branching positional argument: the workspace
// directory comes before the sub-command, as in `audiences DIR list`.
type audiencesDir struct {
	Dir string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`

	List    audListCmd    `cmd:"" help:"Every audience: status, version, generation, members, last run."`
	Enable  audEnableCmd  `cmd:"" help:"Enable an audience: it is computed by run and the worker."`
	Disable audDisableCmd `cmd:"" help:"Disable an audience; its membership is kept for when it is enabled again."`
	Status  audStatusCmd  `cmd:"" help:"One audience in detail, with the error of a failed cycle."`
	Runs    audRunsCmd    `cmd:"" help:"The last runs of an audience (up to 50) with per-step timings and change counts."`
	Purge   audPurgeCmd   `cmd:"" help:"Delete what the state keeps of a disabled or deleted audience (pending events are still delivered)."`
}

type audListCmd struct {
	JSON bool `help:"Print JSON instead of a table."`
}

type audEnableCmd struct {
	Audiences []string `arg:"" name:"audience" help:"Audience names." predictor:"audience"`
}

type audDisableCmd struct {
	Audiences []string `arg:"" name:"audience" help:"Audience names." predictor:"audience"`
}

type audStatusCmd struct {
	Audience string `arg:"" help:"Audience name." predictor:"audience"`
	JSON     bool   `help:"Print JSON."`
}

type audRunsCmd struct {
	Audience string `arg:"" help:"Audience name." predictor:"audience"`
	Limit    int    `help:"Show the newest N runs; 0 shows every run kept." default:"50"`
	JSON     bool   `help:"Print JSON (one run per line)."`
}

type audPurgeCmd struct {
	Audience string `arg:"" help:"Audience name." predictor:"audience"`
}

// stateAccess says how a command opens the state.
type stateAccess int

const (
	// readState: read-only (diff.OpenReadOnly), which works while a
	// worker runs and on a read-only directory; a state directory that
	// does not exist is not made.
	readState stateAccess = iota
	// writeState: read-write, created if need be.
	writeState
)

// openState loads the workspace and opens its state directory only (no
// warehouse). With readState, a state directory that does not exist yet
// is not created: the workspace then simply has no history.
func openState(g *Globals, dir string, access stateAccess) (*dsl.Workspace, *diff.Store, error) {
	ws, err := loadWorkspace(dir, dsl.Options{})
	if err != nil {
		return nil, nil, err
	}
	opts := storeOptions(g.Logger())
	var store *diff.Store
	if access == readState {
		if _, err := os.Stat(ws.StateDir); errors.Is(err, os.ErrNotExist) {
			return ws, nil, nil
		}
		store, err = diff.OpenReadOnly(ws.StateDir, opts)
	} else {
		store, err = diff.Open(ws.StateDir, opts)
	}
	if err != nil {
		return nil, nil, stateError(fmt.Errorf("opening state %s: %w", ws.StateDir, err))
	}
	return ws, store, nil
}

// withState runs fn on the workspace and its state, opened for the call
// only (see stateAccess).
func withState(g *Globals, dir string, access stateAccess, fn func(ws *dsl.Workspace, store *diff.Store) error) error {
	ws, store, err := openState(g, dir, access)
	if err != nil {
		return err
	}
	if store != nil {
		defer store.Close()
	}
	return fn(ws, store)
}

// audienceError maps the engine's lookup errors to exit codes.
func audienceError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrUnknownAudience), errors.Is(err, engine.ErrNotDefined), errors.Is(err, engine.ErrPurgeEnabled), errors.Is(err, engine.ErrDeclared):
		return userError(err)
	default:
		return infraError(err)
	}
}

func (c *audListCmd) Run(g *Globals, d *audiencesDir) error {
	return withState(g, d.Dir, readState, func(ws *dsl.Workspace, store *diff.Store) error {
		all, err := engine.Statuses(ws, store)
		if err != nil {
			return infraError(err)
		}
		if c.JSON {
			out := make([]web.Audience, len(all))
			for i, s := range all {
				out[i] = web.AudienceOf(s)
			}
			return writeJSONLines(os.Stdout, out)
		}
		if len(all) == 0 {
			fmt.Println("no audiences: the workspace defines none and the state keeps none")
			return nil
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AUDIENCE\tSTATUS\tVERSION\tGENERATION\tMEMBERS\tLAST RUN\tSCHEDULE")
		var notes []string
		for _, s := range all {
			sched := s.Schedule
			if !s.Defined {
				sched = "(deleted from the workspace)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", s.Name, s.Status, version(s), s.Generation, s.Members, when(s.LastRun), sched)
			if s.Status == diff.Failed {
				notes = append(notes, fmt.Sprintf("%s failed:\n%s", s.Name, engine.Indent(s.Error, "  ")))
			}
		}
		if err := tw.Flush(); err != nil {
			return infraError(err)
		}
		for _, n := range notes {
			fmt.Fprintln(os.Stdout, n)
		}
		return nil
	})
}

// version is the short version the current generation was computed from,
// marked when the workspace's definition has changed since.
func version(s engine.AudienceStatus) string {
	v := short(s.Version)
	if v == "" {
		v = "-"
	}
	if s.Defined && s.Version != "" && s.Definition != s.Version {
		v += " (edited)"
	}
	return v
}

func short(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func (c *audEnableCmd) Run(g *Globals, d *audiencesDir) error {
	return setEnabled(g, d.Dir, c.Audiences, true)
}

func (c *audDisableCmd) Run(g *Globals, d *audiencesDir) error {
	return setEnabled(g, d.Dir, c.Audiences, false)
}

// setEnabled enables or disables every name, or none when one of them
// cannot be (unknown, deleted, or decided by its file).
func setEnabled(g *Globals, dir string, names []string, on bool) error {
	return withState(g, dir, writeState, func(ws *dsl.Workspace, store *diff.Store) error {
		var errs []error
		for _, name := range names {
			if _, err := engine.CheckSetEnabled(ws, store, name, on); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return audienceError(errors.Join(errs...))
		}
		for _, name := range slices.Compact(slices.Clone(names)) {
			s, err := engine.SetEnabled(ws, store, name, on)
			if err != nil {
				return audienceError(err)
			}
			printEnabled(dir, s, on)
		}
		return nil
	})
}

func printEnabled(dir string, s engine.AudienceStatus, on bool) {
	name := s.Name
	switch {
	case on && s.Generation == 0:
		fmt.Printf("%s: enabled (%s); `linkaud run %s` or the worker computes it\n", name, s.Status, dir)
	case on:
		fmt.Printf("%s: enabled (%s, generation %d, %s)\n", name, s.Status, s.Generation, plural(s.Members, "member"))
	default:
		fmt.Printf("%s: disabled; %s kept for when it is enabled again\n", name, plural(s.Members, "member"))
	}
}

func (c *audStatusCmd) Run(g *Globals, d *audiencesDir) error {
	return withState(g, d.Dir, readState, func(ws *dsl.Workspace, store *diff.Store) error {
		s, err := engine.StatusOf(ws, store, c.Audience)
		if err != nil {
			return audienceError(err)
		}
		if c.JSON {
			return writeJSONLines(os.Stdout, []web.Audience{web.AudienceOf(s)})
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
		row("audience", "%s", s.Name)
		if s.Description != "" {
			row("description", "%s", s.Description)
		}
		row("status", "%s", s.Status)
		if s.Defined {
			row("schedule", "%s", s.Schedule)
			row("definition", "%s", short(s.Definition))
		} else {
			row("definition", "deleted from the workspace; its state is kept until `linkaud audiences %s purge %s`", d.Dir, s.Name)
		}
		if s.Generation > 0 {
			note := ""
			if s.Defined && s.Version != s.Definition {
				note = " (the definition changed since: the next cycle diffs against it)"
			}
			row("generation", "%d, computed from version %s%s", s.Generation, short(s.Version), note)
			row("members", "%d (%d entity rows)", s.Members, s.Rows)
		} else {
			row("generation", "none yet")
		}
		row("runs", "%d", s.Runs)
		row("last run", "%s", when(s.LastRun))
		row("last success", "%s", when(s.LastSuccess))
		if a := ws.Audience(s.Name); a != nil {
			for _, act := range ws.ActivationsOf(a) {
				row("activation", "%s", describeActivation(act))
			}
		}
		if err := tw.Flush(); err != nil {
			return infraError(err)
		}
		if s.Status == diff.Failed {
			fmt.Fprintf(&b, "error of the last run:\n%s\n", engine.Indent(s.Error, "  "))
		}
		_, err = io.WriteString(os.Stdout, b.String())
		return err
	})
}

func describeActivation(act *dsl.Activation) string {
	ev := act.Event.String()
	if act.Entity != nil {
		ev += " " + act.Entity.Name
	}
	s := fmt.Sprintf("%s: %s -> %s", act.Name, ev, act.Destination.Name)
	if act.SendCurrent {
		s += " (send_current)"
	}
	return s
}

func (c *audRunsCmd) Run(g *Globals, d *audiencesDir) error {
	if c.Limit < 0 {
		return userError(errors.New("--limit must be 0 (all) or positive"))
	}
	return withState(g, d.Dir, readState, func(ws *dsl.Workspace, store *diff.Store) error {
		if _, err := engine.StatusOf(ws, store, c.Audience); err != nil {
			return audienceError(err)
		}
		var runs []diff.RunRecord
		if store != nil {
			var err error
			if runs, err = store.Runs(c.Audience); err != nil {
				return infraError(err)
			}
		}
		if c.Limit > 0 && len(runs) > c.Limit {
			runs = runs[:c.Limit]
		}
		if c.JSON {
			out := make([]web.Run, len(runs))
			for i, r := range runs {
				out[i] = web.RunOf(r)
			}
			return writeJSONLines(os.Stdout, out)
		}
		if len(runs) == 0 {
			fmt.Printf("%s has not run yet\n", c.Audience)
			return nil
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tSTART\tRESULT\tGEN\tMEMBERS\tENTERED\tEXITED\tADDED\tREMOVED\tEVENTS\tDELIVERED\tQUERY\tDIFF\tDELIVERY")
		var notes []string
		for _, r := range runs {
			result := "ok"
			if !r.OK {
				result = "FAILED"
				notes = append(notes, fmt.Sprintf("run %d failed:\n%s", r.Run, engine.Indent(r.Error, "  ")))
			}
			for _, a := range r.Alerts {
				result = "ALERT"
				note := fmt.Sprintf("run %d: alert %s (%d → %d members)", r.Run, a.Alert, a.Before, a.After)
				if a.Notify != "" {
					note += ", sent to " + a.Notify
				}
				notes = append(notes, note)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n",
				r.Run, when(r.Start), result, r.Generation, r.Members, r.Entered, r.Exited, r.Added, r.Removed,
				r.Events, r.Delivered, dur(r.Query), dur(r.Diff), dur(r.Delivery))
		}
		if err := tw.Flush(); err != nil {
			return infraError(err)
		}
		for _, n := range notes {
			fmt.Println(n)
		}
		return nil
	})
}

// dur is a duration in a cell of fixed width, so that columns do not move
// with the figures.
func dur(d time.Duration) string { return fmt.Sprintf("%8s", engine.FormatDuration(d)) }

func (c *audPurgeCmd) Run(g *Globals, d *audiencesDir) error {
	return withState(g, d.Dir, writeState, func(ws *dsl.Workspace, store *diff.Store) error {
		if err := engine.Purge(ws, store, c.Audience); err != nil {
			if errors.Is(err, engine.ErrPurgeEnabled) {
				return userError(fmt.Errorf("%w (`linkaud audiences %s disable %s`)", err, d.Dir, c.Audience))
			}
			return audienceError(err)
		}
		fmt.Printf("%s: purged; events already in the outbox are still delivered\n", c.Audience)
		return nil
	})
}

// writeJSONLines prints one JSON object per element.
func writeJSONLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return infraError(err)
		}
	}
	return nil
}
