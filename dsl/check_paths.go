package dsl

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

func (c *checker) path(s *scope, p *grammar.Path) *Path {
	g := c.ws.Graph
	if p.Root.Text != "profile" {
		if g.Entity(p.Root.Text) != nil {
			c.errorf(p.Root, "a path starts at profile: write profile -> … -> %s", p.Root.Text)
		} else {
			d := c.errorf(p.Root, "a path starts at profile, not %q", p.Root.Text)
			d.Suggestion = suggest(p.Root.Text, []string{"profile"})
		}
		return nil
	}
	if depth := len(p.Steps) + 1; depth > g.MaxDepth {
		c.errorf(p.Steps[g.MaxDepth-1].Entity, "path is %d levels deep (counting profile); the limit is %d (raise it with max_depth in the graph)", depth, g.MaxDepth)
		return nil
	}
	ir := &Path{Range: rng(p)}
	prev := g.Profile
	for i, st := range p.Steps {
		ent := g.Entity(st.Entity.Text)
		if ent == nil || ent == g.Profile {
			var cands []string
			for _, r := range g.Relationships {
				if r.From == prev {
					cands = append(cands, r.To.Name)
				}
			}
			d := c.errorf(st.Entity, "unknown entity %q", st.Entity.Text)
			d.Suggestion = suggest(st.Entity.Text, cands)
			if d.Suggestion == "" {
				d.Suggestion = suggest(st.Entity.Text, c.entityNames(g)[1:])
			}
			return nil
		}
		rel := g.Relationship(prev, ent)
		if rel == nil {
			var cands []string
			for _, r := range g.Relationships {
				if r.From == prev {
					cands = append(cands, r.To.Name)
				}
			}
			d := c.errorf(st.Entity, "no relationship %s -> %s in the graph", prev.Name, ent.Name)
			if len(cands) > 0 {
				d.Detail = fmt.Sprintf("%s leads to %s", prev.Name, strings.Join(cands, ", "))
			}
			d.Suggestion = suggest(ent.Name, cands)
			return nil
		}
		step := &Step{Range: rng(st), Entity: ent, Rel: rel, Level: i + 2, Quant: Quant{Kind: AtLeast, N: 1}}
		ir.Steps = append(ir.Steps, step)
		prev = ent
	}
	ok := true
	for i, st := range p.Steps {
		step := ir.Steps[i]
		if st.Quant != nil {
			if st.Having != nil {
				c.errorf(st.Having, "a step takes a quantifier or having, not both")
				ok = false
				continue
			}
			q, qok := c.quant(st.Quant)
			step.Quant = q
			ok = ok && qok
			if qok && q.Kind == AtLeast && q.N == 0 {
				c.warnf(st.Quant, "at least 0 always holds: this step does not restrict the audience")
			}
		}
		if st.Where != nil {
			step.Where = c.filter(&scope{aud: s.aud, path: ir, stepIndex: i}, st.Where)
			ok = ok && step.Where != nil
		}
		if st.Having != nil {
			step.Having = c.having(st.Having)
			ok = ok && step.Having != nil
		}
	}
	if !ok {
		return nil
	}
	return ir
}

func (c *checker) having(h *grammar.Having) *Having {
	funcs := map[string]AggFunc{"count": AggCount, "sum": AggSum, "min": AggMin, "max": AggMax, "avg": AggAvg}
	f, ok := funcs[h.Func.Text]
	if !ok {
		d := c.errorf(h.Func, "unknown aggregate %q: having takes count, sum, min, max or avg", h.Func.Text)
		d.Suggestion = suggest(h.Func.Text, []string{"count", "sum", "min", "max", "avg"})
		return nil
	}
	ir := &Having{Range: rng(h), Func: f}
	switch {
	case f == AggCount && h.Column != nil:
		c.errorf(h.Column, "count counts the step's matching entities: write having count >= N")
		return nil
	case f != AggCount && h.Column == nil:
		c.errorf(h.Func, "%s needs a column: having %s(COLUMN) …", f, f)
		return nil
	case h.Column != nil:
		ir.Column = h.Column.Text
	}
	op, ok := binaryOps[h.Op]
	if !ok {
		c.errorf(h, "having compares with = != < <= > >=")
		return nil
	}
	ir.Op = op
	v := h.Value
	if v.Literal == nil || v.Literal.Number == "" {
		c.errorf(v, "having compares with a number")
		return nil
	}
	if f == AggCount {
		n, ok := c.count(v.Literal)
		if !ok {
			return nil
		}
		ir.Value = Literal{Kind: LitNumber, Text: strconv.FormatInt(n, 10)}
	} else {
		ir.Value = Literal{Kind: LitNumber, Text: v.Literal.Number}
	}
	return ir
}
