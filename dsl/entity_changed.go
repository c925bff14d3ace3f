package dsl

import (
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

// entityChanged checks an entity_changed activation: it compares the named
// entity's enriched columns that the activation sends, so with none of
// them it could never send anything.
func (c *checker) entityChanged(ir *Activation, at grammar.Node) {
	if ir.Event != EntityChanged || ir.Entity == nil || ir.Audience == nil || ir.Audience.Match == nil {
		return
	}
	var enriched []string
	for _, e := range ir.Audience.Enrich {
		if e.Source == SourceStep && e.StepIndex == ir.EntityStep && e.Column != ir.Entity.Key {
			enriched = append(enriched, e.String())
		}
	}
	if len(enriched) == 0 {
		c.errorf(at, "activation %s: entity_changed %s compares the columns of %s that audience %s enriches, and it enriches none: add one (e.g. %s.COLUMN) to its enrich list",
			ir.Name, ir.Entity.Name, ir.Entity.Name, ir.Audience.Name, ir.Entity.Name)
		return
	}
	if ir.Properties == nil {
		return
	}
	for _, p := range ir.Properties {
		if p.Source == SourceStep && p.StepIndex == ir.EntityStep && p.Column != ir.Entity.Key {
			return
		}
	}
	d := c.errorf(at, "activation %s: entity_changed %s compares the columns of %s it sends, and its properties list none", ir.Name, ir.Entity.Name, ir.Entity.Name)
	d.Detail = "add one of: " + strings.Join(enriched, ", ")
}
