package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
)

func init() {
	register("outbox", "Events waiting for delivery: DIR list | move FROM TO | drop DEST.", &outboxCmd{})
}

type outboxCmd struct {
	Dir outboxDir `arg:""`
}

type outboxDir struct {
	Dir string `arg:"" help:"Workspace directory (its .la files)."`

	List obListCmd `cmd:"" help:"Pending events per destination; destinations the workspace no longer defines are marked (stranded)."`
	Move obMoveCmd `cmd:"" help:"Move every pending event of FROM (e.g. a renamed destination) to the end of TO's outbox, messageIds kept."`
	Drop obDropCmd `cmd:"" help:"Delete every pending event of DEST; they are never delivered."`
}

type obListCmd struct{}

type obMoveCmd struct {
	From string `arg:"" help:"Destination whose events move."`
	To   string `arg:"" help:"Destination of the workspace that receives them."`
}

type obDropCmd struct {
	Destination string `arg:"" help:"Destination whose pending events are deleted."`
	Yes         bool   `help:"Confirm: the events are gone for good." required:""`
}

func (c *obListCmd) Run(g *Globals, d *outboxDir) error {
	return withState(g, d.Dir, readState, func(ws *dsl.Workspace, store *diff.Store) error {
		backlogs := map[string]int64{}
		if store != nil {
			var err error
			if backlogs, err = store.Backlogs(); err != nil {
				return infraError(err)
			}
		}
		names := []string{}
		for _, dst := range ws.Destinations {
			names = append(names, dst.Name)
		}
		for name := range backlogs {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESTINATION\tPENDING\tNOTE")
		for _, n := range names {
			note := ""
			if ws.Destination(n) == nil {
				note = fmt.Sprintf("stranded: not in the workspace (`linkaud outbox %s move %s DEST` or `drop %s --yes`)", d.Dir, n, n)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\n", n, backlogs[n], note)
		}
		return infraErrorOrNil(tw.Flush())
	})
}

func infraErrorOrNil(err error) error {
	if err != nil {
		return infraError(err)
	}
	return nil
}

// requireDestination refuses a destination the workspace does not define.
func requireDestination(ws *dsl.Workspace, name string) error {
	if ws.Destination(name) != nil {
		return nil
	}
	return checkDestination(ws, nil, name)
}

func (c *obMoveCmd) Run(g *Globals, d *outboxDir) error {
	return withState(g, d.Dir, writeState, func(ws *dsl.Workspace, store *diff.Store) error {
		if err := requireDestination(ws, c.To); err != nil {
			return err
		}
		if c.From == c.To {
			return userError(errors.New("FROM and TO are the same destination"))
		}
		n, err := store.MoveOutbox(c.From, c.To)
		if err != nil {
			return infraError(err)
		}
		g.Logger().Info("outbox moved", "from", c.From, "to", c.To, "events", n)
		fmt.Printf("%s moved from %s to %s; `linkaud run %s --deliver-only` (or the worker) delivers them\n", plural(n, "pending event"), c.From, c.To, d.Dir)
		engine.WarnStranded(g.Logger(), ws, store)
		return nil
	})
}

func (c *obDropCmd) Run(g *Globals, d *outboxDir) error {
	return withState(g, d.Dir, writeState, func(ws *dsl.Workspace, store *diff.Store) error {
		n, err := store.DropOutbox(c.Destination)
		if err != nil {
			return infraError(err)
		}
		g.Logger().Warn("outbox dropped", "destination", c.Destination, "events", n)
		fmt.Printf("%s of %s dropped\n", plural(n, "pending event"), c.Destination)
		return nil
	})
}
