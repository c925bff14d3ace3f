package dsl

import (
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

func (c *checker) audience(ir *Audience, a *grammar.Audience) {
	var matches []*grammar.AudienceClause
	seen := map[string]grammar.Node{}
	once := func(cl *grammar.AudienceClause, what string) bool {
		if prev, ok := seen[what]; ok {
			c.errorf(cl, "%s given twice in audience %s (first at %s)", what, ir.Name, posText(prev))
			return false
		}
		seen[what] = cl
		return true
	}
	var enrich []*grammar.Ref
	for _, cl := range a.Clauses {
		switch {
		case cl.Description != nil:
			if once(cl, "description") {
				ir.Description = cl.Description.Value()
			}
		case cl.Schedule != nil:
			if once(cl, "schedule") {
				ir.Schedule = c.schedule(cl.Schedule)
			}
		case cl.Match != nil:
			if once(cl, "match") {
				matches = append(matches, cl)
			}
		case cl.Enrich != nil:
			enrich = append(enrich, cl.Enrich...)
		}
	}
	if len(matches) == 0 {
		c.errorf(a.Name, "audience %s has no match clause", ir.Name)
		return
	}
	if c.graphBroken {
		return
	}
	s := &scope{aud: ir}
	ir.Match = c.cond(s, matches[0].Match, false)
	ir.Primary = s.primary
	if ir.Match == nil {
		// The match has errors, reported: the path enrich reads from may
		// be the one that failed, so checking enrich would only repeat it.
		return
	}
	for _, e := range enrich {
		if ref := c.enrichRef(ir, e, "enrich"); ref != nil {
			for _, prev := range ir.Enrich {
				if prev.Source == ref.Source && prev.Entity == ref.Entity && prev.Column == ref.Column && prev.StepIndex == ref.StepIndex {
					c.errorf(e, "%s enriched twice", e.String())
					ref = nil
					break
				}
			}
			if ref != nil {
				ir.Enrich = append(ir.Enrich, ref)
			}
		}
	}
}

// enrichRef resolves ENTITY.COLUMN on the primary path or trait.COLUMN.
func (c *checker) enrichRef(a *Audience, r *grammar.Ref, clause string) *ColumnRef {
	if len(r.Parts) != 2 {
		c.errorf(r, "%s takes qualified columns: ENTITY.COLUMN or trait.COLUMN", clause)
		return nil
	}
	q, col := r.Parts[0], r.Parts[1].Text
	if q.Text == "trait" {
		return &ColumnRef{Range: rng(r), Source: SourceTrait, StepIndex: -1, Entity: c.ws.Graph.Profile, Column: col}
	}
	if a.Primary == nil {
		c.errorf(q, "%s %s: audience %s has no entity path to take %s from", clause, r.String(), a.Name, q.Text)
		return nil
	}
	var names []string
	for i := len(a.Primary.Steps) - 1; i >= 0; i-- {
		st := a.Primary.Steps[i]
		if st.Entity.Name == q.Text {
			return &ColumnRef{Range: rng(r), Source: SourceStep, Step: st, StepIndex: i, Entity: st.Entity, Column: col}
		}
		names = append(names, st.Entity.Name)
	}
	d := c.errorf(q, "%s %s: %s is not on the audience's path %s", clause, r.String(), q.Text, pathText(a.Primary))
	d.Suggestion = suggest(q.Text, append(names, "trait"))
	return nil
}

func pathText(p *Path) string {
	parts := []string{"profile"}
	for _, s := range p.Steps {
		parts = append(parts, s.Entity.Name)
	}
	return strings.Join(parts, " -> ")
}
