package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/sinks"
)

func init() {
	register("run", "Run one compute cycle now for each enabled audience (or --audience), then deliver; print a change summary.", &runCmd{})
}

type runCmd struct {
	Dir         string   `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Audience    []string `help:"Compute only this audience (repeatable); default: every enabled audience." short:"a" predictor:"audience"`
	Enable      bool     `help:"Enable a named --audience that is disabled, instead of refusing it."`
	DeliverOnly bool     `help:"Compute nothing: deliver what the outbox holds (e.g. after a destination outage)."`
	Retries     int      `help:"Retries of a failing delivery batch before its events are left in the outbox for the next run." default:"2"`
	Now         string   `help:"Cycle start, RFC 3339 (default: now): the events' timestamp and the reference of within windows."`
	Timings     bool     `help:"Print query, diff and delivery times." default:"true" negatable:""`
	DryRun      bool     `help:"Compute the next cycle and print the events it would emit (JSON lines on standard output, with their messageIds) and the change summary (standard error); commit and deliver nothing."`
	MemoryLimit byteSize `help:"Memory budget of the process, e.g. 512MB: divided between DuckDB, the state and the pipeline (default: the state block's memory_limit, else a quarter of RAM, 512MB to 4GB)." placeholder:"SIZE"`
}

func (c *runCmd) Run(g *Globals) error {
	if c.DryRun && c.DeliverOnly {
		return userError(errors.New("--dry-run computes a cycle and --deliver-only computes none: give one of them"))
	}
	if c.DeliverOnly && len(c.Audience) > 0 {
		return userError(errors.New("--deliver-only computes nothing: leave out --audience"))
	}
	if c.Retries < 0 {
		return userError(errors.New("--retries must be 0 or more"))
	}
	ws, err := loadWorkspace(c.Dir, dsl.Options{})
	if err != nil {
		return err
	}
	opts, err := engineOptions(g, c.Now)
	if err != nil {
		return err
	}
	opts.DeliverRetries = c.Retries
	opts.CheckColumns = true
	opts.MemoryLimit = int64(c.MemoryLimit)
	if c.Retries == 0 {
		opts.DeliverRetries = sinks.NoRetries
	}
	if p := newRowsProgress(); p != nil {
		// On a terminal: rows read and rows/s while each cycle streams.
		opts.Hooks = append(opts.Hooks, p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A cancelled cycle changes nothing; whatever does not return in
	// time (a warehouse ignoring cancellation) is not waited for.
	defer boundExit(15*time.Second, opts.Logger)()
	e, err := engine.Open(ctx, ws, opts)
	if err != nil {
		return stateError(err)
	}
	defer e.Close()
	applyMemoryPlan(g, e.Memory())
	if c.DryRun {
		return c.dryRun(ctx, e)
	}
	rep, err := e.RunOnce(ctx, engine.RunOptions{Audiences: c.Audience, Enable: c.Enable, DeliverOnly: c.DeliverOnly})
	var disabled *engine.AudienceDisabledError
	switch {
	case errors.As(err, &disabled) && disabled.Declared != "":
		return userError(fmt.Errorf("%w: the file decides; change it to enabled true to run it", err))
	case errors.As(err, &disabled):
		return userError(fmt.Errorf("%w: enable it with `linkaud audiences %s enable %s`, or pass --enable", err, c.Dir, disabled.Name))
	case errors.Is(err, engine.ErrUnknownAudience):
		return userError(err)
	case err != nil && rep == nil:
		return infraError(err)
	}
	if len(rep.Audiences) == 0 && !c.DeliverOnly {
		fmt.Fprintf(os.Stdout, "no audience is enabled: enable one with `linkaud audiences %s enable NAME` (`linkaud audiences %s list` shows them)\n", c.Dir, c.Dir)
	}
	if werr := rep.WriteSummary(os.Stdout, engine.SummaryOptions{Timings: c.Timings}); werr != nil {
		return infraError(werr)
	}
	if err != nil {
		// The run itself went through; only its bookkeeping failed.
		return infraError(err)
	}
	for _, a := range rep.Audiences {
		if r := refusal(a.Err); r != nil {
			return r
		}
	}
	for _, d := range rep.Destinations {
		if r := refusal(d.Err); r != nil {
			return r
		}
	}
	if failed := failures(rep); failed != "" {
		if userFailures(rep) {
			return userError(errors.New(failed))
		}
		return infraError(errors.New(failed))
	}
	return nil
}

// userFailures reports whether every failure of a run is the workspace's
// or the deployment's to fix (a load file missing, a column the warehouse
// lacks, a destination's env() variable unset): exit 1 then, as for any
// user error; a warehouse, destination or state that failed is exit 2.
func userFailures(rep *engine.RunReport) bool {
	for _, a := range rep.Audiences {
		if a.Err != nil && !engine.IsUserError(a.Err) {
			return false
		}
	}
	for _, d := range rep.Destinations {
		if d.Err != nil && !errors.Is(d.Err, sinks.ErrConfig) {
			return false
		}
	}
	return true
}

// failures says which cycles and deliveries of a run failed, or "".
func failures(rep *engine.RunReport) string {
	var cycles, dests []string
	for _, a := range rep.Audiences {
		if a.Err != nil {
			cycles = append(cycles, a.Name)
		}
	}
	var left int64
	var halted []string
	for _, d := range rep.Destinations {
		var h *sinks.HaltedError
		switch {
		case errors.As(d.Err, &h):
			msg := fmt.Sprintf("destination %s is halted: %s", d.Name, h.Reason)
			if h.Fix != "" {
				msg += "; " + h.Fix
			}
			halted = append(halted, fmt.Sprintf("%s; nothing was dead-lettered, %s waiting in the outbox for `--deliver-only` or the worker", msg, plural(d.Backlog, "event")))
		case d.Err != nil:
			dests = append(dests, d.Name)
			left += d.Backlog
		}
	}
	var parts []string
	if len(cycles) > 0 {
		parts = append(parts, fmt.Sprintf("the cycle of %s failed (nothing changed)", strings.Join(cycles, ", ")))
	}
	if len(dests) > 0 {
		parts = append(parts, fmt.Sprintf("delivery to %s failed (%s left in the outbox for the next run)", strings.Join(dests, ", "), plural(left, "event")))
	}
	parts = append(parts, halted...)
	return strings.Join(parts, "; ")
}

// engineOptions are the options of an engine opened by a CLI command: the
// global logger and, with --now, a fixed clock for cycles and for the
// state's own timestamps, so that a run can be reproduced exactly.
func engineOptions(g *Globals, now string) (engine.Options, error) {
	log := g.Logger()
	opts := engine.Options{Logger: log, Store: storeOptions(log)}
	if now != "" {
		t, err := cycleStart(now)
		if err != nil {
			return opts, err
		}
		clock := func() time.Time { return t }
		opts.Now, opts.Store.Now = clock, clock
	}
	return opts, nil
}
