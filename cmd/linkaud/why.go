package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"

	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/why"
)

func init() {
	register("why", "Explain why a profile is, or is not, a member of an audience: the condition tree evaluated for that profile, with evidence.", &whyCmd{})
}

type whyCmd struct {
	Dir      string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Audience string `help:"The audience." required:"" short:"a" predictor:"audience"`
	Profile  string `help:"The profile's key, as text." required:"" short:"p"`
	Format   string `help:"text (an indented tree) or json (one object with a boolean member and the evaluated tree)." enum:"text,json" default:"text"`
	MaxRows  int    `help:"Related rows (and events) shown per path step, matching first; every row is counted." default:"10"`
	Now      string `help:"Cycle start for within windows, RFC 3339 (default: now)."`
}

func (c *whyCmd) Run(g *Globals) error {
	if c.MaxRows < 1 {
		return userError(fmt.Errorf("--max-rows must be at least 1"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	q, err := openAudienceQuery(ctx, c.Dir, c.Audience, c.Now)
	if err != nil {
		return err
	}
	defer q.wh.Close()
	w, err := planner.CompileWhy(q.a, q.ws.Graph, q.d, c.Profile, planner.Options{Now: q.now, Limit: c.MaxRows})
	if err != nil {
		return userError(err)
	}
	res, err := why.Run(ctx, q.wh, w)
	if err != nil {
		return infraError(err)
	}
	if c.Format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteText(os.Stdout)
	}
	if err != nil {
		return infraError(err)
	}
	if !res.Found {
		return silentExit(exitUser)
	}
	return nil
}
