package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/linkaud/linkaud/engine"
)

// dryRunEvent is one line of `run --dry-run`'s standard output.
type dryRunEvent struct {
	Destination string          `json:"destination"`
	Activation  string          `json:"activation"`
	Audience    string          `json:"audience"`
	Event       string          `json:"event"`
	MessageID   string          `json:"messageId"`
	Payload     json.RawMessage `json:"payload"`
}

// dryRun is `run --dry-run`: the events as JSON lines, the summary on
// standard error.
func (c *runCmd) dryRun(ctx context.Context, e *engine.Engine) error {
	rep, err := e.DryRun(ctx, engine.RunOptions{Audiences: c.Audience, Enable: c.Enable})
	var disabled *engine.AudienceDisabledError
	switch {
	case errors.As(err, &disabled):
		return userError(fmt.Errorf("%w: enable it with `linkaud audiences %s enable %s`, or pass --enable", err, c.Dir, disabled.Name))
	case errors.Is(err, engine.ErrUnknownAudience):
		return userError(err)
	case err != nil:
		return infraError(err)
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for _, m := range rep.Events {
		if err := enc.Encode(dryRunEvent{Destination: m.Destination, Activation: m.Activation, Audience: m.Audience,
			Event: m.Event, MessageID: m.ID, Payload: m.Payload}); err != nil {
			return infraError(err)
		}
	}
	if err := out.Flush(); err != nil {
		return infraError(err)
	}
	if len(rep.Audiences) == 0 {
		fmt.Fprintf(os.Stderr, "no audience is enabled: enable one with `linkaud audiences %s enable NAME`, or name it with --audience and --enable\n", c.Dir)
	}
	if err := rep.WriteSummary(os.Stderr); err != nil {
		return infraError(err)
	}
	for _, a := range rep.Audiences {
		if a.Err != nil {
			return infraError(fmt.Errorf("the cycle of %s would fail", a.Name))
		}
	}
	return nil
}
