package randgen

// Shrinks returns smaller variants of c, conditions before data, larger
// steps first: a failing case is shrunk by taking, repeatedly, the first
// variant that still fails (see Shrink). Variants share unchanged parts
// with c; c itself is not modified.
func (c *Case) Shrinks() []*Case {
	var out []*Case
	// Parts of the graph: an entity with its relationships, the
	// memberships or events table (variants the audiences still need fail
	// to check and are passed over).
	for _, e := range c.Graph.Entities {
		out = append(out, c.withGraph(func(g *Graph) {
			var ents []*Entity
			for _, x := range g.Entities {
				if x.Name != e.Name {
					ents = append(ents, x)
				}
			}
			var rels []*Rel
			for _, r := range g.Rels {
				if r.From.Name != e.Name && r.To.Name != e.Name {
					rels = append(rels, r)
				}
			}
			g.Entities, g.Rels = ents, rels
		}))
	}
	if c.Graph.Memberships != nil {
		out = append(out, c.withGraph(func(g *Graph) { g.Memberships = nil }))
	}
	if c.Graph.Events != nil {
		out = append(out, c.withGraph(func(g *Graph) { g.Events = nil }))
	}
	// Conditions of the target.
	for _, m := range condVariants(c.Target.Match) {
		d := *c
		t := *c.Target
		t.Match = m
		d.Target = &t
		out = append(out, &d)
	}
	// Helpers: simplify each, or replace `in audience` of it by nothing
	// (the target's variants above already drop terms).
	for i, h := range c.Helpers {
		for _, m := range condVariants(h.Match) {
			d := *c
			d.Helpers = append([]*Audience(nil), c.Helpers...)
			nh := *h
			nh.Match = m
			d.Helpers[i] = &nh
			out = append(out, &d)
		}
	}
	for i := range c.Target.Enrich {
		d := *c
		t := *c.Target
		t.Enrich = append(append([]string(nil), c.Target.Enrich[:i]...), c.Target.Enrich[i+1:]...)
		d.Target = &t
		out = append(out, &d)
	}
	// Rows: all of a table, then halves, then single rows.
	for _, t := range c.Graph.Tables() {
		n := len(t.Rows)
		if n == 0 {
			continue
		}
		out = append(out, c.withRows(t, nil))
		if n > 1 {
			out = append(out, c.withRows(t, t.Rows[:n/2]), c.withRows(t, t.Rows[n/2:]))
		}
	}
	for _, t := range c.Graph.Tables() {
		for i := range t.Rows {
			rows := append(append([][]any(nil), t.Rows[:i]...), t.Rows[i+1:]...)
			out = append(out, c.withRows(t, rows))
		}
	}
	return out
}

// withGraph is c with a copy of its graph changed by f.
func (c *Case) withGraph(f func(*Graph)) *Case {
	d := c.withRows(nil, nil)
	f(d.Graph)
	return d
}

// withRows is c with table t's rows replaced. The graph is copied, so its
// tables can differ from c's; audiences name entities only by name.
func (c *Case) withRows(t *Table, rows [][]any) *Case {
	tables := map[*Table]*Table{}
	cp := func(x *Table) *Table {
		if x == nil {
			return nil
		}
		if y, ok := tables[x]; ok {
			return y
		}
		y := *x
		if x == t {
			y.Rows = rows
		}
		tables[x] = &y
		return &y
	}
	g := *c.Graph
	ents := map[*Entity]*Entity{}
	ce := func(e *Entity) *Entity {
		if y, ok := ents[e]; ok {
			return y
		}
		y := *e
		y.Table = cp(e.Table)
		ents[e] = &y
		return &y
	}
	g.Profile = ce(c.Graph.Profile)
	g.Entities = nil
	for _, e := range c.Graph.Entities {
		g.Entities = append(g.Entities, ce(e))
	}
	g.Rels = nil
	for _, r := range c.Graph.Rels {
		y := *r
		y.From, y.To, y.Through = ce(r.From), ce(r.To), cp(r.Through)
		g.Rels = append(g.Rels, &y)
	}
	g.Memberships = cp(c.Graph.Memberships)
	g.Events = cp(c.Graph.Events)
	d := *c
	d.Graph = &g
	return &d
}

// condVariants lists conditions one simplification smaller than x.
func condVariants(x Cond) []Cond {
	var out []Cond
	switch x := x.(type) {
	case *And:
		out = append(out, x.Terms...)
		out = append(out, dropEach(x.Terms, func(ts []Cond) Cond { return &And{Terms: ts} })...)
		for i, t := range x.Terms {
			for _, v := range condVariants(t) {
				out = append(out, &And{Terms: replace(x.Terms, i, v)})
			}
		}
	case *Or:
		out = append(out, x.Terms...)
		out = append(out, dropEach(x.Terms, func(ts []Cond) Cond { return &Or{Terms: ts} })...)
		for i, t := range x.Terms {
			for _, v := range condVariants(t) {
				out = append(out, &Or{Terms: replace(x.Terms, i, v)})
			}
		}
	case *Not:
		out = append(out, x.X)
		for _, v := range condVariants(x.X) {
			out = append(out, &Not{X: v})
		}
	case *Path:
		if n := len(x.Steps); n > 1 {
			out = append(out, &Path{Steps: x.Steps[:n-1]})
		}
		for i, s := range x.Steps {
			for _, v := range stepVariants(s, i) {
				steps := append([]*Step(nil), x.Steps...)
				steps[i] = v
				out = append(out, &Path{Steps: steps})
			}
		}
	case *Performed:
		if x.Quant != "" {
			y := *x
			y.Quant = ""
			out = append(out, &y)
		}
		if x.Within != "" {
			y := *x
			y.Within = ""
			out = append(out, &y)
		}
		if x.Where != nil {
			y := *x
			y.Where = nil
			out = append(out, &y)
			for _, v := range predVariants(x.Where) {
				y := *x
				y.Where = v
				out = append(out, &y)
			}
		}
	}
	return out
}

func stepVariants(s *Step, _ int) []*Step {
	var out []*Step
	if s.Quant != "" {
		y := *s
		y.Quant = ""
		out = append(out, &y)
	}
	if s.Having != "" {
		y := *s
		y.Having = ""
		out = append(out, &y)
	}
	if s.Where != nil {
		y := *s
		y.Where = nil
		out = append(out, &y)
		for _, v := range predVariants(s.Where) {
			y := *s
			y.Where = v
			out = append(out, &y)
		}
	}
	return out
}

func predVariants(p Pred) []Pred {
	var out []Pred
	switch p := p.(type) {
	case *PAnd:
		out = append(out, p.Terms...)
		for i, t := range p.Terms {
			for _, v := range predVariants(t) {
				out = append(out, &PAnd{Terms: replace(p.Terms, i, v)})
			}
		}
	case *POr:
		out = append(out, p.Terms...)
		for i, t := range p.Terms {
			for _, v := range predVariants(t) {
				out = append(out, &POr{Terms: replace(p.Terms, i, v)})
			}
		}
	case *PNot:
		out = append(out, p.X)
		for _, v := range predVariants(p.X) {
			out = append(out, &PNot{X: v})
		}
	}
	return out
}

func dropEach[T any](ts []T, mk func([]T) T) []T {
	if len(ts) <= 2 {
		return nil
	}
	var out []T
	for i := range ts {
		out = append(out, mk(append(append([]T(nil), ts[:i]...), ts[i+1:]...)))
	}
	return out
}

func replace[T any](ts []T, i int, v T) []T {
	out := append([]T(nil), ts...)
	out[i] = v
	return out
}

// Shrink returns the smallest variant of c for which fails holds (c itself
// if none does), trying at most budget variants.
func Shrink(c *Case, fails func(*Case) bool, budget int) *Case {
	for budget > 0 {
		progressed := false
		for _, v := range c.Shrinks() {
			if budget--; budget < 0 {
				break
			}
			if fails(v) {
				c = v
				progressed = true
				break
			}
		}
		if !progressed {
			break
		}
	}
	return c
}
