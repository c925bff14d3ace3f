package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/internal/crashpoint"
	"github.com/linkaud/linkaud/sinks"
)

// RunOptions select what RunOnce computes.
type RunOptions struct {
	// Audiences names the audiences to compute, in this order; nil
	// computes every enabled audience of the workspace, in workspace
	// order.
	Audiences []string
	// Enable enables a named audience that is disabled; without it such
	// an audience is refused with an *AudienceDisabledError.
	Enable bool
	// DeliverOnly skips the cycles and delivers what the outbox holds.
	DeliverOnly bool
}

// RunReport is what one RunOnce did.
type RunReport struct {
	// Audiences are the cycles run, in the order they ran.
	Audiences []AudienceRun
	// Destinations are the workspace's destinations, in workspace order.
	Destinations []DestinationRun
}

// AudienceRun is one audience's cycle in a RunReport.
type AudienceRun struct {
	Name string
	// Result is the cycle's result; nil when Err is set.
	Result *diff.CycleResult
	// Err is why the cycle failed: the audience is Failed, its previous
	// generation stays current and no event was emitted.
	Err error
	// Delivered counts the audience's events delivered by this run (its
	// earlier cycles' backlog included); Delivery is the time taken by
	// the slowest destination of its activations.
	Delivered int64
	Delivery  time.Duration
}

// DestinationRun is one destination's delivery in a RunReport.
type DestinationRun struct {
	Name, Type string
	sinks.Stats
	Took time.Duration
	// Err is why delivery stopped early; the undelivered events stay in
	// the outbox for the next run.
	Err error
	// Backlog is how many events were left in the outbox afterwards.
	Backlog int64
}

// AudienceDisabledError is returned by RunOnce for a named audience that is
// not enabled. It matches diff.ErrDisabled.
type AudienceDisabledError struct {
	Name string
	// Declared is where its file says `enabled false` ("file:line:col"),
	// or "" when the state disabled it.
	Declared string
}

func (e *AudienceDisabledError) Error() string {
	if e.Declared != "" {
		return fmt.Sprintf("audience %s is disabled by its file (%s: enabled false)", e.Name, e.Declared)
	}
	return fmt.Sprintf("audience %s is disabled", e.Name)
}

// Is makes the error match diff.ErrDisabled and ErrAudienceOff.
func (e *AudienceDisabledError) Is(target error) bool {
	return target == diff.ErrDisabled || target == ErrAudienceOff
}

// UnknownAudienceError names an audience the workspace (and, where it
// applies, the state) does not know, with the closest known name. It
// matches ErrUnknownAudience.
type UnknownAudienceError struct {
	Name string
	// Known are the names that were looked in, sorted.
	Known []string
	// Suggestion is the closest of them, or "".
	Suggestion string
}

func (e *UnknownAudienceError) Error() string {
	switch {
	case e.Suggestion != "":
		return fmt.Sprintf("no audience %q; did you mean %s?", e.Name, e.Suggestion)
	case len(e.Known) == 0:
		return fmt.Sprintf("no audience %q: there are none", e.Name)
	default:
		return fmt.Sprintf("no audience %q; the audiences are %s", e.Name, strings.Join(e.Known, ", "))
	}
}

// Is makes the error match ErrUnknownAudience.
func (e *UnknownAudienceError) Is(target error) bool { return target == ErrUnknownAudience }

// NewUnknownAudienceError builds the error for name among known names.
func NewUnknownAudienceError(name string, known []string) *UnknownAudienceError {
	known = slices.Clone(known)
	slices.Sort(known)
	known = slices.Compact(known)
	return &UnknownAudienceError{Name: name, Known: known, Suggestion: grammar.Suggest(name, known)}
}

// RunOnce is `linkaud run`: one compute cycle of each selected audience,
// one after the other in a fixed order (so a run's outbox order is
// reproducible), then delivery of every destination of the workspace, in
// parallel. Delivery figures are added to each cycle's run record.
//
// It returns an error only when it could not start: an unknown audience
// (*UnknownAudienceError), a disabled one (*AudienceDisabledError), a
// storage failure. A failed cycle or delivery is in the report (see
// RunReport.Err) and does not stop the rest: the other audiences are
// computed and every destination is delivered.
func (e *Engine) RunOnce(ctx context.Context, opts RunOptions) (*RunReport, error) {
	ws := e.Workspace()
	var auds []*dsl.Audience
	if !opts.DeliverOnly {
		var err error
		if auds, err = e.selectAudiences(ws, opts); err != nil {
			return nil, err
		}
	}
	WarnStranded(e.log, ws, e.store)
	rep := &RunReport{}
	for _, a := range auds {
		res, err := e.Compute(ctx, a)
		if err == nil {
			crashpoint.Hit("cycle.committed")
		}
		rep.Audiences = append(rep.Audiences, AudienceRun{Name: a.Name, Result: res, Err: err})
	}

	count := &deliveryCount{n: map[string]int64{}}
	rep.Destinations = make([]DestinationRun, len(ws.Destinations))
	var wg sync.WaitGroup
	for i, d := range ws.Destinations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			st, err := e.deliver(ctx, d.Name, []sinks.Hook{count})
			dr := DestinationRun{Name: d.Name, Type: d.Type, Stats: st, Took: time.Since(began), Err: err}
			if n, berr := e.store.Backlog(d.Name); berr == nil {
				dr.Backlog = n
			} else {
				dr.Err = errors.Join(dr.Err, berr)
			}
			rep.Destinations[i] = dr
		}()
	}
	wg.Wait()
	crashpoint.Hit("run.delivered")

	var errs []error
	for i := range rep.Audiences {
		ar := &rep.Audiences[i]
		ar.Delivered = count.get(ar.Name)
		a := ws.Audience(ar.Name)
		for _, act := range ws.ActivationsOf(a) {
			for _, dr := range rep.Destinations {
				if dr.Name == act.Destination.Name {
					ar.Delivery = max(ar.Delivery, dr.Took)
				}
			}
		}
		if ar.Result != nil {
			if err := e.store.RecordDelivery(ar.Name, ar.Result.Run, ar.Delivered, ar.Delivery); err != nil {
				errs = append(errs, fmt.Errorf("recording the delivery of %s: %w", ar.Name, err))
			}
		}
	}
	return rep, errors.Join(errs...)
}

// selectAudiences resolves RunOptions.Audiences, or lists the enabled
// audiences of the workspace.
func (e *Engine) selectAudiences(ws *dsl.Workspace, opts RunOptions) ([]*dsl.Audience, error) {
	if opts.Audiences == nil {
		var out []*dsl.Audience
		for _, a := range ws.Audiences {
			st, err := e.store.State(a.Name)
			if err != nil {
				return nil, err
			}
			if st.Enabled {
				out = append(out, a)
			}
		}
		return out, nil
	}
	var out []*dsl.Audience
	for _, name := range opts.Audiences {
		a := ws.Audience(name)
		if a == nil {
			return nil, NewUnknownAudienceError(name, AudienceNames(ws))
		}
		if slices.Contains(out, a) {
			continue
		}
		st, err := e.store.State(name)
		if err != nil {
			return nil, err
		}
		if !st.Enabled {
			if a.Enabled != nil {
				// --enable does not overrule the file.
				return nil, &AudienceDisabledError{Name: name, Declared: declaredAt(a)}
			}
			if !opts.Enable {
				return nil, &AudienceDisabledError{Name: name}
			}
			if err := e.store.Enable(name); err != nil {
				return nil, err
			}
			e.log.Info("audience enabled", "audience", name)
		}
		out = append(out, a)
	}
	return out, nil
}

// AudienceNames lists the workspace's audiences in workspace order.
func AudienceNames(ws *dsl.Workspace) []string {
	names := make([]string, len(ws.Audiences))
	for i, a := range ws.Audiences {
		names[i] = a.Name
	}
	return names
}

// deliveryCount counts delivered events per audience (a sinks hook for
// one run's or one worker pass's deliveries).
type deliveryCount struct {
	mu sync.Mutex
	n  map[string]int64
}

func (c *deliveryCount) OnDelivered(dest string, msgs []diff.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range msgs {
		c.n[msgs[i].Audience]++
	}
}

func (c *deliveryCount) get(aud string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[aud]
}

var _ sinks.HookDelivered = (*deliveryCount)(nil)

// Err joins the failures of the run: failed cycles and destinations whose
// delivery stopped early. nil when everything succeeded.
func (r *RunReport) Err() error {
	var errs []error
	for _, a := range r.Audiences {
		if a.Err != nil {
			errs = append(errs, fmt.Errorf("audience %s: cycle failed: %w", a.Name, a.Err))
		}
	}
	for _, d := range r.Destinations {
		if d.Err != nil {
			errs = append(errs, fmt.Errorf("destination %s: delivery failed, %s left in the outbox for the next run: %w", d.Name, plural(d.Backlog, "event"), d.Err))
		}
	}
	return errors.Join(errs...)
}

// SummaryOptions tune RunReport.WriteSummary.
type SummaryOptions struct {
	// Timings adds the query, diff and delivery times (left out where the
	// output must be reproducible).
	Timings bool
}

// WriteSummary prints the report for people: per audience its new
// generation and changes, per destination what was delivered and what is
// left.
func (r *RunReport) WriteSummary(w io.Writer, o SummaryOptions) error {
	var b strings.Builder
	for _, a := range r.Audiences {
		if a.Err != nil {
			fmt.Fprintf(&b, "%s: FAILED; nothing changed (the previous generation stays current, no event was emitted)\n%s\n", a.Name, Indent(a.Err.Error(), "  "))
			continue
		}
		res := a.Result
		fmt.Fprintf(&b, "%s: run %d, generation %d, %s, %s\n", a.Name, res.Run, res.Generation, plural(res.Members, "member"), plural(res.Rows, "row"))
		fmt.Fprintf(&b, "  entered %d, exited %d, added %d, removed %d, changed %d; %s, %d delivered\n",
			res.Entered, res.Exited, res.Added, res.Removed, res.Changed, plural(res.Events, "event"), a.Delivered)
		if res.Duplicates > 0 || res.Oversize > 0 {
			fmt.Fprintf(&b, "  %s ignored, %s over the size cap not sent\n", plural(res.Duplicates, "duplicate row"), plural(res.Oversize, "event"))
		}
		if o.Timings {
			fmt.Fprintf(&b, "  query %s, diff %s, delivery %s\n", FormatDuration(res.Query), FormatDuration(res.Diff), FormatDuration(a.Delivery))
		}
	}
	if len(r.Destinations) == 0 {
		b.WriteString("no destinations\n")
	}
	for _, d := range r.Destinations {
		fmt.Fprintf(&b, "%s (%s): %d delivered", d.Name, d.Type, d.Delivered)
		if d.Recovered > 0 {
			fmt.Fprintf(&b, ", %d found already delivered", d.Recovered)
		}
		if d.Dropped > 0 {
			fmt.Fprintf(&b, ", %d over the size cap dropped", d.Dropped)
		}
		if d.DeadLettered > 0 {
			fmt.Fprintf(&b, ", %d dead-lettered", d.DeadLettered)
		}
		if o.Timings {
			fmt.Fprintf(&b, " in %s", FormatDuration(d.Took))
		}
		b.WriteString("\n")
		if d.Err != nil && errors.Is(d.Err, sinks.ErrHalted) {
			fmt.Fprintf(&b, "  HALTED; nothing dead-lettered, %s kept in the outbox until the destination accepts them\n%s\n", plural(d.Backlog, "event"), Indent(d.Err.Error(), "    "))
		} else if d.Err != nil {
			fmt.Fprintf(&b, "  FAILED; %s left in the outbox for the next run\n%s\n", plural(d.Backlog, "event"), Indent(d.Err.Error(), "    "))
		} else if d.Backlog > 0 {
			fmt.Fprintf(&b, "  %s left in the outbox\n", plural(d.Backlog, "event"))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// Indent prefixes every line of s with prefix (multi-line errors, such as
// a warehouse's, under a heading).
func Indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// FormatDuration prints a duration for people with three or four
// significant digits, always with a decimal point ("0.42ms", "12.3ms",
// "1.23s", "123.4s"), so it lines up and reads the same everywhere.
func FormatDuration(d time.Duration) string {
	switch ms := float64(d) / float64(time.Millisecond); {
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 100_000:
		return fmt.Sprintf("%.2fs", ms/1000)
	default:
		return fmt.Sprintf("%.1fs", ms/1000)
	}
}
