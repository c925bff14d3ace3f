package engine

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/linkaud/linkaud/diff"
)

// DryRunReport is what DryRun computed: the cycles, and the events they
// would add to the outbox, per destination in workspace order and outbox
// order — the events, messageIds included, the same cycles will emit when
// run for real on the same data and clock.
type DryRunReport struct {
	Audiences []AudienceRun
	Events    []diff.Message
}

// DryRun computes the next cycle of the audiences RunOnce would compute,
// on a scratch copy of the state (diff.Store.Scratch) that it then throws
// away: nothing is committed, nothing delivered, no run recorded. The
// events of the cycles are read from the copy's outbox (those that were
// pending before stay out of the report).
func (e *Engine) DryRun(ctx context.Context, opts RunOptions) (*DryRunReport, error) {
	if opts.DeliverOnly {
		return nil, fmt.Errorf("engine: a dry run computes cycles; it has nothing to deliver")
	}
	scratch, remove, err := e.store.Scratch()
	if err != nil {
		return nil, err
	}
	defer remove()
	defer scratch.Close()
	e.mu.Lock()
	se := &Engine{opts: e.opts, log: e.log.With("dry_run", true), store: scratch, ws: e.ws, wh: e.wh}
	e.mu.Unlock()
	ws := se.ws
	auds, err := se.selectAudiences(ws, opts)
	if err != nil {
		return nil, err
	}
	before := map[string]uint64{}
	for _, d := range ws.Destinations {
		if before[d.Name], err = lastSeq(scratch, d.Name); err != nil {
			return nil, err
		}
	}
	rep := &DryRunReport{}
	for _, a := range auds {
		res, err := se.Compute(ctx, a)
		rep.Audiences = append(rep.Audiences, AudienceRun{Name: a.Name, Result: res, Err: err})
	}
	for _, d := range ws.Destinations {
		for after := before[d.Name]; ; {
			msgs, err := scratch.Pending(d.Name, after, 4096)
			if err != nil {
				return nil, err
			}
			if len(msgs) == 0 {
				break
			}
			rep.Events = append(rep.Events, msgs...)
			after = msgs[len(msgs)-1].Seq
		}
	}
	return rep, nil
}

// lastSeq is the Seq of the last message pending for dest, 0 for none.
func lastSeq(s *diff.Store, dest string) (uint64, error) {
	var after uint64
	for {
		msgs, err := s.Pending(dest, after, 4096)
		if err != nil || len(msgs) == 0 {
			return after, err
		}
		after = msgs[len(msgs)-1].Seq
	}
}

// WriteSummary prints what each cycle would change, as RunReport's does,
// with the events per destination.
func (r *DryRunReport) WriteSummary(w io.Writer) error {
	var b strings.Builder
	for _, a := range r.Audiences {
		if a.Err != nil {
			fmt.Fprintf(&b, "%s: the cycle would fail\n%s\n", a.Name, Indent(a.Err.Error(), "  "))
			continue
		}
		res := a.Result
		fmt.Fprintf(&b, "%s: dry run of generation %d, %s, %s\n", a.Name, res.Generation, plural(res.Members, "member"), plural(res.Rows, "row"))
		fmt.Fprintf(&b, "  would enter %d, exit %d, add %d, remove %d, change %d; %s\n",
			res.Entered, res.Exited, res.Added, res.Removed, res.Changed, plural(res.Events, "event"))
	}
	per := map[string]int64{}
	var order []string
	for _, m := range r.Events {
		if per[m.Destination] == 0 {
			order = append(order, m.Destination)
		}
		per[m.Destination]++
	}
	for _, d := range order {
		fmt.Fprintf(&b, "%s: %s would be sent\n", d, plural(per[d], "event"))
	}
	b.WriteString("dry run: nothing was committed or delivered\n")
	_, err := io.WriteString(w, b.String())
	return err
}
