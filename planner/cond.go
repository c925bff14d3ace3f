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
	d      Dialect
	g      *dsl.Graph
	opts   Options
	n      int             // alias counter
	inline []*dsl.Audience // audiences being inlined, outermost first
}

// expr is a boolean SQL expression.
//
// DSL logic is two-valued: a comparison with a NULL operand is false. SQL's
// is three-valued, and the two agree as long as NULL only meets AND and OR
// on its way to a WHERE, where it counts as false. So the planner writes no
// NOT over anything SQL could make NULL: a negation is pushed down to the
// comparisons (De Morgan), and a negated comparison says outright what a
// NULL operand means, e.g. not (a = 'x') is (a IS NULL OR a <> 'x'). The
// only NOTs left are NOT EXISTS, NOT IN and NOT contains(…) on non-NULL
// operands. Besides being exact, this keeps COALESCE and outer references
// out of correlated subqueries, which Snowflake is picky about.
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

// scope binds the aliases a condition's columns refer to.
type scope struct {
	profile string   // the profile row
	steps   []string // the current path's step rows, by step index
	events  string   // the events row inside performed … where
}

// withStep returns a copy of s with step i bound to alias.
func (s scope) withStep(i int, alias string) scope {
	steps := make([]string, i+1)
	copy(steps, s.steps)
	steps[i] = alias
	s.steps = steps
	return s
}

func (c *compiler) alias(prefix string) string {
	c.n++
	return prefix + strconv.Itoa(c.n)
}

func (c *compiler) col(alias, name string) string { return alias + "." + c.d.Ident(name) }

func (c *compiler) table(t dsl.TableName) string {
	parts := make([]string, len(t))
	for i, p := range t {
		parts[i] = c.d.Ident(p)
	}
	return strings.Join(parts, ".")
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

// selectSQL renders SELECT sel FROM from… WHERE where….
func selectSQL(sel string, from []string, where []string) string {
	var b strings.Builder
	b.WriteString("SELECT " + sel)
	for i, f := range from {
		if i == 0 {
			b.WriteString("\nFROM " + f)
		} else {
			b.WriteString("\n" + f)
		}
	}
	for i, w := range where {
		if i == 0 {
			b.WriteString("\nWHERE " + indent(w))
		} else {
			b.WriteString("\n  AND " + indent(w))
		}
	}
	return b.String()
}

// exists is EXISTS (q), or NOT EXISTS (q) when neg is set.
func exists(q string, neg bool) expr {
	sql := "EXISTS (\n  " + indent(q) + "\n)"
	if neg {
		sql = "NOT " + sql
	}
	return expr{sql: sql}
}

func scalar(q, op, value string) expr {
	return expr{sql: "(\n  " + indent(q) + "\n) " + op + " " + value}
}

// ---- audience-level conditions ----

// cond compiles an audience-level condition over the profile row alias p,
// or its negation when neg is set.
func (c *compiler) cond(x dsl.Cond, p string, neg bool) (expr, error) {
	switch x := x.(type) {
	case *dsl.And:
		terms, err := c.conds(x.Terms, p, neg)
		if err != nil {
			return expr{}, err
		}
		if neg {
			return or(terms...), nil
		}
		return and(terms...), nil
	case *dsl.Or:
		terms, err := c.conds(x.Terms, p, neg)
		if err != nil {
			return expr{}, err
		}
		if neg {
			return and(terms...), nil
		}
		return or(terms...), nil
	case *dsl.Not:
		return c.cond(x.X, p, !neg)
	case *dsl.Path:
		if len(x.Steps) == 0 {
			return expr{}, errorAt(x, "path has no steps")
		}
		return c.stepHolds(x, 0, p, scope{profile: p}, neg)
	case *dsl.Trait:
		return c.compare(x.Compare, scope{profile: p}, neg)
	case *dsl.InAudience:
		return c.inAudience(x, p, neg)
	case *dsl.Performed:
		return c.performed(x, p, neg)
	case nil:
		return expr{}, errorAt(nil, "missing condition")
	}
	return expr{}, errorAt(x, "unsupported condition %T", x)
}

func (c *compiler) conds(xs []dsl.Cond, p string, neg bool) ([]expr, error) {
	out := make([]expr, len(xs))
	for i, x := range xs {
		e, err := c.cond(x, p, neg)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

func (c *compiler) inAudience(x *dsl.InAudience, p string, neg bool) (expr, error) {
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
		e, err := c.cond(a.Match, p, neg)
		c.inline = c.inline[:len(c.inline)-1]
		return e, err
	}
	m := c.g.Memberships
	if m == nil {
		return expr{}, errorAt(x, "audience %s is not defined and the graph declares no memberships table", x.Name)
	}
	name, err := c.str(x, x.Name)
	if err != nil {
		return expr{}, err
	}
	t := c.alias("m")
	return exists(selectSQL("1", []string{c.table(m.Table) + " AS " + t}, []string{
		c.col(t, m.ProfileColumn) + " = " + c.col(p, c.g.Profile.Key),
		c.col(t, m.AudienceColumn) + " = " + name,
	}), neg), nil
}

func (c *compiler) performed(x *dsl.Performed, p string, neg bool) (expr, error) {
	ev := c.g.Events
	if ev == nil {
		return expr{}, errorAt(x, "performed needs the graph's events table")
	}
	name, err := c.str(x, x.Event)
	if err != nil {
		return expr{}, err
	}
	t := c.alias("ev")
	where := []string{
		c.col(t, ev.ProfileColumn) + " = " + c.col(p, c.g.Profile.Key),
		c.col(t, ev.NameColumn) + " = " + name,
	}
	if x.Within != nil {
		w, err := c.window(x, c.col(t, ev.TimeColumn), *x.Within, false)
		if err != nil {
			return expr{}, err
		}
		where = append(where, w.sql)
	}
	if x.Where != nil {
		e, err := c.pred(x.Where, scope{profile: p, events: t}, false)
		if err != nil {
			return expr{}, err
		}
		where = append(where, conjuncts(e)...)
	}
	from := []string{c.table(ev.Table) + " AS " + t}
	return quantified(x.Quant, "COUNT(*)", from, where, neg), nil
}

// quantified tests a quantifier (or its negation) over the rows of
// FROM … WHERE …, counting them with count. EXISTS is preferred where it
// decides the quantifier: it is a semi-join, which stops at the first row.
func quantified(q dsl.Quant, count string, from, where []string, neg bool) expr {
	switch {
	case q.Kind == dsl.AtLeast && q.N == 0:
		if neg {
			return falseExpr
		}
		return trueExpr
	case q.Kind == dsl.AtLeast && q.N == 1:
		return exists(selectSQL("1", from, where), neg)
	case (q.Kind == dsl.AtMost || q.Kind == dsl.Exactly) && q.N == 0:
		return exists(selectSQL("1", from, where), !neg)
	}
	op := map[dsl.QuantKind]dsl.Op{dsl.AtLeast: dsl.OpGe, dsl.AtMost: dsl.OpLe, dsl.Exactly: dsl.OpEq}[q.Kind]
	if neg {
		op = negated[op]
	}
	return scalar(selectSQL(count, from, where), sqlOp(op), strconv.FormatInt(q.N, 10))
}

// negated is the complement of each ordering operator, for values that
// are never NULL (counts) or known not to be.
var negated = map[dsl.Op]dsl.Op{
	dsl.OpEq: dsl.OpNe, dsl.OpNe: dsl.OpEq,
	dsl.OpLt: dsl.OpGe, dsl.OpGe: dsl.OpLt,
	dsl.OpLe: dsl.OpGt, dsl.OpGt: dsl.OpLe,
}

// ---- paths ----

// childForm says how a junction is joined when listing a row's children.
type childForm int

const (
	// joinChildren joins the junction; a child listed twice appears
	// twice, which EXISTS and COUNT(DISTINCT key) do not mind.
	joinChildren childForm = iota
	// semiChildren tests the junction with EXISTS, so each child row
	// appears once: needed by sum and avg.
	semiChildren
)

// children lists the matching rows of step i whose parent row is the alias
// parent: FROM and WHERE of a subquery, and the alias of the step's row.
// A row matches when its key is not NULL, it passes the step's where, and
// the next step's quantifier or having holds over its own matching rows.
func (c *compiler) children(path *dsl.Path, i int, parent string, sc scope, form childForm) (alias string, from, where []string, err error) {
	st := path.Steps[i]
	if st.Entity == nil || st.Rel == nil {
		return "", nil, nil, errorAt(st, "step %d of the path is not resolved", i+1)
	}
	alias = c.alias("t")
	sc = sc.withStep(i, alias)
	table := c.table(st.Entity.Table) + " AS " + alias
	rel := st.Rel
	where = []string{c.col(alias, st.Entity.Key) + " IS NOT NULL"}
	switch {
	case rel.Through == nil:
		from = []string{table}
		where = append(where, c.pairs(rel.On, parent, alias)...)
	case form == joinChildren:
		j := c.alias("j")
		from = []string{c.table(rel.Through.Table) + " AS " + j,
			"JOIN " + table + " ON " + strings.Join(c.pairs(rel.ThroughOn, j, alias), " AND ")}
		where = append(where, c.pairs(rel.On, parent, j)...)
	default:
		j := c.alias("j")
		from = []string{table}
		on := append(c.pairs(rel.On, parent, j), c.pairs(rel.ThroughOn, j, alias)...)
		where = append(where, exists(selectSQL("1", []string{c.table(rel.Through.Table) + " AS " + j}, on), false).sql)
	}
	if st.Where != nil {
		e, err := c.pred(st.Where, sc, false)
		if err != nil {
			return "", nil, nil, err
		}
		where = append(where, conjuncts(e)...)
	}
	if i+1 < len(path.Steps) {
		e, err := c.stepHolds(path, i+1, alias, sc, false)
		if err != nil {
			return "", nil, nil, err
		}
		where = append(where, conjuncts(e)...)
	}
	return alias, from, where, nil
}

// pairs equates the join columns of the upper and lower aliases.
func (c *compiler) pairs(ps []dsl.JoinPair, upper, lower string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = c.col(lower, p.Lower) + " = " + c.col(upper, p.Upper)
	}
	return out
}

// stepHolds is step i's quantifier or having over the matching rows of
// step i under the row alias parent, or its negation when neg is set.
func (c *compiler) stepHolds(path *dsl.Path, i int, parent string, sc scope, neg bool) (expr, error) {
	st := path.Steps[i]
	h := st.Having
	if h == nil {
		if st.Quant.Kind == dsl.AtLeast && st.Quant.N == 0 {
			return quantified(st.Quant, "", nil, nil, neg), nil
		}
		alias, from, where, err := c.children(path, i, parent, sc, joinChildren)
		if err != nil {
			return expr{}, err
		}
		return quantified(st.Quant, "COUNT(DISTINCT "+c.col(alias, st.Entity.Key)+")", from, where, neg), nil
	}
	if h.Func == dsl.AggCount {
		n, err := countValue(h)
		if err != nil {
			return expr{}, err
		}
		// having count OP N compares the same count as a quantifier.
		alias, from, where, err := c.children(path, i, parent, sc, joinChildren)
		if err != nil {
			return expr{}, err
		}
		op := h.Op
		if neg {
			op = negated[op]
		}
		return scalar(selectSQL("COUNT(DISTINCT "+c.col(alias, st.Entity.Key)+")", from, where), sqlOp(op), strconv.FormatInt(n, 10)), nil
	}
	v, err := c.number(h, h.Value.Text)
	if err != nil {
		return expr{}, err
	}
	if h.Column == "" {
		return expr{}, errorAt(h, "%s needs a column", h.Func)
	}
	alias, from, where, err := c.children(path, i, parent, sc, semiChildren)
	if err != nil {
		return expr{}, err
	}
	fn := map[dsl.AggFunc]string{dsl.AggSum: "SUM", dsl.AggMin: "MIN", dsl.AggMax: "MAX", dsl.AggAvg: "AVG"}[h.Func]
	op := sqlOp(h.Op)
	if fn == "" || op == "" {
		return expr{}, errorAt(h, "unsupported having %s … %s", h.Func, h.Op)
	}
	// An aggregate without GROUP BY yields one row, which HAVING keeps only
	// when the comparison is true: over no rows (or only NULLs) the
	// aggregate is NULL and the row goes, so the EXISTS is false, as
	// DESIGN.md says, and its negation exact.
	q := selectSQL("1", from, where) + "\nHAVING " + fn + "(" + c.col(alias, h.Column) + ") " + op + " " + v
	return exists(q, neg), nil
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
func (c *compiler) pred(x dsl.Pred, sc scope, neg bool) (expr, error) {
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

func (c *compiler) preds(xs []dsl.Pred, sc scope, neg bool) ([]expr, error) {
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

// column is the SQL of a column reference in scope sc.
func (c *compiler) column(r *dsl.ColumnRef, sc scope) (string, error) {
	if r == nil {
		return "", errorAt(nil, "missing column")
	}
	var alias string
	switch r.Source {
	case dsl.SourceTrait:
		alias = sc.profile
	case dsl.SourceEvents:
		alias = sc.events
	case dsl.SourceStep:
		if r.StepIndex >= 0 && r.StepIndex < len(sc.steps) {
			alias = sc.steps[r.StepIndex]
		}
	}
	if alias == "" {
		return "", errorAt(r, "%s is not in scope here", r)
	}
	return c.col(alias, r.Column), nil
}

// compare compiles a comparison, or its negation when neg is set. The
// comparison itself may be NULL when an operand is (false at a WHERE); the
// negation is exact: true when an operand is NULL.
func (c *compiler) compare(x *dsl.Compare, sc scope, neg bool) (expr, error) {
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
	case dsl.OpBefore:
		return either(col+" < "+operand, col+" >= "+operand), nil
	case dsl.OpAfter:
		return either(col+" > "+operand, col+" <= "+operand), nil
	}
	op := sqlOp(x.Op)
	if op == "" {
		return expr{}, errorAt(x, "unsupported operator %s", x.Op)
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
	from, to := c.d.Timestamp(now.Add(-w.Duration())), c.d.Timestamp(now)
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
