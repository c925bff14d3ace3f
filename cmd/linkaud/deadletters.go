package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/grammar"
)

func init() {
	register("deadletters", "Events destinations rejected permanently: DIR list | retry [IDS...] | move FROM TO [IDS...] | drop DEST [IDS...].", &deadlettersCmd{})
}

type deadlettersCmd struct {
	Dir deadlettersDir `arg:""`
}

type deadlettersDir struct {
	Dir string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`

	List  dlListCmd  `cmd:"" help:"List dead letters, oldest first, with the reason each was rejected."`
	Retry dlRetryCmd `cmd:"" help:"Move dead letters back to the outbox (same messageIds); the next run or the worker delivers them."`
	Move  dlMoveCmd  `cmd:"" help:"Move the dead letters of FROM (e.g. a renamed destination) to TO's, where retry sends them."`
	Drop  dlDropCmd  `cmd:"" help:"Delete dead letters of DEST for good."`
}

type dlMoveCmd struct {
	From string   `arg:"" help:"Destination whose dead letters move."`
	To   string   `arg:"" help:"Destination of the workspace that receives them."`
	IDs  []string `arg:"" optional:"" name:"ids" help:"messageIds to move (default: all)."`
}

type dlDropCmd struct {
	Destination string   `arg:"" help:"Destination whose dead letters are deleted."`
	IDs         []string `arg:"" optional:"" name:"ids" help:"messageIds to drop (default: all)."`
	Yes         bool     `help:"Confirm: the events are gone for good." required:""`
}

func (c *dlMoveCmd) Run(g *Globals, d *deadlettersDir) error {
	return withState(g, d.Dir, writeState, func(ws *dsl.Workspace, store *diff.Store) error {
		if err := requireDestination(ws, c.To); err != nil {
			return err
		}
		if c.From == c.To {
			return userError(errors.New("FROM and TO are the same destination"))
		}
		n, err := store.MoveDeadLetters(c.From, c.To, idsOrNil(c.IDs))
		if err != nil {
			return infraError(err)
		}
		g.Logger().Info("dead letters moved", "from", c.From, "to", c.To, "dead_letters", n)
		fmt.Printf("%s moved from %s to %s; `linkaud deadletters %s retry --destination %s` sends them\n", plural(n, "dead letter"), c.From, c.To, d.Dir, c.To)
		return nil
	})
}

func (c *dlDropCmd) Run(g *Globals, d *deadlettersDir) error {
	return withState(g, d.Dir, writeState, func(ws *dsl.Workspace, store *diff.Store) error {
		n, err := store.DropDeadLetters(c.Destination, idsOrNil(c.IDs))
		if err != nil {
			return infraError(err)
		}
		g.Logger().Warn("dead letters dropped", "destination", c.Destination, "dead_letters", n)
		fmt.Printf("%s of %s dropped\n", plural(n, "dead letter"), c.Destination)
		return nil
	})
}

func idsOrNil(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

type dlListCmd struct {
	Destination string `help:"Only this destination's." short:"d"`
	JSON        bool   `help:"Print JSON, one dead letter per line, payload included."`
}

type dlRetryCmd struct {
	Destination string   `help:"Only this destination's." short:"d"`
	IDs         []string `arg:"" optional:"" name:"ids" help:"messageIds to retry (default: all)."`
}

// checkDestination refuses a --destination the workspace does not define
// and the dead-letter store does not mention.
func checkDestination(ws *dsl.Workspace, store *diff.Store, dest string) error {
	if dest == "" || ws.Destination(dest) != nil {
		return nil
	}
	var names []string
	for _, d := range ws.Destinations {
		names = append(names, d.Name)
	}
	if store != nil {
		dls, err := store.DeadLetters(dest)
		if err != nil {
			return infraError(err)
		}
		if len(dls) > 0 {
			return nil // a destination deleted from the workspace
		}
	}
	msg := fmt.Sprintf("no destination %q in the workspace", dest)
	if s := grammar.Suggest(dest, names); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return userError(errors.New(msg))
}

func (c *dlListCmd) Run(g *Globals, d *deadlettersDir) error {
	return withState(g, d.Dir, readState, func(ws *dsl.Workspace, store *diff.Store) error {
		if err := checkDestination(ws, store, c.Destination); err != nil {
			return err
		}
		var dls []diff.DeadLetter
		if store != nil {
			var err error
			if dls, err = store.DeadLetters(c.Destination); err != nil {
				return infraError(err)
			}
		}
		if c.JSON {
			type line struct {
				Destination string          `json:"destination"`
				ID          string          `json:"message_id"`
				Audience    string          `json:"audience"`
				Activation  string          `json:"activation"`
				Event       string          `json:"event"`
				UserID      string          `json:"user_id"`
				At          time.Time       `json:"at"`
				Reason      string          `json:"reason"`
				Payload     json.RawMessage `json:"payload"`
			}
			out := make([]line, len(dls))
			for i, dl := range dls {
				out[i] = line{dl.Destination, dl.ID, dl.Audience, dl.Activation, dl.Event, dl.UserID, dl.At, dl.Reason, dl.Payload}
			}
			return writeJSONLines(os.Stdout, out)
		}
		if len(dls) == 0 {
			fmt.Println("no dead letters")
			return nil
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESTINATION\tMESSAGE ID\tAUDIENCE\tEVENT\tUSER\tAT\tREASON")
		for _, dl := range dls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dl.Destination, dl.ID, dl.Audience, dl.Event, dl.UserID, when(dl.At), dl.Reason)
		}
		if err := tw.Flush(); err != nil {
			return infraError(err)
		}
		fmt.Printf("%s; `linkaud deadletters %s retry [IDS...]` sends them again\n", plural(len(dls), "dead letter"), d.Dir)
		return nil
	})
}

func (c *dlRetryCmd) Run(g *Globals, d *deadlettersDir) error {
	return withState(g, d.Dir, writeState, func(ws *dsl.Workspace, store *diff.Store) error {
		if err := checkDestination(ws, store, c.Destination); err != nil {
			return err
		}
		n, err := engine.RetryDeadLetters(store, c.Destination, c.IDs)
		if errors.Is(err, engine.ErrNoDeadLetter) {
			return userError(fmt.Errorf("%w; nothing was moved (`linkaud deadletters %s list` shows them)", err, d.Dir))
		}
		if err != nil {
			return infraError(err)
		}
		if n == 0 {
			fmt.Println("no dead letters to retry")
			return nil
		}
		fmt.Printf("%s moved back to the outbox; `linkaud run %s --deliver-only` (or the worker) delivers them\n", plural(n, "dead letter"), d.Dir)
		return nil
	})
}

// plural is "1 thing" or "n things".
func plural[N int | int64 | uint64](n N, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
