package planner

import (
	"errors"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/dsl"
)

// CompileWhy writes the statements that explain why one profile is, or is
// not, a member of an audience (`linkaud why`). They are the audience's own
// plan restricted to that profile: every path step is read top down from
// the profile's row through its demand relation, so each statement reads
// only the rows related to that profile, and the SQL of every condition is
// the one Compile writes. Each statement passes checkUncorrelated, like a
// plan.
//
// The condition tree is evaluated in SQL at its leaves (paths, traits,
// memberships, performed), one 0/1 column each in Why.SQL; and, or, not and
// `in audience` of a DSL audience combine their children's values, which
// is what the planner's pushed-down negations compute.
func CompileWhy(a *dsl.Audience, g *dsl.Graph, d Dialect, profile string, opts Options) (*Why, error) {
	if a == nil || g == nil || g.Profile == nil {
		return nil, errors.New("planner: no audience or graph")
	}
	if d == nil {
		return nil, errors.New("planner: no dialect")
	}
	if a.Match == nil {
		return nil, errorAt(a, "audience %s has no match condition", a.Name)
	}
	c := &compiler{d: d, g: g, opts: opts, prefix: ctePrefix(g),
		paths: map[*dsl.Path]*pathPlan{}, joined: map[joinKey]string{}, memberships: map[string]*cte{}}
	lit, err := c.str(a, profile)
	if err != nil {
		return nil, err
	}
	c.only = lit
	w := &Why{Audience: a, Profile: profile, Dialect: d.Name()}
	wc := &whyCompiler{c: c, w: w, q: &selectQuery{from: []string{c.table(g.Profile.Table) + " AS p"}}, steps: map[*dsl.Path][]*WhyStep{}}
	wc.q.where = c.profileRows("p")
	wc.col(c.d.Text(c.col("p", g.Profile.Key)))
	if w.Root, err = wc.node(a.Match, 0); err != nil {
		return nil, err
	}
	if len(wc.parts) > 0 {
		wc.evidence()
	}
	// Both statements get the whole WITH list: a relation a statement
	// does not read is not run.
	with := c.withList()
	w.SQL = with + wc.q.sql()
	if w.Evidence != "" {
		w.Evidence = with + w.Evidence
	}
	for _, s := range w.Statements() {
		if err := checkUncorrelated(s, d.BackslashEscapes()); err != nil {
			return nil, errors.New("planner: internal error: " + err.Error())
		}
	}
	return w, nil
}

// Why is what CompileWhy writes.
type Why struct {
	Audience *dsl.Audience
	Profile  string
	Dialect  string
	// SQL returns one row per row of the profile table whose key is
	// Profile (none: no such profile): its key as text at column 0, then
	// the columns the nodes name.
	SQL string
	// Evidence, when the tree has paths or performed conditions, returns
	// their rows in one statement, so that the relations restricted to
	// the profile are computed once: each row is (part, flag, slot 0 …
	// slot N-1, total, flagged), part numbering a WhyStep or WhyEvents,
	// the slots its values as text (NULL past its own), flag 1 for a
	// matching row (a counted event), total and flagged the part's
	// counts. A part's rows come matching first, then by key (events
	// newest first), at most Options.Limit of them when set.
	Evidence string
	Root     *WhyNode
}

// EvidenceSlot is the position of slot i in a row of Why.Evidence.
func EvidenceSlot(i int) int { return 2 + i }

// WhyNode is one node of the audience's condition tree.
type WhyNode struct {
	Cond dsl.Cond
	// Col is the 0/1 column of Why.SQL holding a leaf's truth; -1 for a
	// node whose value its children's give (and, or, not, a DSL audience).
	Col int
	// Values are evidence columns of Why.SQL: a trait's operands, a
	// path's count or aggregate over its first step's matching rows.
	Values   []WhyValue
	Children []*WhyNode
	// Audience is the DSL audience `in audience` inlines (its Match is
	// the one child).
	Audience *dsl.Audience
	// Steps has a path's evidence, one statement per step.
	Steps []*WhyStep
	// Events has a performed condition's evidence.
	Events *WhyEvents
}

// WhyValue is a column holding a value shown as evidence.
type WhyValue struct {
	Label string
	Col   int
}

// WhyStep is the part of Why.Evidence listing a path step's rows related
// to the profile: the rows of the step whose parents are the profile
// (first step) or rows of the step above that have a key and pass its
// where.
type WhyStep struct {
	Step *dsl.Step
	Part int
	// Slots of the part's values (EvidenceSlot gives their positions);
	// Child and ChildValue are -1 for the last step.
	Key, HasKey, Where, Child, ChildValue, Matched int
	// ChildKind says what ChildValue holds of the next step's matching
	// rows under the row: "count", "value" (the having's aggregate) or
	// "exists" (1 or 0).
	ChildKind string
	// Parent is the parent's join values (the columns of Step.Rel.On).
	Parent []int
	// Terms are the where's top-level terms (for a where that is an
	// `and`), each a 0/1 column, so a failing row says which failed.
	Terms  []WhyTerm
	Values []WhyValue
}

// WhyTerm is one term of a where.
type WhyTerm struct {
	Text string
	Col  int
}

// WhyEvents is the part of Why.Evidence listing the profile's events of a
// performed condition's name.
type WhyEvents struct {
	Part int
	// Slots: the time (NULL without a time column), whether in the
	// window and whether the where holds (-1 when the condition has
	// none), whether counted.
	Time, InWindow, Where, Counted int
}

type whyCompiler struct {
	c     *compiler
	w     *Why
	q     *selectQuery // the main statement, over the profile row p
	steps map[*dsl.Path][]*WhyStep
	// parts are the relations of Why.Evidence's parts, in part order.
	parts []*whyPart
}

// whyPart is one part of the evidence: a relation with columns f (the
// flag), oa and od (the order: ascending text, descending text), w0 … .
type whyPart struct {
	rel   *cte
	slots int
}

// col adds a column to the main statement and returns its position.
func (wc *whyCompiler) col(sql string) int {
	n := len(wc.q.cols)
	wc.q.cols = append(wc.q.cols, wc.c.as(sql, "w"+strconv.Itoa(n)))
	return n
}

func truth(x expr) string { return "CASE WHEN " + x.sql + " THEN 1 ELSE 0 END" }

func (wc *whyCompiler) node(x dsl.Cond, depth int) (*WhyNode, error) {
	c := wc.c
	n := &WhyNode{Cond: x, Col: -1}
	switch x := x.(type) {
	case *dsl.And, *dsl.Or:
		terms := condTerms(x)
		for _, t := range terms {
			k, err := wc.node(t, depth)
			if err != nil {
				return nil, err
			}
			n.Children = append(n.Children, k)
		}
	case *dsl.Not:
		k, err := wc.node(x.X, depth)
		if err != nil {
			return nil, err
		}
		n.Children = []*WhyNode{k}
	case *dsl.InAudience:
		if a := x.Audience; a != nil {
			if depth >= maxInline {
				return nil, errorAt(x, "audiences nested more than %d deep", maxInline)
			}
			if a.Match == nil {
				return nil, errorAt(x, "audience %s has no match condition", a.Name)
			}
			k, err := wc.node(a.Match, depth+1)
			if err != nil {
				return nil, err
			}
			n.Audience, n.Children = a, []*WhyNode{k}
			break
		}
		e, err := c.inAudience(x, wc.q, false)
		if err != nil {
			return nil, err
		}
		n.Col = wc.col(truth(e))
	case *dsl.Trait:
		e, err := c.compare(x.Compare, c.profileScope, false)
		if err != nil {
			return nil, err
		}
		n.Col = wc.col(truth(e))
		n.Values = append(n.Values, WhyValue{Label: "trait." + x.Compare.Column.Column, Col: wc.col(c.col("p", x.Compare.Column.Column))})
		if r := x.Compare.Ref; r != nil && r.Source == dsl.SourceTrait {
			n.Values = append(n.Values, WhyValue{Label: r.String(), Col: wc.col(c.col("p", r.Column))})
		}
	case *dsl.Path:
		if err := wc.path(n, x); err != nil {
			return nil, err
		}
	case *dsl.Performed:
		e, err := c.performed(x, wc.q, false)
		if err != nil {
			return nil, err
		}
		n.Col = wc.col(truth(e))
		if n.Events, err = wc.performed(x); err != nil {
			return nil, err
		}
	default:
		return nil, errorAt(x, "unsupported condition %T", x)
	}
	return n, nil
}

func condTerms(x dsl.Cond) []dsl.Cond {
	if a, ok := x.(*dsl.And); ok {
		return a.Terms
	}
	return x.(*dsl.Or).Terms
}

// path adds a path's truth and first-step evidence to the main statement,
// and its step statements.
func (wc *whyCompiler) path(n *WhyNode, path *dsl.Path) error {
	c := wc.c
	e, err := c.pathHolds(path, wc.q, false)
	if err != nil {
		return err
	}
	n.Col = wc.col(truth(e))
	pp := c.paths[path]
	first := pp.steps[0]
	if first.agg != nil {
		m := c.joined[joinKey{wc.q, first.agg}]
		if v := aggValueSQL(c, first, m); v != "" {
			n.Values = append(n.Values, WhyValue{Label: aggLabel(first.st), Col: wc.col(v)})
		}
	}
	if s, ok := wc.steps[path]; ok {
		n.Steps = s
		return nil
	}
	for i, sp := range pp.steps {
		var next *stepPlan
		if i+1 < len(pp.steps) {
			next = pp.steps[i+1]
		}
		st, err := wc.step(sp, next)
		if err != nil {
			return err
		}
		n.Steps = append(n.Steps, st)
	}
	wc.steps[path] = n.Steps
	return nil
}

// aggValueSQL is what a step's agg relation, joined as m, says of one
// parent's matching rows: their count or aggregate ("" for existence).
func aggValueSQL(c *compiler, sp *stepPlan, m string) string {
	switch sp.kind {
	case aggCount:
		return "COALESCE(" + c.gen(m, countName) + ", 0)"
	case aggValue:
		return c.gen(m, aggName)
	}
	return ""
}

// aggLabel names what aggValueSQL reports for step st.
func aggLabel(st *dsl.Step) string {
	if h := st.Having; h != nil && h.Func != dsl.AggCount {
		return h.Func.String() + "(" + st.Entity.Name + "." + h.Column + ")"
	}
	return "matching " + st.Entity.Name
}

// step writes the evidence statement of step sp (next is the step below).
func (wc *whyCompiler) step(sp, next *stepPlan) (*WhyStep, error) {
	c := wc.c
	ws := &WhyStep{Step: sp.st, Child: -1, ChildValue: -1}
	q := &selectQuery{}
	from, pk := c.source(sp)
	q.from = from
	var slots []string
	add := func(sql string) int {
		slots = append(slots, c.d.Text(sql))
		return len(slots) - 1
	}
	key := c.col("t", sp.st.Entity.Key)
	ws.Key = add(c.d.Text(key))
	hasKey := expr{sql: key + " IS NOT NULL"}
	ws.HasKey = add(truth(hasKey))
	for _, e := range pk {
		ws.Parent = append(ws.Parent, add(c.d.Text(e)))
	}
	where := trueExpr
	if sp.st.Where != nil {
		var err error
		if where, err = c.pred(sp.st.Where, c.stepScope(sp), false); err != nil {
			return nil, err
		}
		if a, ok := sp.st.Where.(*dsl.PredAnd); ok && len(a.Terms) > 1 {
			for _, t := range a.Terms {
				e, err := c.pred(t, c.stepScope(sp), false)
				if err != nil {
					return nil, err
				}
				ws.Terms = append(ws.Terms, WhyTerm{Text: dsl.PredString(t), Col: add(truth(e))})
			}
		}
	}
	ws.Where = add(truth(where))
	child := trueExpr
	if next != nil && next.agg != nil {
		ownCol := func(col string) string { return c.col("t", col) }
		on := c.link(next, "m", ownCol, func(x ctxItem) string { return c.carried(sp, x, "t", "d", ownCol) })
		q.from = append(q.from, "LEFT JOIN "+c.read(next.agg, "m")+" ON "+on)
		h, err := c.holds(next, "m", false, false)
		if err != nil {
			return nil, err
		}
		child = h
		v := aggValueSQL(c, next, "m")
		ws.ChildKind = map[aggKind]string{aggCount: "count", aggValue: "value"}[next.kind]
		if v == "" {
			v = "CASE WHEN " + c.gen("m", pkName(0)) + " IS NULL THEN 0 ELSE 1 END"
			ws.ChildKind = "exists"
		}
		ws.ChildValue = add(v)
	}
	if next != nil {
		ws.Child = add(truth(child))
	}
	matched := truth(and(hasKey, where, child))
	ws.Matched = add(matched)
	// The values the where reads: the row's own columns and the values
	// carried down to it (a trait, a column of a step above).
	var seen []string
	for _, r := range whereColumns(sp.st.Where, nil) {
		if contains(seen, r.String()) {
			continue
		}
		seen = append(seen, r.String())
		v, err := c.stepScope(sp)(r)
		if err != nil {
			return nil, err
		}
		ws.Values = append(ws.Values, WhyValue{Label: r.String(), Col: add(v)})
	}
	ws.Part = wc.part(sp.st.Entity.Name, q, matched, c.d.Text(key), c.d.Text("NULL"), slots)
	return ws, nil
}

// part makes the relation of one evidence part from q (its FROM and
// WHERE) and returns its number.
func (wc *whyCompiler) part(label string, q *selectQuery, flag, asc, desc string, slots []string) int {
	c := wc.c
	q.cols = []string{c.as(flag, "f"), c.as(asc, "oa"), c.as(desc, "od")}
	for i, s := range slots {
		q.cols = append(q.cols, c.as(s, "w"+strconv.Itoa(i)))
	}
	wc.parts = append(wc.parts, &whyPart{rel: c.newCTE(label, "why", q.sql()), slots: len(slots)})
	return len(wc.parts) - 1
}

// evidence writes Why.Evidence: the parts' rows in one relation (UNION
// ALL, slots padded with NULL), ranked and counted per part.
func (wc *whyCompiler) evidence() {
	c := wc.c
	width := 0
	for _, p := range wc.parts {
		width = max(width, p.slots)
	}
	slot := func(i int) string { return "w" + strconv.Itoa(i) }
	var branches []string
	for k, p := range wc.parts {
		cols := []string{c.as(strconv.Itoa(k), "part"), c.gen("r", "f"), c.gen("r", "oa"), c.gen("r", "od")}
		for i := 0; i < width; i++ {
			if i < p.slots {
				cols = append(cols, c.gen("r", slot(i)))
			} else {
				cols = append(cols, c.as(c.d.Text("NULL"), slot(i)))
			}
		}
		branches = append(branches, "SELECT "+strings.Join(cols, ", ")+"\nFROM "+c.read(p.rel, "r"))
	}
	parts := c.newCTE("", "why_parts", strings.Join(branches, "\nUNION ALL\n"))
	cols := []string{c.gen("x", "part"), c.gen("x", "f")}
	for i := 0; i < width; i++ {
		cols = append(cols, c.gen("x", slot(i)))
	}
	byPart := "PARTITION BY " + c.gen("x", "part")
	ranked := c.newCTE("", "why_ranked", "SELECT "+strings.Join(cols, ", ")+
		",\n  "+c.as("ROW_NUMBER() OVER ("+byPart+" ORDER BY "+c.gen("x", "f")+" DESC, "+
		c.d.SortKey(c.gen("x", "oa"))+" NULLS LAST, "+c.gen("x", "od")+" DESC NULLS LAST)", "rn")+
		",\n  "+c.as("COUNT(*) OVER ("+byPart+")", "total")+
		",\n  "+c.as("SUM("+c.gen("x", "f")+") OVER ("+byPart+")", "flagged")+
		"\nFROM "+c.read(parts, "x"))
	out := []string{c.gen("r", "part"), c.gen("r", "f")}
	for i := 0; i < width; i++ {
		out = append(out, c.gen("r", slot(i)))
	}
	out = append(out, c.gen("r", "total"), c.gen("r", "flagged"))
	q := "SELECT " + strings.Join(out, ", ") + "\nFROM " + c.read(ranked, "r")
	if wc.c.opts.Limit > 0 {
		q += "\nWHERE " + c.gen("r", "rn") + " <= " + strconv.Itoa(wc.c.opts.Limit)
	}
	wc.w.Evidence = q + "\nORDER BY " + c.gen("r", "part") + ", " + c.gen("r", "rn")
}

// whereColumns lists the columns a where reads, in order.
func whereColumns(p dsl.Pred, out []*dsl.ColumnRef) []*dsl.ColumnRef {
	switch p := p.(type) {
	case *dsl.PredAnd:
		for _, t := range p.Terms {
			out = whereColumns(t, out)
		}
	case *dsl.PredOr:
		for _, t := range p.Terms {
			out = whereColumns(t, out)
		}
	case *dsl.PredNot:
		out = whereColumns(p.X, out)
	case *dsl.Compare:
		for _, r := range []*dsl.ColumnRef{p.Column, p.Ref} {
			if r != nil {
				out = append(out, r)
			}
		}
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// performed writes the evidence statement of a performed condition: the
// profile's events of that name, each saying whether it is in the window
// and passes the where, so whether it is counted.
func (wc *whyCompiler) performed(x *dsl.Performed) (*WhyEvents, error) {
	c := wc.c
	ev := c.g.Events
	if ev == nil {
		return nil, errorAt(x, "performed needs the graph's events table")
	}
	name, err := c.str(x, x.Event)
	if err != nil {
		return nil, err
	}
	var traits []string
	for _, r := range refsOf(x.Where, nil) {
		if r.Source == dsl.SourceTrait && !contains(traits, r.Column) {
			traits = append(traits, r.Column)
		}
	}
	q := &selectQuery{from: []string{c.table(c.g.Profile.Table) + " AS p",
		"JOIN " + c.table(ev.Table) + " AS ev ON " + c.col("ev", ev.ProfileColumn) + " = " + c.col("p", c.g.Profile.Key)}}
	q.where = append(c.profileRows("p"), c.col("ev", ev.NameColumn)+" = "+name)
	var slots []string
	add := func(sql string) int {
		slots = append(slots, c.d.Text(sql))
		return len(slots) - 1
	}
	we := &WhyEvents{Time: -1, InWindow: -1, Where: -1}
	in, pass := trueExpr, trueExpr
	timeText := c.d.Text("NULL")
	if ev.TimeColumn != "" {
		timeText = c.d.Text(c.col("ev", ev.TimeColumn))
	}
	we.Time = add(timeText)
	if x.Within != nil {
		if in, err = c.window(x, c.col("ev", ev.TimeColumn), *x.Within, false); err != nil {
			return nil, err
		}
		we.InWindow = add(truth(in))
	}
	if x.Where != nil {
		scope := func(r *dsl.ColumnRef) (string, error) {
			switch r.Source {
			case dsl.SourceEvents:
				return c.col("ev", r.Column), nil
			case dsl.SourceTrait:
				return c.col("p", r.Column), nil
			}
			return "", errorAt(r, "%s is not in scope here", r)
		}
		if pass, err = c.pred(x.Where, scope, false); err != nil {
			return nil, err
		}
		we.Where = add(truth(pass))
	}
	counted := truth(and(in, pass))
	we.Counted = add(counted)
	we.Part = wc.part("events", q, counted, c.d.Text("NULL"), timeText, slots)
	return we, nil
}

// Holds evaluates the node for one row of Why.SQL, given the truth of the
// leaf columns: and, or and not of their children, a DSL audience its
// condition.
func (n *WhyNode) Holds(leaf func(col int) bool) bool {
	if n.Col >= 0 {
		return leaf(n.Col)
	}
	switch n.Cond.(type) {
	case *dsl.And:
		for _, k := range n.Children {
			if !k.Holds(leaf) {
				return false
			}
		}
		return true
	case *dsl.Or:
		for _, k := range n.Children {
			if k.Holds(leaf) {
				return true
			}
		}
		return false
	case *dsl.Not:
		return !n.Children[0].Holds(leaf)
	}
	return n.Children[0].Holds(leaf) // in audience of a DSL audience
}

// Statements lists w's statements: SQL, then Evidence if any.
func (w *Why) Statements() []string {
	if w.Evidence == "" {
		return []string{w.SQL}
	}
	return []string{w.SQL, w.Evidence}
}
