package planner

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/linkaud/linkaud/dsl"
)

// compiler writes the SQL of one audience. It is used once.
type compiler struct {
	d       Dialect
	g       *dsl.Graph
	opts    Options
	prefix  string // of the statement's relation names
	n       int    // relations made
	aliases int    // aliases made
	ctes    []*cte
	paths   map[*dsl.Path]*pathPlan
	// primary and enrich are the compiled audience's: the primary path's
	// rows expose the enrichment columns.
	primary *dsl.Path
	enrich  []*dsl.ColumnRef
	inline  []*dsl.Audience // audiences being inlined, outermost first
	// memberships holds the relation of each audience read from the
	// graph's memberships table.
	memberships map[string]*cte
	// joined caches, per SELECT, the alias an audience-level relation is
	// joined under, so a path tested twice is joined once.
	joined map[joinKey]string
	// only, when set, is the literal of the one profile key a statement is
	// restricted to (CompileWhy): every path step and event count is then
	// read top down from that profile's rows.
	only string
}

// profileRows is the WHERE of the profile rows a statement reads through
// alias p: those with a key, and with only that key when restricted.
func (c *compiler) profileRows(p string) []string {
	key := c.col(p, c.g.Profile.Key)
	if c.only == "" {
		return []string{key + " IS NOT NULL"}
	}
	return []string{key + " IS NOT NULL", c.d.Text(key) + " = " + c.only}
}

type joinKey struct {
	q   *selectQuery
	rel *cte
}

// expr is a boolean SQL expression.
//
// DSL logic is two-valued: a comparison with a NULL operand is false. SQL's
// is three-valued, and the two agree as long as NULL only meets AND and OR
// on its way to a WHERE, where it counts as false. So the planner writes no
// NOT over anything SQL could make NULL: a negation is pushed down to the
// comparisons (De Morgan), and a negated comparison says outright what a
// NULL operand means, e.g. not (a = 'x') is (a IS NULL OR a <> 'x'). The
// only NOTs left are NOT IN and NOT contains(…) on non-NULL operands.
type expr struct {
	sql string
	// and holds the terms of a top-level AND, so WHERE lists can show
	// them one per line.
	and []expr
}

var (
	trueExpr  = expr{sql: "TRUE"}
	falseExpr = expr{sql: "FALSE"}
)

// resolver is the SQL of a column reference where a condition is compiled.
type resolver func(*dsl.ColumnRef) (string, error)

func (c *compiler) alias(prefix string) string {
	c.aliases++
	return prefix + strconv.Itoa(c.aliases)
}

// ---- boolean structure ----

func and(terms ...expr) expr {
	var keep []expr
	for _, t := range terms {
		switch t.sql {
		case "TRUE":
			continue
		case "FALSE":
			return falseExpr
		}
		keep = append(keep, t)
	}
	return join(keep, "AND", trueExpr)
}

func or(terms ...expr) expr {
	var keep []expr
	for _, t := range terms {
		switch t.sql {
		case "FALSE":
			continue
		case "TRUE":
			return trueExpr
		}
		keep = append(keep, t)
	}
	return join(keep, "OR", falseExpr)
}

func join(terms []expr, op string, empty expr) expr {
	switch len(terms) {
	case 0:
		return empty
	case 1:
		return terms[0]
	}
	out := expr{}
	parts := make([]string, len(terms))
	multi := false
	width := 0
	for i, t := range terms {
		parts[i] = t.sql
		multi = multi || strings.Contains(t.sql, "\n")
		width += len(t.sql) + len(op) + 2
	}
	if op == "AND" {
		for _, t := range terms {
			if t.and != nil {
				out.and = append(out.and, t.and...)
			} else {
				out.and = append(out.and, t)
			}
		}
	}
	if !multi && width < 100 {
		out.sql = "(" + strings.Join(parts, " "+op+" ") + ")"
		return out
	}
	var b strings.Builder
	b.WriteString("(\n  ")
	for i, p := range parts {
		if i > 0 {
			b.WriteString("\n  " + op + " ")
		}
		b.WriteString(indent(p))
	}
	b.WriteString("\n)")
	out.sql = b.String()
	return out
}

// conjuncts splits a top-level AND into its terms, for WHERE lists.
func conjuncts(x expr) []string {
	if x.sql == "TRUE" {
		return nil
	}
	if x.and == nil {
		return []string{x.sql}
	}
	out := make([]string, len(x.and))
	for i, t := range x.and {
		out[i] = t.sql
	}
	return out
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }

// ---- audience-level conditions ----

// The audience-level condition is evaluated over the profile table's rows
// (alias p) in one SELECT: each path, `in audience` of the memberships
// table and `performed` is a relation with one row per profile (or per
// parent join value), LEFT JOINed to it, and the condition is a boolean
// expression over the joined columns: `or` and `not` repeat nothing.

// profileScope resolves the columns an audience-level condition reads:
// traits, from the profile row p.
func (c *compiler) profileScope(r *dsl.ColumnRef) (string, error) {
	if r.Source == dsl.SourceTrait {
		return c.col("p", r.Column), nil
	}
	return "", errorAt(r, "%s is not in scope here", r)
}

// cond compiles an audience-level condition over the profile row p of q,
// or its negation when neg is set, adding the joins it needs to q.
func (c *compiler) cond(x dsl.Cond, q *selectQuery, neg bool) (expr, error) {
	switch x := x.(type) {
	case *dsl.And:
		terms, err := c.conds(x.Terms, q, neg)
		if err != nil {
			return expr{}, err
		}
		if neg {
			return or(terms...), nil
		}
		return and(terms...), nil
	case *dsl.Or:
		terms, err := c.conds(x.Terms, q, neg)
		if err != nil {
			return expr{}, err
		}
		if neg {
			return and(terms...), nil
		}
		return or(terms...), nil
	case *dsl.Not:
		return c.cond(x.X, q, !neg)
	case *dsl.Path:
		return c.pathHolds(x, q, neg)
	case *dsl.Trait:
		return c.compare(x.Compare, c.profileScope, neg)
	case *dsl.InAudience:
		return c.inAudience(x, q, neg)
	case *dsl.Performed:
		return c.performed(x, q, neg)
	case nil:
		return expr{}, errorAt(nil, "missing condition")
	}
	return expr{}, errorAt(x, "unsupported condition %T", x)
}

func (c *compiler) conds(xs []dsl.Cond, q *selectQuery, neg bool) ([]expr, error) {
	out := make([]expr, len(xs))
	for i, x := range xs {
		e, err := c.cond(x, q, neg)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// joinOnce LEFT JOINs relation rel to q under a new alias, or returns the
// alias it is joined under already.
func (c *compiler) joinOnce(q *selectQuery, rel *cte, on func(alias string) string) string {
	k := joinKey{q, rel}
	if a, ok := c.joined[k]; ok {
		return a
	}
	a := c.alias("m")
	q.from = append(q.from, "LEFT JOIN "+c.read(rel, a)+" ON "+on(a))
	c.joined[k] = a
	return a
}

// pathHolds is the test that path holds for the profile row p of q.
func (c *compiler) pathHolds(path *dsl.Path, q *selectQuery, neg bool) (expr, error) {
	pp, err := c.plan(path)
	if err != nil {
		return expr{}, err
	}
	first := pp.steps[0]
	if first.agg == nil {
		// at least 0: holds over any rows.
		return c.holds(first, "", neg, false)
	}
	upper := func(col string) string { return c.col("p", col) }
	m := c.joinOnce(q, first.agg, func(a string) string {
		return c.link(first, a, upper, func(x ctxItem) string { return c.col("p", x.ref.Column) })
	})
	return c.holds(first, m, neg, false)
}

func (c *compiler) inAudience(x *dsl.InAudience, q *selectQuery, neg bool) (expr, error) {
	if a := x.Audience; a != nil {
		for _, on := range c.inline {
			if on == a {
				return expr{}, errorAt(x, "audience reference cycle through %s", a.Name)
			}
		}
		if len(c.inline) >= maxInline {
			return expr{}, errorAt(x, "audiences nested more than %d deep", maxInline)
		}
		if a.Match == nil {
			return expr{}, errorAt(x, "audience %s has no match condition", a.Name)
		}
		// A DSL audience is its condition over the same profile row, so
		// `in audience A` always agrees with A.
		c.inline = append(c.inline, a)
		e, err := c.cond(a.Match, q, neg)
		c.inline = c.inline[:len(c.inline)-1]
		return e, err
	}
	ms := c.g.Memberships
	if ms == nil {
		return expr{}, errorAt(x, "audience %s is not defined and the graph declares no memberships table", x.Name)
	}
	name, err := c.str(x, x.Name)
	if err != nil {
		return expr{}, err
	}
	rel, ok := c.memberships[x.Name]
	if !ok {
		q := &selectQuery{
			distinct: true,
			cols:     []string{c.as(c.col("t", ms.ProfileColumn), pkName(0))},
			from:     []string{c.table(ms.Table) + " AS t"},
			where:    []string{c.col("t", ms.AudienceColumn) + " = " + name, c.col("t", ms.ProfileColumn) + " IS NOT NULL"},
		}
		if c.only != "" {
			// Restricted to one profile: its rows only.
			q.from = append(q.from, "JOIN "+c.table(c.g.Profile.Table)+" AS p ON "+c.col("t", ms.ProfileColumn)+" = "+c.col("p", c.g.Profile.Key))
			q.where = append(q.where, c.profileRows("p")...)
		}
		body := q.sql()
		rel = c.newCTE("", "memberships", body)
		c.memberships[x.Name] = rel
	}
	m := c.joinOnce(q, rel, func(a string) string {
		return c.gen(a, pkName(0)) + " = " + c.col("p", c.g.Profile.Key)
	})
	if neg {
		return expr{sql: c.gen(m, pkName(0)) + " IS NULL"}, nil
	}
	return expr{sql: c.gen(m, pkName(0)) + " IS NOT NULL"}, nil
}

// performed counts the profile's events of that name passing within and
// where, per profile key (and per trait value its where reads), in a
// relation joined to the profile row.
func (c *compiler) performed(x *dsl.Performed, q *selectQuery, neg bool) (expr, error) {
	ev := c.g.Events
	if ev == nil {
		return expr{}, errorAt(x, "performed needs the graph's events table")
	}
	qt := x.Quant
	if qt.Kind == dsl.AtLeast && qt.N == 0 {
		if neg {
			return falseExpr, nil
		}
		return trueExpr, nil
	}
	name, err := c.str(x, x.Event)
	if err != nil {
		return expr{}, err
	}
	// The traits the where reads are carried with the profile key.
	var traits []string
	if x.Where != nil {
		for _, r := range refsOf(x.Where, nil) {
			if r.Source != dsl.SourceTrait {
				return expr{}, errorAt(r, "%s is not in scope here", r)
			}
			found := false
			for _, t := range traits {
				found = found || t == r.Column
			}
			if !found {
				traits = append(traits, r.Column)
			}
		}
	}
	b := &selectQuery{}
	key := c.col("ev", ev.ProfileColumn)
	if len(traits) > 0 || c.only != "" {
		d := &selectQuery{distinct: true, from: []string{c.table(c.g.Profile.Table) + " AS p"},
			cols:  []string{c.as(c.col("p", c.g.Profile.Key), pkName(0))},
			where: c.profileRows("p")}
		for k, t := range traits {
			d.cols = append(d.cols, c.as(c.col("p", t), ctxName(k)))
		}
		demand := c.newCTE("events", "demand", d.sql())
		b.from = []string{c.read(demand, "d"), "JOIN " + c.table(ev.Table) + " AS ev ON " + key + " = " + c.gen("d", pkName(0))}
		key = c.gen("d", pkName(0))
	} else {
		b.from = []string{c.table(ev.Table) + " AS ev"}
	}
	keys := []string{key}
	b.cols = []string{c.as(key, pkName(0))}
	for k := range traits {
		keys = append(keys, c.gen("d", ctxName(k)))
		b.cols = append(b.cols, c.as(c.gen("d", ctxName(k)), ctxName(k)))
	}
	b.where = []string{key + " IS NOT NULL", c.col("ev", ev.NameColumn) + " = " + name}
	if x.Within != nil {
		w, err := c.window(x, c.col("ev", ev.TimeColumn), *x.Within, false)
		if err != nil {
			return expr{}, err
		}
		b.where = append(b.where, w.sql)
	}
	if x.Where != nil {
		scope := func(r *dsl.ColumnRef) (string, error) {
			switch r.Source {
			case dsl.SourceEvents:
				return c.col("ev", r.Column), nil
			case dsl.SourceTrait:
				for k, t := range traits {
					if t == r.Column {
						return c.gen("d", ctxName(k)), nil
					}
				}
			}
			return "", errorAt(r, "%s is not in scope here", r)
		}
		e, err := c.pred(x.Where, scope, false)
		if err != nil {
			return expr{}, err
		}
		b.addWhere(e)
	}
	existence := qt.Kind == dsl.AtLeast && qt.N == 1 || qt.Kind != dsl.AtLeast && qt.N == 0
	if existence {
		b.distinct = true
	} else {
		b.cols = append(b.cols, c.as("COUNT(*)", countName))
		b.groupBy = keys
	}
	rel := c.newCTE("", "events", b.sql())
	m := c.joinOnce(q, rel, func(a string) string {
		on := []string{c.gen(a, pkName(0)) + " = " + c.col("p", c.g.Profile.Key)}
		for k, t := range traits {
			on = append(on, c.d.NotDistinct(c.gen(a, ctxName(k)), c.col("p", t)))
		}
		return strings.Join(on, " AND ")
	})
	found := c.gen(m, pkName(0))
	switch {
	case qt.Kind == dsl.AtLeast && qt.N == 1:
		if neg {
			return expr{sql: found + " IS NULL"}, nil
		}
		return expr{sql: found + " IS NOT NULL"}, nil
	case existence: // exactly 0 times, at most 0 times
		if neg {
			return expr{sql: found + " IS NOT NULL"}, nil
		}
		return expr{sql: found + " IS NULL"}, nil
	}
	op := map[dsl.QuantKind]dsl.Op{dsl.AtLeast: dsl.OpGe, dsl.AtMost: dsl.OpLe, dsl.Exactly: dsl.OpEq}[qt.Kind]
	return c.countTest(c.gen(m, countName), false, op, qt.N, neg), nil
}

// negated is the complement of each ordering operator, for values that
// are never NULL (counts) or known not to be.
var negated = map[dsl.Op]dsl.Op{
	dsl.OpEq: dsl.OpNe, dsl.OpNe: dsl.OpEq,
	dsl.OpLt: dsl.OpGe, dsl.OpGe: dsl.OpLt,
	dsl.OpLe: dsl.OpGt, dsl.OpGt: dsl.OpLe,
}

// holdsAtZero reports whether step st's quantifier or having holds over no
// matching rows: only then can a chain stop above it, or a path hold
// without rows.
func holdsAtZero(st *dsl.Step) bool {
	h := st.Having
	if h == nil {
		return st.Quant.Holds(0)
	}
	if h.Func != dsl.AggCount {
		return false // sum/min/max/avg over no rows have no value
	}
	n, err := countValue(h)
	if err != nil {
		return true // the conservative answer; Compile reports the error
	}
	switch h.Op {
	case dsl.OpEq:
		return n == 0
	case dsl.OpNe:
		return n != 0
	case dsl.OpLt:
		return 0 < n
	case dsl.OpLe:
		return 0 <= n
	case dsl.OpGt:
		return 0 > n
	case dsl.OpGe:
		return 0 >= n
	}
	return true
}

func countValue(h *dsl.Having) (int64, error) {
	n, err := strconv.ParseInt(h.Value.Text, 10, 64)
	if err != nil {
		return 0, errorAt(h, "having count compares with a whole number, not %q", h.Value.Text)
	}
	return n, nil
}

func sqlOp(op dsl.Op) string {
	return map[dsl.Op]string{dsl.OpEq: "=", dsl.OpNe: "<>", dsl.OpLt: "<", dsl.OpLe: "<=", dsl.OpGt: ">", dsl.OpGe: ">="}[op]
}

// ---- row predicates ----

// pred compiles a row predicate in scope sc, or its negation when neg is
// set.
func (c *compiler) pred(x dsl.Pred, sc resolver, neg bool) (expr, error) {
	switch x := x.(type) {
	case *dsl.PredAnd:
		terms, err := c.preds(x.Terms, sc, neg)
		if err != nil {
			return expr{}, err
		}
		if neg {
			return or(terms...), nil
		}
		return and(terms...), nil
	case *dsl.PredOr:
		terms, err := c.preds(x.Terms, sc, neg)
		if err != nil {
			return expr{}, err
		}
		if neg {
			return and(terms...), nil
		}
		return or(terms...), nil
	case *dsl.PredNot:
		return c.pred(x.X, sc, !neg)
	case *dsl.Compare:
		return c.compare(x, sc, neg)
	case nil:
		return expr{}, errorAt(nil, "missing predicate")
	}
	return expr{}, errorAt(x, "unsupported predicate %T", x)
}

func (c *compiler) preds(xs []dsl.Pred, sc resolver, neg bool) ([]expr, error) {
	out := make([]expr, len(xs))
	for i, x := range xs {
		e, err := c.pred(x, sc, neg)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// column is the SQL of a column reference where sc resolves.
func (c *compiler) column(r *dsl.ColumnRef, sc resolver) (string, error) {
	if r == nil {
		return "", errorAt(nil, "missing column")
	}
	return sc(r)
}

// compare compiles a comparison, or its negation when neg is set. The
// comparison itself may be NULL when an operand is (false at a WHERE); the
// negation is exact: true when an operand is NULL.
func (c *compiler) compare(x *dsl.Compare, sc resolver, neg bool) (expr, error) {
	if x == nil {
		return expr{}, errorAt(nil, "missing comparison")
	}
	col, err := c.column(x.Column, sc)
	if err != nil {
		return expr{}, err
	}
	// nulls lists the operands whose NULL makes the comparison false.
	nulls := []string{col}
	either := func(pos, negSQL string) expr {
		if !neg {
			return expr{sql: pos}
		}
		parts := make([]string, 0, len(nulls)+1)
		for _, n := range nulls {
			parts = append(parts, n+" IS NULL")
		}
		return expr{sql: "(" + strings.Join(append(parts, negSQL), " OR ") + ")"}
	}
	switch x.Op {
	case dsl.OpIsNull, dsl.OpIsNotNull:
		if (x.Op == dsl.OpIsNull) != neg {
			return expr{sql: col + " IS NULL"}, nil
		}
		return expr{sql: col + " IS NOT NULL"}, nil
	case dsl.OpIsTrue:
		return either(col+" = TRUE", col+" = FALSE"), nil
	case dsl.OpIsFalse:
		return either(col+" = FALSE", col+" = TRUE"), nil
	case dsl.OpIn, dsl.OpNotIn:
		if len(x.Values) == 0 {
			return expr{}, errorAt(x, "%s needs at least one value", x.Op)
		}
		vals := make([]string, len(x.Values))
		for i, v := range x.Values {
			if vals[i], err = c.literal(x, v); err != nil {
				return expr{}, err
			}
		}
		// The list holds no NULL, so IN and NOT IN are NULL only for a
		// NULL column.
		list := strings.Join(vals, ", ") + ")"
		in, notIn := col+" IN ("+list, col+" NOT IN ("+list
		if x.Op == dsl.OpNotIn {
			in, notIn = notIn, in
		}
		return either(in, notIn), nil
	case dsl.OpWithin:
		if x.Window == nil {
			return expr{}, errorAt(x, "within needs a window")
		}
		return c.window(x, col, *x.Window, neg)
	}
	var operand string
	if x.Ref != nil {
		if operand, err = c.column(x.Ref, sc); err != nil {
			return expr{}, err
		}
		nulls = append(nulls, operand)
	} else if operand, err = c.literal(x, x.Value); err != nil {
		return expr{}, err
	}
	switch x.Op {
	case dsl.OpContains, dsl.OpStartsWith, dsl.OpEndsWith:
		m := c.d.TextMatch(x.Op, col, operand)
		return either(m, "NOT "+m), nil
	case dsl.OpNotContains:
		m := c.d.TextMatch(dsl.OpContains, col, operand)
		return either("NOT "+m, m), nil
	case dsl.OpBefore, dsl.OpAfter:
		t, o := c.d.TimeValue(col), operand
		if x.Ref != nil {
			o = c.d.TimeValue(operand)
		}
		if x.Op == dsl.OpBefore {
			return either(t+" < "+o, t+" >= "+o), nil
		}
		return either(t+" > "+o, t+" <= "+o), nil
	}
	op := sqlOp(x.Op)
	if op == "" {
		return expr{}, errorAt(x, "unsupported operator %s", x.Op)
	}
	switch x.Op {
	case dsl.OpLt, dsl.OpLe, dsl.OpGt, dsl.OpGe:
		// Text is ordered by its bytes, whatever the column's collation.
		return either(c.d.Order(col, op, operand), c.d.Order(col, sqlOp(negated[x.Op]), operand)), nil
	}
	return either(col+" "+op+" "+operand, col+" "+sqlOp(negated[x.Op])+" "+operand), nil
}

// window is now - N <= col <= now, with now the cycle's start (or its
// exact negation).
func (c *compiler) window(at dsl.Node, col string, w dsl.Window, neg bool) (expr, error) {
	if c.opts.Now.IsZero() {
		return expr{}, errorAt(at, "Options.Now (the cycle's start) is needed for within")
	}
	now := c.opts.Now
	// Rounded inward: for a column of microseconds, t <= now is
	// t <= floor(now), and now-N <= t is ceil(now-N) <= t.
	p := c.d.Precision()
	lo, hi := now.Add(-w.Duration()), now.Truncate(p)
	if t := lo.Truncate(p); !t.Equal(lo) {
		lo = t.Add(p)
	}
	from, to := c.d.Timestamp(lo), c.d.Timestamp(hi)
	col = c.d.TimeValue(col)
	if neg {
		return expr{sql: "(" + col + " IS NULL OR " + col + " < " + from + " OR " + col + " > " + to + ")"}, nil
	}
	return expr{sql: "(" + col + " >= " + from + " AND " + col + " <= " + to + ")"}, nil
}

// ---- literals ----

// numberRE is the language's number token; nothing else may reach the SQL
// as a bare number.
var numberRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

func (c *compiler) number(at dsl.Node, text string) (string, error) {
	if !numberRE.MatchString(text) {
		return "", errorAt(at, "invalid number %q", text)
	}
	return text, nil
}

func (c *compiler) str(at dsl.Node, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errorAt(at, "string %q is not valid UTF-8", s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", errorAt(at, "string %q contains a NUL character", s)
	}
	return c.d.String(s), nil
}

func (c *compiler) literal(at dsl.Node, v dsl.Literal) (string, error) {
	switch v.Kind {
	case dsl.LitString:
		return c.str(at, v.Text)
	case dsl.LitNumber:
		return c.number(at, v.Text)
	case dsl.LitBool:
		if v.Bool {
			return "TRUE", nil
		}
		return "FALSE", nil
	case dsl.LitDate:
		if v.Time.IsZero() {
			return "", errorAt(at, "date %q has no time", v.Text)
		}
		return c.d.Timestamp(v.Time), nil
	}
	return "", errorAt(at, "unsupported literal %s", fmt.Sprint(v.Kind))
}
