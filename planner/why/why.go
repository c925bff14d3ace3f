// Package why explains one profile's membership of an audience: it runs
// the statements planner.CompileWhy writes (the audience's plan restricted
// to that profile) and builds the condition tree with each node's truth and
// evidence: trait values, each path step's related rows with the filter
// that failed, counts and aggregates against the quantifier or having, the
// events a performed condition counted, `in audience` recursively.
//
// Entry points: Run, then Result.WriteText or encoding/json on the Result
// (one object with a top-level boolean "member"). `linkaud why` and the
// worker's GET /audiences/{name}/why are thin wrappers.
package why

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
)

// Result is the explanation of one profile.
type Result struct {
	Audience string `json:"audience"`
	Profile  string `json:"profile"`
	// Found says whether the profile table has a row with that key.
	Found  bool  `json:"found"`
	Member bool  `json:"member"`
	Tree   *Node `json:"condition,omitempty"`
	// Rows is how many rows of the profile table have the key (a key
	// listed twice is one member if one of its rows qualifies; the tree
	// shows that row, or the first).
	Rows int `json:"profile_rows"`
}

// Node is one evaluated node of the condition tree.
type Node struct {
	Kind  string `json:"kind"` // and, or, not, path, trait, in audience, performed
	Text  string `json:"text"`
	Holds bool   `json:"holds"`
	// Values are a trait's operands, a path's count or aggregate.
	Values   []Value `json:"values,omitempty"`
	Children []*Node `json:"children,omitempty"`
	// Audience is the audience `in audience` names.
	Audience string  `json:"audience,omitempty"`
	Steps    []*Step `json:"steps,omitempty"`
	Events   *Events `json:"events,omitempty"`
}

// Value is a named value shown as evidence.
type Value struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// Step is one step of a path: the rows related to the profile.
type Step struct {
	Entity string `json:"entity"`
	// Needs is what the parent needs of this step's matching rows
	// ("at least 1", "having sum(balance) > 100").
	Needs string `json:"needs"`
	Where string `json:"where,omitempty"`
	// Rows and Matching count the related rows and those that match;
	// Shown lists up to the limit, matching first.
	Rows int `json:"rows"`
	// Parent names the columns of the parent that the rows' parent
	// values are (profile.email, account.id).
	Parent   []string `json:"parent"`
	Matching int      `json:"matching"`
	Shown    []*Row   `json:"shown"`
}

// Row is one related row of a step.
type Row struct {
	Key     *string `json:"key"` // nil: the key is NULL, so no entity
	Parent  []any   `json:"parent"`
	Matched bool    `json:"matched"`
	Where   bool    `json:"where"`
	// Failed lists the where's terms that are false for the row.
	Failed []string `json:"failed,omitempty"`
	Values []Value  `json:"values,omitempty"`
	// Child is what the next step's matching rows give this row (their
	// count, aggregate, or 1/0 for some/none, as ChildKind says) and
	// whether that holds.
	Child      any    `json:"child,omitempty"`
	ChildKind  string `json:"child_kind,omitempty"`
	ChildHolds *bool  `json:"child_holds,omitempty"`
}

// Events is the evidence of a performed condition.
type Events struct {
	Name string `json:"event"`
	// Total is the profile's events of that name; Counted those in the
	// window that pass the where.
	Total   int      `json:"total"`
	Counted int      `json:"counted"`
	Shown   []*Event `json:"shown"`
}

// Event is one event of the profile.
type Event struct {
	Time     any   `json:"time"`
	Counted  bool  `json:"counted"`
	InWindow *bool `json:"in_window,omitempty"`
	Where    *bool `json:"where,omitempty"`
}

// Run executes w's statements on wh and builds the result.
func Run(ctx context.Context, wh executor.Warehouse, w *planner.Why) (*Result, error) {
	res := &Result{Audience: w.Audience.Name, Profile: w.Profile}
	rows, err := query(ctx, wh, w, w.SQL)
	if err != nil {
		return nil, err
	}
	res.Rows = len(rows)
	if len(rows) == 0 {
		return res, nil
	}
	res.Found = true
	row := rows[0]
	for _, r := range rows {
		if w.Root.Holds(func(col int) bool { return isOne(r[col]) }) {
			row, res.Member = r, true
			break
		}
	}
	r := &runner{ctx: ctx, wh: wh, w: w, row: row, steps: map[*planner.WhyStep]*Step{}, parts: map[int][][]any{}}
	if w.Evidence != "" {
		ev, err := query(ctx, wh, w, w.Evidence)
		if err != nil {
			return nil, err
		}
		for _, row := range ev {
			k := asInt(row[0])
			r.parts[k] = append(r.parts[k], row)
		}
	}
	if res.Tree, err = r.node(w.Root); err != nil {
		return nil, err
	}
	return res, nil
}

type runner struct {
	ctx   context.Context
	wh    executor.Warehouse
	w     *planner.Why
	row   []any
	steps map[*planner.WhyStep]*Step
	// parts are Why.Evidence's rows by part.
	parts map[int][][]any
}

// slot is the value of slot i of an evidence row: text, or nil.
func slot(row []any, i int) any { return row[planner.EvidenceSlot(i)] }

// totals are the part's row count and flagged count, the row's last two
// columns.
func totals(row []any) (int, int) { return asInt(row[len(row)-2]), asInt(row[len(row)-1]) }

func (r *runner) node(n *planner.WhyNode) (*Node, error) {
	out := &Node{Kind: kind(n.Cond), Holds: n.Holds(func(col int) bool { return isOne(r.row[col]) })}
	out.Text = dsl.CondString(n.Cond)
	if ia, ok := n.Cond.(*dsl.InAudience); ok {
		out.Audience = ia.Name
	}
	for _, v := range n.Values {
		out.Values = append(out.Values, Value{Name: v.Label, Value: r.row[v.Col]})
	}
	for _, k := range n.Children {
		c, err := r.node(k)
		if err != nil {
			return nil, err
		}
		out.Children = append(out.Children, c)
	}
	for _, s := range n.Steps {
		st, err := r.step(s)
		if err != nil {
			return nil, err
		}
		out.Steps = append(out.Steps, st)
	}
	if e := n.Events; e != nil {
		ev, err := r.events(n.Cond.(*dsl.Performed), e)
		if err != nil {
			return nil, err
		}
		out.Events = ev
	}
	return out, nil
}

func kind(c dsl.Cond) string {
	switch c.(type) {
	case *dsl.And:
		return "and"
	case *dsl.Or:
		return "or"
	case *dsl.Not:
		return "not"
	case *dsl.Path:
		return "path"
	case *dsl.Trait:
		return "trait"
	case *dsl.InAudience:
		return "in audience"
	case *dsl.Performed:
		return "performed"
	}
	return fmt.Sprintf("%T", c)
}

// Needs is what a step's parent needs of its matching rows, as the
// language writes it.
func Needs(st *dsl.Step) string {
	if h := st.Having; h != nil {
		fn := h.Func.String()
		if h.Column != "" {
			fn += "(" + h.Column + ")"
		}
		return fmt.Sprintf("having %s %s %s", fn, h.Op, h.Value)
	}
	return fmt.Sprintf("%s %d", st.Quant.Kind, st.Quant.N)
}

func (r *runner) step(s *planner.WhyStep) (*Step, error) {
	if st, ok := r.steps[s]; ok {
		return st, nil
	}
	out := &Step{Entity: s.Step.Entity.Name, Needs: Needs(s.Step), Shown: []*Row{}, Parent: []string{}}
	for _, p := range s.Step.Rel.On {
		out.Parent = append(out.Parent, s.Step.Rel.From.Name+"."+p.Upper)
	}
	if s.Step.Where != nil {
		out.Where = dsl.PredString(s.Step.Where)
	}
	for _, row := range r.parts[s.Part] {
		out.Rows, out.Matching = totals(row)
		x := &Row{Matched: isOne(slot(row, s.Matched)), Where: isOne(slot(row, s.Where))}
		if k, ok := slot(row, s.Key).(string); ok {
			x.Key = &k
		}
		for _, p := range s.Parent {
			x.Parent = append(x.Parent, slot(row, p))
		}
		for _, t := range s.Terms {
			if !isOne(slot(row, t.Col)) {
				x.Failed = append(x.Failed, t.Text)
			}
		}
		for _, v := range s.Values {
			x.Values = append(x.Values, Value{Name: v.Label, Value: slot(row, v.Col)})
		}
		if s.ChildValue >= 0 {
			x.Child, x.ChildKind = number(slot(row, s.ChildValue)), s.ChildKind
		}
		if s.Child >= 0 {
			h := isOne(slot(row, s.Child))
			x.ChildHolds = &h
		}
		out.Shown = append(out.Shown, x)
	}
	r.steps[s] = out
	return out, nil
}

func (r *runner) events(p *dsl.Performed, e *planner.WhyEvents) (*Events, error) {
	out := &Events{Name: p.Event, Shown: []*Event{}}
	for _, row := range r.parts[e.Part] {
		out.Total, out.Counted = totals(row)
		ev := &Event{Time: timeText(slot(row, e.Time)), Counted: isOne(slot(row, e.Counted))}
		if e.InWindow >= 0 {
			b := isOne(slot(row, e.InWindow))
			ev.InWindow = &b
		}
		if e.Where >= 0 {
			b := isOne(slot(row, e.Where))
			ev.Where = &b
		}
		out.Shown = append(out.Shown, ev)
	}
	return out, nil
}

// query runs one statement and reads every row as JSON-ready values.
func query(ctx context.Context, wh executor.Warehouse, w *planner.Why, sql string) ([][]any, error) {
	rd, err := wh.Query(ctx, sql, executor.QueryOptions{Tag: "linkaud why " + w.Audience.Name, Selective: true})
	if err != nil {
		return nil, fmt.Errorf("why %s: %w", w.Audience.Name, err)
	}
	defer rd.Release()
	var out [][]any
	for rd.Next() {
		rec := rd.RecordBatch()
		cells := make([]executor.Cells, rec.NumCols())
		for i := range cells {
			if cells[i], err = executor.NewCells(rec.Column(i)); err != nil {
				return nil, fmt.Errorf("why %s: %w", w.Audience.Name, err)
			}
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]any, len(cells))
			for j := range cells {
				row[j] = cells[j].Value(i)
			}
			out = append(out, row)
		}
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("why %s: %w", w.Audience.Name, err)
	}
	return out, nil
}

func isOne(v any) bool { return asInt(v) == 1 }

// timeLayouts are the texts warehouses give a timestamp cast to text.
var timeLayouts = []string{"2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", time.RFC3339Nano, "2006-01-02"}

// timeText is an event's time as RFC 3339 in UTC, as the rest of
// linkaud writes times (a time without a zone is UTC); other text as it is.
func timeText(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

// number is a count or aggregate read as text, as a JSON number when it
// is one.
func number(v any) any {
	if s, ok := v.(string); ok {
		if n := json.Number(s); n.String() != "" {
			if _, err := n.Float64(); err == nil {
				return n
			}
		}
	}
	return v
}

func asInt(v any) int {
	switch v := v.(type) {
	case string:
		n, _ := strconv.Atoi(v)
		return n
	case int64:
		return int(v)
	case uint64:
		return int(v)
	case float64:
		return int(v)
	case fmt.Stringer: // json.Number of a DECIMAL sum
		var n int
		fmt.Sscan(v.String(), &n)
		return n
	}
	return 0
}
