package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/preview"
)

func init() {
	register("preview", "Show an audience's members from the warehouse, without touching state.", &previewCmd{})
}

type previewCmd struct {
	Dir      string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Audience string `help:"The audience to preview." required:"" short:"a" predictor:"audience"`
	Limit    int    `help:"Show the first N members in key order; 0 shows all." default:"3000"`
	Format   string `help:"table, jsonl (one member per line with its matched entities) or keys (one profile key per line, byte order)." enum:"table,jsonl,keys" default:"table"`
	Now      string `help:"Cycle start for within windows, RFC 3339 (default: now)."`
	Diff     bool   `help:"Show the members that would enter (+) and exit (-) against the last committed generation (reads every member; --limit and --format do not apply)."`
}

func (c *previewCmd) Run(g *Globals) error {
	if c.Limit < 0 {
		return userError(fmt.Errorf("--limit must be 0 (all) or positive"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	q, err := openAudienceQuery(ctx, c.Dir, c.Audience, c.Now)
	if err != nil {
		return err
	}
	defer q.wh.Close()
	ws, a := q.ws, q.a
	limit := c.Limit
	if c.Diff {
		limit = 0
	}
	p, err := planner.Compile(a, ws.Graph, q.d, planner.Options{Now: q.now, Limit: limit})
	if err != nil {
		return userError(err)
	}
	res, err := preview.Run(ctx, q.wh, p)
	if err != nil {
		return infraError(fmt.Errorf("preview %s: %w", a.Name, err))
	}
	if c.Diff {
		committed, gen, err := committedMembers(g, ws, a.Name)
		if err != nil {
			return err
		}
		if err := res.Diff(committed, gen).Write(os.Stdout); err != nil {
			return infraError(err)
		}
		return nil
	}
	switch c.Format {
	case "keys":
		err = res.WriteKeys(os.Stdout)
	case "jsonl":
		err = res.WriteJSONL(os.Stdout)
	default:
		if err = res.WriteTable(os.Stdout); err == nil {
			note := ""
			if c.Limit > 0 && res.Members == c.Limit {
				note = fmt.Sprintf(" (the first %d; --limit 0 shows all)", c.Limit)
			}
			_, err = fmt.Fprintf(os.Stdout, "%s, %s%s\n", plural(res.Members, "member"), plural(len(res.Rows), "row"), note)
		}
	}
	if err != nil {
		return infraError(err)
	}
	return nil
}

// committedMembers reads the member keys of an audience's current
// generation from the state, read-only (a worker may hold it); none when
// the state or the audience has no generation yet.
func committedMembers(g *Globals, ws *dsl.Workspace, aud string) ([]string, uint64, error) {
	if _, err := os.Stat(ws.StateDir); errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	store, err := diff.OpenReadOnly(ws.StateDir, storeOptions(g.Logger()))
	if err != nil {
		return nil, 0, stateError(fmt.Errorf("opening state %s: %w", ws.StateDir, err))
	}
	defer store.Close()
	st, err := store.State(aud)
	if err != nil {
		return nil, 0, stateError(err)
	}
	if st.Generation == 0 {
		return nil, 0, nil
	}
	var keys []string
	if err := store.Members(aud, func(m diff.Member) error { keys = append(keys, m.Profile); return nil }); err != nil {
		return nil, 0, stateError(err)
	}
	return keys, st.Generation, nil
}
