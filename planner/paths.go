package planner

import (
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/dsl"
)

// A path is computed bottom up, once per step, as two relations:
//
//   - rows (R): the step's matching rows, each with its parent's join
//     value (p0, p1, …: what the parent's upper join columns must equal),
//     the values carried down to it (x0, …), its key (k), the columns of
//     its own that others read (c0, …), and, where a chain may stop at it,
//     whether it has a matching child (h). A row matches when its key is
//     not NULL, it passes the step's where, and the next step's quantifier
//     or having holds over its own matching rows, which it reads from the
//     next step's agg relation with one join.
//   - agg (M): R grouped by (p…, x…): DISTINCT for a test of existence,
//     COUNT(DISTINCT k) for quantifiers and having count, SUM/MIN/MAX/AVG
//     of a column for the other havings. One row per parent value, so
//     joining it never multiplies the parent's rows.
//
// A where that refers to a column above its step (account.max_limit) or to
// a trait makes the step's matching rows depend on more than their
// parent's join value. Those values are carried down instead of
// correlated: the step's demand relation (D) lists, top down, every
// (parent join value, carried values) pair the parents present, the
// step's rows are computed per pair, and parents join them on both, the
// carried values with IS NOT DISTINCT FROM, since a NULL there may still
// match (not a < account.b holds when account.b is NULL).
//
// A junction's rows are deduplicated on its join columns before anything
// is counted or summed (the junction relation, J), so an entity a junction
// lists twice is one row of its parent.

// aggKind says what a step's agg relation holds.
type aggKind int

const (
	aggNone   aggKind = iota // not needed: the quantifier holds over any rows
	aggExists                // DISTINCT (p…, x…): whether there are matching rows
	aggCount                 // COUNT(DISTINCT k)
	aggValue                 // SUM, MIN, MAX or AVG of the having column
)

// ctxItem is a value a where reads from above its step: a trait, or a
// column of a higher step of the same path.
type ctxItem struct {
	id  string // identity: "t:COL" or "sJ:COL"
	ref *dsl.ColumnRef
}

func ctxID(r *dsl.ColumnRef) string {
	if r.Source == dsl.SourceTrait {
		return "t:" + r.Column
	}
	return "s" + strconv.Itoa(r.StepIndex) + ":" + r.Column
}

// pathPlan holds the relations of one path.
type pathPlan struct {
	path  *dsl.Path
	steps []*stepPlan
}

// stepPlan holds the relations of one step.
type stepPlan struct {
	st  *dsl.Step
	i   int
	ctx []ctxItem // values carried down to this step, in order x0, x1, …
	own []string  // columns of the step's row that rows exposes, c0, c1, …
	// more: rows has column h, because a chain of the primary path may
	// stop at this step.
	more bool

	demand, junction, rows, agg *cte
	kind                        aggKind
}

func (sp *stepPlan) ctxIndex(id string) int {
	for i, x := range sp.ctx {
		if x.id == id {
			return i
		}
	}
	return -1
}

// ownIndex returns the index of column col among sp.own, adding it.
func (sp *stepPlan) ownIndex(col string) int {
	for i, o := range sp.own {
		if o == col {
			return i
		}
	}
	sp.own = append(sp.own, col)
	return len(sp.own) - 1
}

// kindOf is what the parent of step st needs to know of st's matching rows.
func kindOf(st *dsl.Step) aggKind {
	if h := st.Having; h != nil {
		if h.Func == dsl.AggCount {
			return aggCount
		}
		return aggValue
	}
	switch q := st.Quant; {
	case q.Kind == dsl.AtLeast && q.N == 0:
		return aggNone
	case q.Kind == dsl.AtLeast && q.N == 1, q.Kind != dsl.AtLeast && q.N == 0:
		return aggExists
	}
	return aggCount
}

// wantsNone reports whether step st holds only over no rows (exactly 0,
// at most 0): its parent is then an anti-join, and no chain reaches st.
func wantsNone(st *dsl.Step) bool {
	return st.Having == nil && st.Quant.Kind != dsl.AtLeast && st.Quant.N == 0
}

// refsOf lists the dynamic references of a row predicate.
func refsOf(p dsl.Pred, out []*dsl.ColumnRef) []*dsl.ColumnRef {
	switch p := p.(type) {
	case *dsl.PredAnd:
		for _, t := range p.Terms {
			out = refsOf(t, out)
		}
	case *dsl.PredOr:
		for _, t := range p.Terms {
			out = refsOf(t, out)
		}
	case *dsl.PredNot:
		out = refsOf(p.X, out)
	case *dsl.Compare:
		if p.Ref != nil {
			out = append(out, p.Ref)
		}
	}
	return out
}

// plan returns the relations of path, making them on first use: a path an
// audience reaches twice (an audience included twice) is computed once.
func (c *compiler) plan(path *dsl.Path) (*pathPlan, error) {
	if pp := c.paths[path]; pp != nil {
		return pp, nil
	}
	if len(path.Steps) == 0 {
		return nil, errorAt(path, "path has no steps")
	}
	pp := &pathPlan{path: path}
	n := len(path.Steps)
	for i, st := range path.Steps {
		if st.Entity == nil || st.Rel == nil {
			return nil, errorAt(st, "step %d of the path is not resolved", i+1)
		}
		pp.steps = append(pp.steps, &stepPlan{st: st, i: i, kind: kindOf(st)})
	}

	// The values each step needs from above: what its where, or a where
	// below it, reads from a trait or a higher step.
	for k, st := range path.Steps {
		if st.Where == nil {
			continue
		}
		for _, r := range refsOf(st.Where, nil) {
			if r.Source == dsl.SourceStep && r.StepIndex == k {
				continue // a column of the row itself
			}
			if r.Source == dsl.SourceStep && (r.StepIndex < 0 || r.StepIndex > k) {
				return nil, errorAt(r, "%s is not in scope here", r)
			}
			if r.Source == dsl.SourceEvents {
				return nil, errorAt(r, "%s is not in scope here", r)
			}
			id := ctxID(r)
			top := 0
			if r.Source == dsl.SourceStep {
				top = r.StepIndex + 1
			}
			for i := top; i <= k; i++ {
				if pp.steps[i].ctxIndex(id) < 0 {
					pp.steps[i].ctx = append(pp.steps[i].ctx, ctxItem{id: id, ref: r})
				}
			}
		}
	}

	// The columns each row exposes: the next step's join values, the
	// values it hands down, the having column, and the primary path's
	// enrichment.
	for i, sp := range pp.steps {
		if i+1 < n {
			next := pp.steps[i+1]
			for _, p := range next.st.Rel.On {
				sp.ownIndex(p.Upper)
			}
			for _, x := range next.ctx {
				if x.ref.Source == dsl.SourceStep && x.ref.StepIndex == i {
					sp.ownIndex(x.ref.Column)
				}
			}
		}
		if h := sp.st.Having; h != nil && h.Func != dsl.AggCount {
			if h.Column == "" {
				return nil, errorAt(h, "%s needs a column", h.Func)
			}
			sp.ownIndex(h.Column)
		}
	}
	if path == c.primary {
		for _, r := range c.enrich {
			if r.Source == dsl.SourceStep && r.StepIndex >= 0 && r.StepIndex < n {
				pp.steps[r.StepIndex].ownIndex(r.Column)
			}
		}
		for k := 0; k+1 < n; k++ {
			// A chain may stop at k when the next step holds over no
			// rows; with an anti-join it always does.
			if holdsAtZero(pp.steps[k+1].st) && !wantsNone(pp.steps[k+1].st) {
				pp.steps[k].more = true
			}
		}
	}

	// Top down: the demand of every step that carries values.
	for _, sp := range pp.steps {
		if len(sp.ctx) == 0 && c.only == "" {
			continue // a restricted statement reads every step through its demand
		}
		var err error
		if sp.demand, err = c.demand(pp, sp); err != nil {
			return nil, err
		}
	}
	// Bottom up: rows, then agg, of each step.
	for i := n - 1; i >= 0; i-- {
		sp := pp.steps[i]
		var next *stepPlan
		if i+1 < n {
			next = pp.steps[i+1]
		}
		body, err := c.stepRows(sp, next)
		if err != nil {
			return nil, err
		}
		sp.rows = c.newCTE(sp.st.Entity.Name, "rows", body)
		if sp.kind != aggNone || i > 0 && pp.steps[i-1].more {
			if err := c.makeAgg(sp); err != nil {
				return nil, err
			}
		}
	}
	c.paths[path] = pp
	return pp, nil
}

// junctionOf is the junction of step sp's relationship deduplicated on the
// columns the joins use: l0, … (equal to the parent's upper columns) and
// u0, … (equal to the child's lower columns).
func (c *compiler) junctionOf(sp *stepPlan) *cte {
	if sp.junction != nil {
		return sp.junction
	}
	rel := sp.st.Rel
	q := &selectQuery{distinct: true, from: []string{c.table(rel.Through.Table) + " AS j"}}
	for i, p := range rel.On {
		q.cols = append(q.cols, c.as(c.col("j", p.Lower), "l"+strconv.Itoa(i)))
		q.where = append(q.where, c.col("j", p.Lower)+" IS NOT NULL")
	}
	for i, p := range rel.ThroughOn {
		q.cols = append(q.cols, c.as(c.col("j", p.Upper), "u"+strconv.Itoa(i)))
		q.where = append(q.where, c.col("j", p.Upper)+" IS NOT NULL")
	}
	if c.only != "" && sp.demand != nil {
		// Restricted to one profile: only the junction rows of the
		// parents it reaches.
		var on []string
		for i, p := range rel.On {
			on = append(on, c.col("j", p.Lower)+" = "+c.gen("d", pkName(i)))
		}
		q.from = append(q.from, "JOIN "+c.read(sp.demand, "d")+" ON "+strings.Join(on, " AND "))
	}
	sp.junction = c.newCTE(sp.st.Entity.Name, "junction", q.sql())
	return sp.junction
}

// source is the FROM list of step sp's rows (alias t) with their parent's
// join values: read from the demand (alias d) when the step carries
// values, through the deduplicated junction (alias j) when it has one.
// It returns the expressions of the parent's join values, p0, ….
func (c *compiler) source(sp *stepPlan) (from, pk []string) {
	rel := sp.st.Rel
	table := c.table(sp.st.Entity.Table) + " AS t"
	var on []string
	if rel.Through == nil {
		for i, p := range rel.On {
			pk = append(pk, c.col("t", p.Lower))
			if sp.demand != nil {
				on = append(on, c.col("t", p.Lower)+" = "+c.gen("d", pkName(i)))
			}
		}
		if sp.demand == nil {
			return []string{table}, pk
		}
		return []string{c.read(sp.demand, "d"), "JOIN " + table + " ON " + strings.Join(on, " AND ")}, c.genList("d", pkName, len(rel.On))
	}
	j := c.junctionOf(sp)
	var down []string
	for i, p := range rel.ThroughOn {
		down = append(down, c.col("t", p.Lower)+" = "+c.gen("j", "u"+strconv.Itoa(i)))
	}
	if sp.demand == nil {
		for i := range rel.On {
			pk = append(pk, c.gen("j", "l"+strconv.Itoa(i)))
		}
		return []string{c.read(j, "j"), "JOIN " + table + " ON " + strings.Join(down, " AND ")}, pk
	}
	for i := range rel.On {
		on = append(on, c.gen("j", "l"+strconv.Itoa(i))+" = "+c.gen("d", pkName(i)))
	}
	return []string{c.read(sp.demand, "d"),
		"JOIN " + c.read(j, "j") + " ON " + strings.Join(on, " AND "),
		"JOIN " + table + " ON " + strings.Join(down, " AND ")}, c.genList("d", pkName, len(rel.On))
}

func (c *compiler) genList(alias string, name func(int) string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = c.gen(alias, name(i))
	}
	return out
}

// stepScope resolves the columns a where of step sp reads, inside a SELECT
// over source(sp): the row's own columns from t, carried values from d.
func (c *compiler) stepScope(sp *stepPlan) resolver {
	return func(r *dsl.ColumnRef) (string, error) {
		if r.Source == dsl.SourceStep && r.StepIndex == sp.i {
			return c.col("t", r.Column), nil
		}
		if r.Source != dsl.SourceEvents {
			if k := sp.ctxIndex(ctxID(r)); k >= 0 {
				return c.gen("d", ctxName(k)), nil
			}
		}
		return "", errorAt(r, "%s is not in scope here", r)
	}
}

// matchesHere adds to q, a SELECT over source(sp), that the row has a key
// and passes the step's where.
func (c *compiler) matchesHere(q *selectQuery, sp *stepPlan) error {
	q.where = append(q.where, c.col("t", sp.st.Entity.Key)+" IS NOT NULL")
	if sp.st.Where == nil {
		return nil
	}
	x, err := c.pred(sp.st.Where, c.stepScope(sp), false)
	if err != nil {
		return err
	}
	q.addWhere(x)
	return nil
}

// carried is the value of carried item x for the rows of step sp, which
// is a column of sp's row or a value carried down to sp.
func (c *compiler) carried(sp *stepPlan, x ctxItem, t, d string, ownCol func(string) string) string {
	if x.ref.Source == dsl.SourceStep && x.ref.StepIndex == sp.i {
		return ownCol(x.ref.Column)
	}
	return c.gen(d, ctxName(sp.ctxIndex(x.id)))
}

// demand lists the (parent join value, carried values) pairs the parents
// of step sp present: from the profile table for the first step, else from
// the rows of the step above that have a key and pass its where.
func (c *compiler) demand(pp *pathPlan, sp *stepPlan) (*cte, error) {
	q := &selectQuery{distinct: true}
	if sp.i == 0 {
		q.from = []string{c.table(c.g.Profile.Table) + " AS p"}
		q.where = append(q.where, c.profileRows("p")...)
		for i, p := range sp.st.Rel.On {
			q.cols = append(q.cols, c.as(c.col("p", p.Upper), pkName(i)))
			q.where = append(q.where, c.col("p", p.Upper)+" IS NOT NULL")
		}
		for k, x := range sp.ctx {
			q.cols = append(q.cols, c.as(c.col("p", x.ref.Column), ctxName(k)))
		}
		return c.newCTE(sp.st.Entity.Name, "demand", q.sql()), nil
	}
	up := pp.steps[sp.i-1]
	if up.demand != nil {
		q.from, _ = c.source(up)
	} else {
		// Every row of the step above is a superset of its matching ones.
		q.from = []string{c.table(up.st.Entity.Table) + " AS t"}
	}
	if err := c.matchesHere(q, up); err != nil {
		return nil, err
	}
	for i, p := range sp.st.Rel.On {
		q.cols = append(q.cols, c.as(c.col("t", p.Upper), pkName(i)))
		q.where = append(q.where, c.col("t", p.Upper)+" IS NOT NULL")
	}
	for k, x := range sp.ctx {
		v := c.carried(up, x, "t", "d", func(col string) string { return c.col("t", col) })
		q.cols = append(q.cols, c.as(v, ctxName(k)))
	}
	return c.newCTE(sp.st.Entity.Name, "demand", q.sql()), nil
}

// stepRows is the body of step sp's rows relation; next is the step below
// (nil for the last), whose agg relation exists.
func (c *compiler) stepRows(sp, next *stepPlan) (string, error) {
	q := &selectQuery{}
	from, pk := c.source(sp)
	q.from = from
	for i, e := range pk {
		q.cols = append(q.cols, c.as(e, pkName(i)))
	}
	for k := range sp.ctx {
		q.cols = append(q.cols, c.as(c.gen("d", ctxName(k)), ctxName(k)))
	}
	q.cols = append(q.cols, c.as(c.col("t", sp.st.Entity.Key), keyName))
	if err := c.matchesHere(q, sp); err != nil {
		return "", err
	}
	if next != nil && next.agg != nil {
		inner := !holdsAtZero(next.st)
		join := "LEFT JOIN "
		if inner {
			join = "JOIN "
		}
		ownCol := func(col string) string { return c.col("t", col) }
		on := c.link(next, "m", ownCol, func(x ctxItem) string { return c.carried(sp, x, "t", "d", ownCol) })
		q.from = append(q.from, join+c.read(next.agg, "m")+" ON "+on)
		h, err := c.holds(next, "m", false, inner)
		if err != nil {
			return "", err
		}
		q.addWhere(h)
		if sp.more {
			q.cols = append(q.cols, c.as("CASE WHEN "+c.gen("m", pkName(0))+" IS NULL THEN 0 ELSE 1 END", moreName))
		}
	}
	for k, col := range sp.own {
		q.cols = append(q.cols, c.as(c.col("t", col), ownName(k)))
	}
	return q.sql(), nil
}

// makeAgg adds step sp's agg relation over its rows.
func (c *compiler) makeAgg(sp *stepPlan) error {
	kind := sp.kind
	if kind == aggNone {
		kind = aggExists // only whether a chain stops above
	}
	q := &selectQuery{from: []string{c.read(sp.rows, "r")}}
	var keys []string
	for i := range sp.st.Rel.On {
		keys = append(keys, c.gen("r", pkName(i)))
		q.cols = append(q.cols, c.as(c.gen("r", pkName(i)), pkName(i)))
	}
	for k := range sp.ctx {
		keys = append(keys, c.gen("r", ctxName(k)))
		q.cols = append(q.cols, c.as(c.gen("r", ctxName(k)), ctxName(k)))
	}
	switch kind {
	case aggExists:
		q.distinct = true
	case aggCount:
		q.cols = append(q.cols, c.as("COUNT(DISTINCT "+c.gen("r", keyName)+")", countName))
		q.groupBy = keys
	case aggValue:
		h := sp.st.Having
		fn := map[dsl.AggFunc]string{dsl.AggSum: "SUM", dsl.AggMin: "MIN", dsl.AggMax: "MAX", dsl.AggAvg: "AVG"}[h.Func]
		if fn == "" {
			return errorAt(h, "unsupported having %s", h.Func)
		}
		q.cols = append(q.cols, c.as(fn+"("+c.gen("r", ownName(sp.ownIndex(h.Column)))+")", aggName))
		q.groupBy = keys
	}
	sp.agg = c.newCTE(sp.st.Entity.Name, "agg", q.sql())
	sp.kind = kind
	return nil
}

// link is the ON condition joining relation alias r (rows or agg of step
// sp) to its parent row: the join values equal the parent's upper join
// columns, and the carried values the parent's, NULL matching NULL.
func (c *compiler) link(sp *stepPlan, r string, upper func(col string) string, value func(ctxItem) string) string {
	var on []string
	for i, p := range sp.st.Rel.On {
		on = append(on, c.gen(r, pkName(i))+" = "+upper(p.Upper))
	}
	for k, x := range sp.ctx {
		on = append(on, c.d.NotDistinct(c.gen(r, ctxName(k)), value(x)))
	}
	return strings.Join(on, " AND ")
}

// holds is the test that step sp's quantifier or having holds over the
// matching rows its agg relation, joined as alias m, reports for one
// parent, or its negation when neg is set. With a LEFT JOIN, m's columns
// are NULL for a parent without matching rows; inner says the join was an
// inner one (the parent has some).
func (c *compiler) holds(sp *stepPlan, m string, neg, inner bool) (expr, error) {
	st := sp.st
	found := c.gen(m, pkName(0))
	if h := st.Having; h != nil {
		if h.Func == dsl.AggCount {
			n, err := countValue(h)
			if err != nil {
				return expr{}, err
			}
			return c.countTest(c.gen(m, countName), inner, h.Op, n, neg), nil
		}
		v, err := c.literal(h, h.Value)
		if err != nil {
			return expr{}, err
		}
		op := h.Op
		a := c.gen(m, aggName)
		// Over no rows, or only NULLs, the aggregate has no value and the
		// comparison is false; its negation is exact.
		if neg {
			return expr{sql: "(" + a + " IS NULL OR " + a + " " + sqlOp(negated[op]) + " " + v + ")"}, nil
		}
		return expr{sql: a + " " + sqlOp(op) + " " + v}, nil
	}
	q := st.Quant
	switch {
	case q.Kind == dsl.AtLeast && q.N == 0:
		if neg {
			return falseExpr, nil
		}
		return trueExpr, nil
	case q.Kind == dsl.AtLeast && q.N == 1:
		if inner && !neg {
			return trueExpr, nil
		}
		if neg {
			return expr{sql: found + " IS NULL"}, nil
		}
		return expr{sql: found + " IS NOT NULL"}, nil
	case q.N == 0: // exactly 0, at most 0
		if neg {
			return expr{sql: found + " IS NOT NULL"}, nil
		}
		return expr{sql: found + " IS NULL"}, nil
	}
	op := map[dsl.QuantKind]dsl.Op{dsl.AtLeast: dsl.OpGe, dsl.AtMost: dsl.OpLe, dsl.Exactly: dsl.OpEq}[q.Kind]
	return c.countTest(c.gen(m, countName), inner, op, q.N, neg), nil
}

// countTest compares a count from a (LEFT) joined agg relation, which is
// NULL for no rows: that is a count of 0.
func (c *compiler) countTest(count string, inner bool, op dsl.Op, n int64, neg bool) expr {
	if neg {
		op = negated[op]
	}
	if !inner {
		count = "COALESCE(" + count + ", 0)"
	}
	return expr{sql: count + " " + sqlOp(op) + " " + strconv.FormatInt(n, 10)}
}
