package main

import (
	"errors"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
)

// byteSize is a --memory-limit value: "512MB", "2GB".
type byteSize int64

func (b *byteSize) UnmarshalText(text []byte) error {
	n, err := dsl.ParseBytes(string(text))
	if err != nil {
		return err
	}
	if n < dsl.MinMemoryLimit {
		return errors.New("below the minimum of 128MB")
	}
	*b = byteSize(n)
	return nil
}

// applyMemoryPlan gives the Go runtime its share of the budget as a soft
// limit, unless GOMEMLIMIT already sets one, and logs the division.
func applyMemoryPlan(g *Globals, p engine.MemoryPlan) {
	p.ApplyGoLimit()
	g.Logger().Debug("memory budget", "plan", p.String())
}
