package dsl

import (
	"strconv"
	"strings"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

// scope is what a condition is checked in.
type scope struct {
	aud     *Audience
	primary *Path
	// path and step are set inside a step's where.
	path      *Path
	stepIndex int
	// events is set inside performed … where.
	events bool
}

func (c *checker) cond(s *scope, o *grammar.Or, negated bool) Cond {
	var terms []Cond
	for _, a := range o.Terms {
		if t := c.and(s, a, negated); t != nil {
			terms = append(terms, t)
		}
	}
	if len(terms) != len(o.Terms) {
		return nil
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return &Or{Range: rng(o), Terms: terms}
}

func (c *checker) and(s *scope, a *grammar.And, negated bool) Cond {
	var terms []Cond
	for _, u := range a.Terms {
		if t := c.unary(s, u, negated); t != nil {
			terms = append(terms, t)
		}
	}
	if len(terms) != len(a.Terms) {
		return nil
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return &And{Range: rng(a), Terms: terms}
}

func (c *checker) unary(s *scope, u *grammar.Unary, negated bool) Cond {
	if u.Not != nil {
		x := c.unary(s, u.Not, !negated)
		if x == nil {
			return nil
		}
		return &Not{Range: rng(u), X: x}
	}
	p := u.Primary
	switch {
	case p.Group != nil:
		return c.cond(s, p.Group, negated)
	case p.Trait != nil:
		cmp := c.compare(&scope{aud: s.aud, stepIndex: -1}, p.Trait, true)
		if cmp == nil {
			return nil
		}
		return &Trait{Range: rng(p), Compare: cmp}
	case p.InAudience != nil:
		return c.inAudience(s, p.InAudience, rng(p))
	case p.Performed != nil:
		return c.performed(s, p.Performed)
	case p.Path != nil:
		path := c.path(s, p.Path)
		if path != nil && !negated && s.primary == nil {
			s.primary = path
		}
		if path == nil {
			return nil
		}
		return path
	case p.Comparison != nil:
		d := c.errorf(p.Comparison.Left, "a comparison needs a subject here: write `trait %s …` for a profile trait, or put it in a path step's where", p.Comparison.Left.String())
		_ = d
		return nil
	}
	return nil
}

func (c *checker) inAudience(s *scope, n *grammar.Name, r Range) Cond {
	ir := &InAudience{Range: r, Name: n.Text}
	if a, ok := c.audByName[n.Text]; ok {
		ir.Audience = a
		if a == s.aud {
			c.errorf(n, "audience %s refers to itself", n.Text)
			return nil
		}
		for _, d := range s.aud.DependsOn {
			if d == a {
				return ir
			}
		}
		s.aud.DependsOn = append(s.aud.DependsOn, a)
		return ir
	}
	if c.ws.Graph.Memberships != nil {
		return ir // looked up in the memberships table at run time
	}
	if c.broken["audience"][n.Text] {
		return nil
	}
	var names []string
	for name := range c.audByName {
		names = append(names, name)
	}
	d := c.errorf(n, "unknown audience %q", n.Text)
	d.Suggestion = suggest(n.Text, names)
	if d.Suggestion == "" {
		d.Detail = "declare it, or declare a memberships table in the graph for audiences computed elsewhere"
	}
	return nil
}

func (c *checker) performed(s *scope, p *grammar.Performed) Cond {
	g := c.ws.Graph
	if g.Events == nil {
		c.errorf(p, "performed needs an events table: declare events { table … profile … name … time … } in the graph")
		return nil
	}
	ir := &Performed{Range: rng(p), Event: p.Event.Value(), Quant: Quant{Kind: AtLeast, N: 1}}
	if ir.Event == "" {
		c.errorf(p.Event, "performed needs an event name")
		return nil
	}
	ok := true
	if p.Quant != nil {
		q, qok := c.quant(p.Quant)
		ir.Quant, ok = q, qok
	}
	if p.Within != nil {
		w, wok := c.window(p.Within)
		ir.Within = &w
		ok = ok && wok
	}
	if p.Where != nil {
		ir.Where = c.filter(&scope{aud: s.aud, events: true, stepIndex: -1}, p.Where)
		ok = ok && ir.Where != nil
	}
	if !ok {
		return nil
	}
	return ir
}

func (c *checker) quant(q *grammar.Quant) (Quant, bool) {
	out := Quant{}
	switch q.KindText() {
	case "at least":
		out.Kind = AtLeast
	case "at most":
		out.Kind = AtMost
	case "exactly":
		out.Kind = Exactly
	}
	n, ok := c.count(q.Count)
	out.N = n
	return out, ok
}

func (c *checker) count(l *grammar.Literal) (int64, bool) {
	if l.Number == "" || strings.ContainsAny(l.Number, ".-") {
		c.errorf(l, "a count is a whole number ≥ 0, not %s", l.Text())
		return 0, false
	}
	n, err := strconv.ParseInt(l.Number, 10, 64)
	if err != nil || n > 1_000_000_000 {
		c.errorf(l, "count %s is too large", l.Number)
		return 0, false
	}
	return n, true
}

func (c *checker) window(w *grammar.Window) (Window, bool) {
	n, ok := c.count(w.Count)
	if !ok {
		return Window{}, false
	}
	if n == 0 {
		c.errorf(w.Count, "a window must be longer than 0 %s", w.Unit.Text)
		return Window{}, false
	}
	switch w.Unit.Text {
	case "day", "days":
		return Window{N: n, Unit: 24 * time.Hour}, true
	case "hour", "hours":
		return Window{N: n, Unit: time.Hour}, true
	}
	d := c.errorf(w.Unit, "unknown time unit %q: within takes days or hours", w.Unit.Text)
	d.Suggestion = suggest(w.Unit.Text, []string{"days", "hours"})
	return Window{}, false
}
