package refeval

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// Table is an in-memory table: column names and rows of values.
type Table struct {
	Columns []string
	Rows    [][]any
}

// DB holds tables by name, as dsl.TableName.String() spells them ("S.T");
// names and columns are matched case-insensitively, like unquoted SQL
// identifiers.
type DB map[string]*Table

// Row is one result row: the profile's key as text, the key of each step of
// the primary path as text (nil where the chain stops), and the enrichment
// values in Audience.Enrich order.
type Row struct {
	ProfileKey string
	Keys       []*string
	Enrich     []any
}

// Evaluate returns the rows of audience a over db at time now, distinct and
// ordered by profile key then entity keys (byte order, NULL first).
func Evaluate(a *dsl.Audience, g *dsl.Graph, db DB, now time.Time) ([]Row, error) {
	e := &evaluator{g: g, db: db, now: now, index: map[string]map[string][]int{}}
	rows := e.audience(a)
	if e.err != nil {
		return nil, e.err
	}
	return rows, nil
}

// Members returns the distinct profile keys of rows, in order.
func Members(rows []Row) []string {
	var out []string
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1] != r.ProfileKey {
			out = append(out, r.ProfileKey)
		}
	}
	return out
}

type evaluator struct {
	g     *dsl.Graph
	db    DB
	now   time.Time
	err   error
	stack []*dsl.Audience
	// index[table/columns][tuple] lists the rows of a table whose columns
	// hold that tuple of non-NULL values.
	index map[string]map[string][]int
}

func (e *evaluator) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("refeval: "+format, args...)
	}
}

// rec is one row of one table.
type rec struct {
	t   *Table
	row []any
	idx int
}

func (r rec) get(e *evaluator, col string) any {
	for i, c := range r.t.Columns {
		if strings.EqualFold(c, col) {
			return r.row[i]
		}
	}
	e.fail("no column %q", col)
	return nil
}

func (e *evaluator) table(name dsl.TableName) *Table {
	want := name.String()
	for n, t := range e.db {
		if strings.EqualFold(n, want) {
			return t
		}
	}
	e.fail("no table %s", want)
	return &Table{}
}

// binding is what a condition can see: the profile row, the rows of the
// current path's steps bound so far, and the event row.
type binding struct {
	profile rec
	steps   []rec
	event   rec
}

func (b binding) with(i int, r rec) binding {
	steps := make([]rec, i+1)
	copy(steps, b.steps)
	steps[i] = r
	b.steps = steps
	return b
}

// ---- members and rows ----

func (e *evaluator) audience(a *dsl.Audience) []Row {
	pt := e.table(e.g.Profile.Table)
	var out []Row
	for i, row := range pt.Rows {
		p := rec{t: pt, row: row, idx: i}
		key := p.get(e, e.g.Profile.Key)
		if key == nil {
			continue
		}
		if !e.cond(a.Match, p) {
			continue
		}
		pk := e.keyText(key)
		if a.Primary == nil {
			out = append(out, Row{ProfileKey: pk, Enrich: e.enrich(a, binding{profile: p}, -1)})
			continue
		}
		n := len(a.Primary.Steps)
		var chains [][]rec
		e.chains(a.Primary, 0, p, binding{profile: p}, nil, &chains)
		if len(chains) == 0 {
			out = append(out, Row{ProfileKey: pk, Keys: make([]*string, n), Enrich: e.enrich(a, binding{profile: p}, -1)})
			continue
		}
		for _, ch := range chains {
			r := Row{ProfileKey: pk, Keys: make([]*string, n)}
			b := binding{profile: p}
			for i, s := range ch {
				k := e.keyText(s.get(e, a.Primary.Steps[i].Entity.Key))
				r.Keys[i] = &k
				b = b.with(i, s)
			}
			r.Enrich = e.enrich(a, b, len(ch)-1)
			out = append(out, r)
		}
	}
	return sortRows(out)
}

// chains appends every chain of matching rows from step i down: through
// every matching child, stopping at a row that has none.
func (e *evaluator) chains(path *dsl.Path, i int, parent rec, b binding, prefix []rec, out *[][]rec) {
	for _, r := range e.matching(path, i, parent, b) {
		ch := append(append([]rec(nil), prefix...), r)
		if i+1 == len(path.Steps) {
			*out = append(*out, ch)
			continue
		}
		before := len(*out)
		e.chains(path, i+1, r, b.with(i, r), ch, out)
		if len(*out) == before {
			*out = append(*out, ch)
		}
	}
}

func (e *evaluator) enrich(a *dsl.Audience, b binding, last int) []any {
	out := make([]any, len(a.Enrich))
	for j, ref := range a.Enrich {
		switch {
		case ref.Source == dsl.SourceTrait:
			out[j] = b.profile.get(e, ref.Column)
		case ref.Source == dsl.SourceStep && ref.StepIndex <= last:
			out[j] = b.steps[ref.StepIndex].get(e, ref.Column)
		}
	}
	return out
}

func (e *evaluator) keyText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	e.fail("unsupported key type %T", v)
	return ""
}

func sortRows(rows []Row) []Row {
	sort.SliceStable(rows, func(i, j int) bool { return lessRow(rows[i], rows[j]) })
	var out []Row
	seen := map[string]bool{}
	for _, r := range rows {
		id := rowID(r)
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, r)
	}
	return out
}

// rowID identifies a row by all its values, for DISTINCT.
func rowID(r Row) string {
	var b strings.Builder
	b.WriteString(strconv.Quote(r.ProfileKey))
	for _, k := range r.Keys {
		if k == nil {
			b.WriteString("|NULL")
		} else {
			b.WriteString("|" + strconv.Quote(*k))
		}
	}
	for _, v := range r.Enrich {
		if v == nil {
			b.WriteString("|NULL")
		} else {
			b.WriteString("|" + valueKey(v))
		}
	}
	return b.String()
}

func lessRow(a, b Row) bool {
	if a.ProfileKey != b.ProfileKey {
		return a.ProfileKey < b.ProfileKey
	}
	for i := range a.Keys {
		x, y := a.Keys[i], b.Keys[i]
		switch {
		case x == nil && y == nil:
			continue
		case x == nil:
			return true
		case y == nil:
			return false
		case *x != *y:
			return *x < *y
		}
	}
	return false
}

// ---- conditions ----

func (e *evaluator) cond(c dsl.Cond, p rec) bool {
	switch c := c.(type) {
	case *dsl.And:
		for _, t := range c.Terms {
			if !e.cond(t, p) {
				return false
			}
		}
		return true
	case *dsl.Or:
		for _, t := range c.Terms {
			if e.cond(t, p) {
				return true
			}
		}
		return false
	case *dsl.Not:
		return !e.cond(c.X, p)
	case *dsl.Path:
		return e.holds(c, 0, p, binding{profile: p})
	case *dsl.Trait:
		return e.compare(c.Compare, binding{profile: p})
	case *dsl.InAudience:
		if c.Audience != nil {
			for _, s := range e.stack {
				if s == c.Audience {
					e.fail("audience cycle through %s", s.Name)
					return false
				}
			}
			e.stack = append(e.stack, c.Audience)
			ok := e.cond(c.Audience.Match, p)
			e.stack = e.stack[:len(e.stack)-1]
			return ok
		}
		m := e.g.Memberships
		t := e.table(m.Table)
		for _, i := range e.profileRows(p, m.Table, t, m.ProfileColumn) {
			r := rec{t: t, row: t.Rows[i], idx: i}
			if equal(r.get(e, m.AudienceColumn), c.Name) {
				return true
			}
		}
		return false
	case *dsl.Performed:
		ev := e.g.Events
		t := e.table(ev.Table)
		n := int64(0)
		for _, i := range e.profileRows(p, ev.Table, t, ev.ProfileColumn) {
			r := rec{t: t, row: t.Rows[i], idx: i}
			if !equal(r.get(e, ev.NameColumn), c.Event) {
				continue
			}
			if c.Within != nil && !e.within(r.get(e, ev.TimeColumn), *c.Within) {
				continue
			}
			if c.Where != nil && !e.pred(c.Where, binding{profile: p, event: r}) {
				continue
			}
			n++
		}
		return c.Quant.Holds(n)
	}
	e.fail("unsupported condition %T", c)
	return false
}

// profileRows lists the rows of table t whose column col equals the
// profile's key (none when the key is NULL).
func (e *evaluator) profileRows(p rec, name dsl.TableName, t *Table, col string) []int {
	key, ok := e.tuple(p, []string{e.g.Profile.Key})
	if !ok {
		return nil
	}
	return e.lookup(name, t, []string{col}, key)
}

// holds is step i's quantifier or having over the matching rows of step i
// under parent.
func (e *evaluator) holds(path *dsl.Path, i int, parent rec, b binding) bool {
	st := path.Steps[i]
	rows := e.matching(path, i, parent, b)
	keys := map[string]bool{}
	for _, r := range rows {
		keys[fmt.Sprintf("%T %v", r.get(e, st.Entity.Key), r.get(e, st.Entity.Key))] = true
	}
	count := int64(len(keys))
	h := st.Having
	if h == nil {
		return st.Quant.Holds(count)
	}
	if h.Value.Kind == dsl.LitString {
		return e.extremeHolds(rows, h)
	}
	lit := new(big.Rat)
	if _, ok := lit.SetString(h.Value.Text); !ok {
		e.fail("bad having value %q", h.Value.Text)
		return false
	}
	if h.Func == dsl.AggCount {
		return ordered(new(big.Rat).SetInt64(count).Cmp(lit), h.Op)
	}
	var vals []*big.Rat
	for _, r := range rows {
		v := r.get(e, h.Column)
		if v == nil {
			continue
		}
		x, ok := rat(v)
		if !ok {
			e.fail("having %s over %T", h.Func, v)
			return false
		}
		vals = append(vals, x)
	}
	if len(vals) == 0 {
		return false // no value
	}
	agg := new(big.Rat).Set(vals[0])
	switch h.Func {
	case dsl.AggSum, dsl.AggAvg:
		for _, v := range vals[1:] {
			agg.Add(agg, v)
		}
		if h.Func == dsl.AggAvg {
			agg.Quo(agg, new(big.Rat).SetInt64(int64(len(vals))))
		}
	case dsl.AggMin:
		for _, v := range vals[1:] {
			if v.Cmp(agg) < 0 {
				agg.Set(v)
			}
		}
	case dsl.AggMax:
		for _, v := range vals[1:] {
			if v.Cmp(agg) > 0 {
				agg.Set(v)
			}
		}
	}
	return ordered(agg.Cmp(lit), h.Op)
}

// matching lists the rows of step i related to parent that match: key not
// NULL, the step's where, and the next step's quantifier over their own
// matching rows. Each row appears once however many junction rows link it.
func (e *evaluator) matching(path *dsl.Path, i int, parent rec, b binding) []rec {
	st := path.Steps[i]
	var out []rec
	for _, r := range e.related(st.Rel, parent) {
		if r.get(e, st.Entity.Key) == nil {
			continue
		}
		rb := b.with(i, r)
		if st.Where != nil && !e.pred(st.Where, rb) {
			continue
		}
		if i+1 < len(path.Steps) && !e.holds(path, i+1, r, rb) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// related lists the rows of rel.To joined to parent, each once, in table
// order.
func (e *evaluator) related(rel *dsl.Relationship, parent rec) []rec {
	child := e.table(rel.To.Table)
	var idx []int
	if rel.Through == nil {
		up, ok := e.tuple(parent, upperCols(rel.On))
		if !ok {
			return nil
		}
		idx = e.lookup(rel.To.Table, child, lowerCols(rel.On), up)
	} else {
		junc := e.table(rel.Through.Table)
		up, ok := e.tuple(parent, upperCols(rel.On))
		if !ok {
			return nil
		}
		seen := map[int]bool{}
		for _, ji := range e.lookup(rel.Through.Table, junc, lowerCols(rel.On), up) {
			jr := rec{t: junc, row: junc.Rows[ji], idx: ji}
			down, ok := e.tuple(jr, upperCols(rel.ThroughOn))
			if !ok {
				continue
			}
			for _, ci := range e.lookup(rel.To.Table, child, lowerCols(rel.ThroughOn), down) {
				seen[ci] = true
			}
		}
		for ci := range seen {
			idx = append(idx, ci)
		}
		sort.Ints(idx)
	}
	out := make([]rec, len(idx))
	for k, i := range idx {
		out[k] = rec{t: child, row: child.Rows[i], idx: i}
	}
	return out
}

func upperCols(ps []dsl.JoinPair) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Upper)
	}
	return out
}

func lowerCols(ps []dsl.JoinPair) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Lower)
	}
	return out
}

// tuple encodes r's values of cols for equality; ok is false when one is
// NULL, which joins nothing.
func (e *evaluator) tuple(r rec, cols []string) (string, bool) {
	var b strings.Builder
	for _, c := range cols {
		v := r.get(e, c)
		if v == nil {
			return "", false
		}
		b.WriteString(valueKey(v))
		b.WriteByte(0)
	}
	return b.String(), true
}

// valueKey is equal for equal values: numbers by exact value, so an int64
// joins the equal float64 as in SQL.
func valueKey(v any) string {
	if x, ok := rat(v); ok {
		return "n:" + x.RatString()
	}
	if t, ok := v.(time.Time); ok {
		return "t:" + t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%T:%v", v, v)
}

func (e *evaluator) lookup(name dsl.TableName, t *Table, cols []string, tuple string) []int {
	id := name.String() + "\x00" + strings.Join(cols, "\x00")
	ix, ok := e.index[id]
	if !ok {
		ix = map[string][]int{}
		for i, row := range t.Rows {
			if k, ok := e.tuple(rec{t: t, row: row, idx: i}, cols); ok {
				ix[k] = append(ix[k], i)
			}
		}
		e.index[id] = ix
	}
	return ix[tuple]
}

// ---- predicates ----

func (e *evaluator) pred(p dsl.Pred, b binding) bool {
	switch p := p.(type) {
	case *dsl.PredAnd:
		for _, t := range p.Terms {
			if !e.pred(t, b) {
				return false
			}
		}
		return true
	case *dsl.PredOr:
		for _, t := range p.Terms {
			if e.pred(t, b) {
				return true
			}
		}
		return false
	case *dsl.PredNot:
		return !e.pred(p.X, b)
	case *dsl.Compare:
		return e.compare(p, b)
	}
	e.fail("unsupported predicate %T", p)
	return false
}

func (e *evaluator) value(r *dsl.ColumnRef, b binding) any {
	switch r.Source {
	case dsl.SourceTrait:
		return b.profile.get(e, r.Column)
	case dsl.SourceEvents:
		return b.event.get(e, r.Column)
	}
	if r.StepIndex < 0 || r.StepIndex >= len(b.steps) || b.steps[r.StepIndex].t == nil {
		e.fail("%s is not bound", r)
		return nil
	}
	return b.steps[r.StepIndex].get(e, r.Column)
}

func (e *evaluator) compare(c *dsl.Compare, b binding) bool {
	v := e.value(c.Column, b)
	switch c.Op {
	case dsl.OpIsNull:
		return v == nil
	case dsl.OpIsNotNull:
		return v != nil
	}
	if v == nil {
		return false
	}
	switch c.Op {
	case dsl.OpIsTrue, dsl.OpIsFalse:
		x, ok := v.(bool)
		if !ok {
			e.fail("is true on %T", v)
		}
		return ok && x == (c.Op == dsl.OpIsTrue)
	case dsl.OpIn, dsl.OpNotIn:
		found := false
		for _, l := range c.Values {
			if cmp, ok := e.cmpLiteral(v, l); ok && cmp == 0 {
				found = true
			}
		}
		return found == (c.Op == dsl.OpIn)
	case dsl.OpWithin:
		return e.within(v, *c.Window)
	case dsl.OpBefore, dsl.OpAfter:
		t, ok := v.(time.Time)
		if !ok {
			e.fail("%s on %T", c.Op, v)
			return false
		}
		if c.Op == dsl.OpBefore {
			return t.Before(c.Value.Time)
		}
		return t.After(c.Value.Time)
	}
	var w any
	if c.Ref != nil {
		w = e.value(c.Ref, b)
		if w == nil {
			return false
		}
	}
	switch c.Op {
	case dsl.OpContains, dsl.OpNotContains, dsl.OpStartsWith, dsl.OpEndsWith:
		s, ok1 := v.(string)
		sub := c.Value.Text
		ok2 := true
		if c.Ref != nil {
			sub, ok2 = w.(string)
		}
		if !ok1 || !ok2 {
			e.fail("%s on %T", c.Op, v)
			return false
		}
		switch c.Op {
		case dsl.OpContains:
			return strings.Contains(s, sub)
		case dsl.OpNotContains:
			return !strings.Contains(s, sub)
		case dsl.OpStartsWith:
			return strings.HasPrefix(s, sub)
		}
		return strings.HasSuffix(s, sub)
	}
	var cmp int
	var ok bool
	if c.Ref != nil {
		cmp, ok = e.cmpValues(v, w)
	} else {
		cmp, ok = e.cmpLiteral(v, c.Value)
	}
	return ok && ordered(cmp, c.Op)
}

func (e *evaluator) within(v any, w dsl.Window) bool {
	if v == nil {
		return false
	}
	t, ok := v.(time.Time)
	if !ok {
		e.fail("within on %T", v)
		return false
	}
	from := e.now.Add(-w.Duration())
	return !t.Before(from) && !t.After(e.now)
}

// ordered applies a comparison operator to the sign of a comparison.
func ordered(cmp int, op dsl.Op) bool {
	switch op {
	case dsl.OpEq:
		return cmp == 0
	case dsl.OpNe:
		return cmp != 0
	case dsl.OpLt:
		return cmp < 0
	case dsl.OpLe:
		return cmp <= 0
	case dsl.OpGt:
		return cmp > 0
	case dsl.OpGe:
		return cmp >= 0
	}
	return false
}

// extremeHolds is `having min|max(COLUMN) OP "STRING"`: the least or
// greatest non-NULL value, compared with the string as SQL reads it
// against that value's type.
func (e *evaluator) extremeHolds(rows []rec, h *dsl.Having) bool {
	var agg any
	for _, r := range rows {
		v := r.get(e, h.Column)
		if v == nil {
			continue
		}
		if agg == nil {
			agg = v
			continue
		}
		c, ok := e.cmpValues(v, agg)
		if !ok {
			return false
		}
		if (h.Func == dsl.AggMin && c < 0) || (h.Func == dsl.AggMax && c > 0) {
			agg = v
		}
	}
	if agg == nil {
		return false // no value
	}
	c, ok := e.cmpLiteral(agg, h.Value)
	return ok && ordered(c, h.Op)
}

// dateLayouts are how a string literal reads as a date or timestamp when
// SQL compares it with one.
var dateLayouts = []string{"2006-01-02", "2006-01-02 15:04:05", "2006-01-02T15:04:05", time.RFC3339Nano}

func (e *evaluator) cmpLiteral(v any, l dsl.Literal) (int, bool) {
	switch l.Kind {
	case dsl.LitString:
		if t, ok := v.(time.Time); ok {
			for _, layout := range dateLayouts {
				if lt, err := time.ParseInLocation(layout, l.Text, time.UTC); err == nil {
					return t.Compare(lt), true
				}
			}
		}
		s, ok := v.(string)
		if !ok {
			e.fail("string literal against %T", v)
			return 0, false
		}
		return strings.Compare(s, l.Text), true
	case dsl.LitNumber:
		x, ok := rat(v)
		y, ok2 := new(big.Rat).SetString(l.Text)
		if !ok || !ok2 {
			e.fail("number literal %q against %T", l.Text, v)
			return 0, false
		}
		return x.Cmp(y), true
	case dsl.LitBool:
		x, ok := v.(bool)
		if !ok {
			e.fail("boolean literal against %T", v)
			return 0, false
		}
		return cmpBool(x, l.Bool), true
	case dsl.LitDate:
		t, ok := v.(time.Time)
		if !ok {
			e.fail("date literal against %T", v)
			return 0, false
		}
		return t.Compare(l.Time), true
	}
	e.fail("unsupported literal kind %d", l.Kind)
	return 0, false
}

func (e *evaluator) cmpValues(v, w any) (int, bool) {
	if x, ok := rat(v); ok {
		if y, ok := rat(w); ok {
			return x.Cmp(y), true
		}
	}
	switch v := v.(type) {
	case string:
		if w, ok := w.(string); ok {
			return strings.Compare(v, w), true
		}
	case bool:
		if w, ok := w.(bool); ok {
			return cmpBool(v, w), true
		}
	case time.Time:
		if w, ok := w.(time.Time); ok {
			return v.Compare(w), true
		}
	}
	e.fail("cannot compare %T with %T", v, w)
	return 0, false
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// rat is v as an exact rational, for numbers.
func rat(v any) (*big.Rat, bool) {
	switch v := v.(type) {
	case *big.Rat:
		return v, true
	case int64:
		return new(big.Rat).SetInt64(v), true
	case float64:
		r := new(big.Rat)
		if r.SetFloat64(v) == nil {
			return nil, false
		}
		return r, true
	}
	return nil, false
}

// equal is SQL = for non-NULL values of the same kind.
func equal(a, b any) bool {
	if a == nil || b == nil {
		return false
	}
	return valueKey(a) == valueKey(b)
}
