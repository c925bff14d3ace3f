package dsl

import (
	"context"
	"fmt"
	"strings"
)

// ColumnLister reports the columns of a warehouse table. The executor's
// warehouses satisfy it; CheckColumns uses it for `linkaud check --warehouse`.
type ColumnLister interface {
	Columns(ctx context.Context, table TableName) ([]string, error)
}

// TypeClass is what a column's type allows in a condition.
type TypeClass int

const (
	ClassUnknown TypeClass = iota // a type the checks do not know: any use passes
	ClassText
	ClassNumber
	ClassBool
	ClassTime  // dates and timestamps
	ClassOther // binary, JSON, intervals, …: compared with nothing but null
)

func (c TypeClass) String() string {
	return [...]string{"unknown", "text", "number", "boolean", "date or timestamp", "other"}[c]
}

// ColumnType is a column's name, class and the warehouse's name of its type.
type ColumnType struct {
	Name  string
	Class TypeClass
	Type  string
}

// ColumnTyper is a ColumnLister that also reports column types; with one,
// CheckColumns also checks each column's type against its uses.
type ColumnTyper interface {
	ColumnTypes(ctx context.Context, table TableName) ([]ColumnType, error)
}

// CheckColumns asks the warehouse that every table the workspace names
// exists and has the columns the workspace uses: keys, join columns, and the
// columns of conditions, aggregates and enrichments. Names are compared
// case-insensitively, as DuckDB, Snowflake, PostgreSQL and Redshift resolve
// unquoted names. When wh is also a ColumnTyper, each column's type is
// checked against its uses too (see checkType).
func CheckColumns(ctx context.Context, ws *Workspace, wh ColumnLister) Diagnostics {
	cc := newColumnChecker(ctx, wh)
	cc.workspace(ws)
	cc.diags.Sort()
	return cc.diags
}

// workspace asks for every column ws reads.
func (cc *columnChecker) workspace(ws *Workspace) {
	g := ws.Graph
	for _, e := range append([]*Entity{g.Profile}, g.Entities...) {
		cc.need(e.Table, e.Key, e.Range, "key of "+e.Name)
	}
	for _, r := range g.Relationships {
		cc.relationship(r)
	}
	if m := g.Memberships; m != nil {
		cc.memberships(m)
	}
	if ev := g.Events; ev != nil {
		cc.events(ev)
	}
	for _, a := range ws.Audiences {
		if a.Match != nil {
			cc.cond(g, a.Match)
		}
		for _, e := range a.Enrich {
			cc.ref(g, e)
		}
	}
}

// CheckAudienceColumns is CheckColumns for what audience a reads: the
// profile, the entities and relationships of its paths and of the audiences
// it includes, the memberships and events tables if it tests them, its
// conditions and enrichment. The engine runs it when a cycle fails on a
// name the warehouse does not know, to say where the workspace and the
// warehouse disagree instead of repeating the warehouse's message about a
// statement the user never wrote.
func CheckAudienceColumns(ctx context.Context, g *Graph, a *Audience, wh ColumnLister) Diagnostics {
	return CheckAudiencesColumns(ctx, g, []*Audience{a}, wh)
}

// CheckAudiencesColumns is CheckAudienceColumns for several audiences,
// asking the warehouse about each table once. The engine runs it when it
// opens or reloads a workspace, leaving out the audiences whose loads
// failed (their cycles fail with the load's reason instead).
func CheckAudiencesColumns(ctx context.Context, g *Graph, auds []*Audience, wh ColumnLister) Diagnostics {
	cc := newColumnChecker(ctx, wh)
	if len(auds) > 0 {
		cc.need(g.Profile.Table, g.Profile.Key, g.Profile.Range, "key of "+g.Profile.Name)
	}
	seen := map[*Audience]bool{}
	var visit func(a *Audience)
	visit = func(a *Audience) {
		if a == nil || seen[a] {
			return
		}
		seen[a] = true
		Inspect(a.Match, func(n Node) bool {
			switch n := n.(type) {
			case *Step:
				cc.need(n.Entity.Table, n.Entity.Key, n.Entity.Range, "key of "+n.Entity.Name)
				if n.Rel != nil {
					cc.relationship(n.Rel)
				}
			case *InAudience:
				if n.Audience != nil {
					visit(n.Audience)
				} else if g.Memberships != nil {
					cc.memberships(g.Memberships)
				}
			case *Performed:
				if g.Events != nil {
					cc.events(g.Events)
				}
			}
			return true
		})
		cc.cond(g, a.Match)
		for _, e := range a.Enrich {
			cc.ref(g, e)
		}
	}
	for _, a := range auds {
		visit(a)
	}
	cc.diags.Sort()
	return cc.diags
}

func newColumnChecker(ctx context.Context, wh ColumnLister) *columnChecker {
	cc := &columnChecker{ctx: ctx, wh: wh, tables: map[string]*tableInfo{}}
	cc.typer, _ = wh.(ColumnTyper)
	return cc
}

func (cc *columnChecker) relationship(r *Relationship) {
	upper, lowerTable := r.From.Table, r.To.Table
	if r.Through != nil {
		lowerTable = r.Through.Table
	}
	for _, p := range r.On {
		cc.need(upper, p.Upper, r.Range, "join column of "+r.From.Name)
		cc.need(lowerTable, p.Lower, r.Range, "join column of "+lowerName(r))
	}
	for _, p := range r.ThroughOn {
		cc.need(r.Through.Table, p.Upper, r.Range, "join column of "+r.Through.Alias)
		cc.need(r.To.Table, p.Lower, r.Range, "join column of "+r.To.Name)
	}
}

func (cc *columnChecker) memberships(m *Memberships) {
	cc.need(m.Table, m.ProfileColumn, m.Range, "memberships profile column")
	cc.need(m.Table, m.AudienceColumn, m.Range, "memberships audience column")
}

func (cc *columnChecker) events(ev *Events) {
	for _, c := range []string{ev.ProfileColumn, ev.NameColumn, ev.TimeColumn} {
		cc.need(ev.Table, c, ev.Range, "events column")
	}
}

func lowerName(r *Relationship) string {
	if r.Through != nil {
		return r.Through.Alias
	}
	return r.To.Name
}

type tableInfo struct {
	err     error
	columns map[string]bool
	names   []string
	types   map[string]ColumnType // upper-cased name; nil without a ColumnTyper
}

type columnChecker struct {
	ctx    context.Context
	wh     ColumnLister
	typer  ColumnTyper
	tables map[string]*tableInfo
	diags  Diagnostics
	// reported avoids repeating one missing table or column per use.
	reported map[string]bool
	// used, when set, only records the columns asked for (UsedColumns).
	used  map[string][]string
	order *[]TableName
}

func (cc *columnChecker) table(t TableName) *tableInfo {
	key := strings.ToUpper(t.String())
	if ti, ok := cc.tables[key]; ok {
		return ti
	}
	ti := &tableInfo{columns: map[string]bool{}}
	if cc.typer != nil {
		cols, err := cc.typer.ColumnTypes(cc.ctx, t)
		ti.err = err
		ti.types = map[string]ColumnType{}
		for _, c := range cols {
			ti.columns[strings.ToUpper(c.Name)] = true
			ti.types[strings.ToUpper(c.Name)] = c
			ti.names = append(ti.names, c.Name)
		}
		cc.tables[key] = ti
		return ti
	}
	cols, err := cc.wh.Columns(cc.ctx, t)
	ti.err = err
	for _, c := range cols {
		ti.columns[strings.ToUpper(c)] = true
		ti.names = append(ti.names, c)
	}
	cc.tables[key] = ti
	return ti
}

func (cc *columnChecker) need(t TableName, column string, r Range, what string) {
	if len(t) == 0 || column == "" {
		return
	}
	if cc.used != nil {
		cc.use(t, column)
		return
	}
	if cc.reported == nil {
		cc.reported = map[string]bool{}
	}
	ti := cc.table(t)
	if ti.err != nil {
		if k := "t:" + t.String(); !cc.reported[k] {
			cc.reported[k] = true
			cc.diags = append(cc.diags, &Diagnostic{Severity: Error, Subject: r,
				Summary: fmt.Sprintf("table %s: %v", t, ti.err)})
		}
		return
	}
	if ti.columns[strings.ToUpper(column)] {
		return
	}
	if k := "c:" + t.String() + "." + strings.ToUpper(column) + fmt.Sprint(r.Start); !cc.reported[k] {
		cc.reported[k] = true
		cc.diags = append(cc.diags, &Diagnostic{Severity: Error, Subject: r,
			Summary:    fmt.Sprintf("table %s has no column %q (%s)", t, column, what),
			Suggestion: suggest(column, ti.names)})
	}
}

func (cc *columnChecker) ref(g *Graph, c *ColumnRef) {
	switch c.Source {
	case SourceTrait:
		cc.need(g.Profile.Table, c.Column, c.Range, "trait")
	case SourceEvents:
		if g.Events != nil {
			cc.need(g.Events.Table, c.Column, c.Range, "events column")
		}
	default:
		cc.need(c.Entity.Table, c.Column, c.Range, "column of "+c.Entity.Name)
	}
}

// cond asks for every column a condition compares or aggregates.
func (cc *columnChecker) cond(g *Graph, c Cond) {
	Inspect(c, func(n Node) bool {
		switch n := n.(type) {
		case *Compare:
			cc.ref(g, n.Column)
			if n.Ref != nil {
				cc.ref(g, n.Ref)
			}
			cc.compareTypes(g, n)
		case *Step:
			if h := n.Having; h != nil && h.Column != "" {
				cc.need(n.Entity.Table, h.Column, h.Range, "aggregated column of "+n.Entity.Name)
				cc.havingTypes(n.Entity, h)
			}
		}
		return true
	})
}

// typeOf is the type of a column, when the warehouse reports types and has
// the column.
func (cc *columnChecker) typeOf(t TableName, column string) (ColumnType, bool) {
	if cc.typer == nil || len(t) == 0 {
		return ColumnType{}, false
	}
	ti := cc.table(t)
	ct, ok := ti.types[strings.ToUpper(column)]
	return ct, ok && ct.Class != ClassUnknown
}

func (cc *columnChecker) refType(g *Graph, r *ColumnRef) (ColumnType, bool) {
	switch r.Source {
	case SourceTrait:
		return cc.typeOf(g.Profile.Table, r.Column)
	case SourceEvents:
		if g.Events == nil {
			return ColumnType{}, false
		}
		return cc.typeOf(g.Events.Table, r.Column)
	}
	if r.Entity == nil {
		return ColumnType{}, false
	}
	return cc.typeOf(r.Entity.Table, r.Column)
}

func (cc *columnChecker) typeError(r Range, msg string) {
	k := "type:" + fmt.Sprint(r.Start) + msg
	if cc.reported[k] {
		return
	}
	if cc.reported == nil {
		cc.reported = map[string]bool{}
	}
	cc.reported[k] = true
	cc.diags = append(cc.diags, &Diagnostic{Severity: Error, Subject: r, Summary: msg})
}

// compareTypes checks that a comparison's column has a type its operator
// and value can be compared with: is true/false need a boolean, text
// matching text, within/before/after a date or timestamp, a number a
// number column, a string a text (or, as a date, a date) column, and a
// dynamic reference a column of the same kind. Types the warehouse
// reports but the checks do not know pass.
func (cc *columnChecker) compareTypes(g *Graph, x *Compare) {
	if x.Column == nil {
		return
	}
	ct, ok := cc.refType(g, x.Column)
	if !ok {
		return
	}
	col := x.Column.String()
	fail := func(needs string) {
		cc.typeError(x.Range, fmt.Sprintf("%s %s needs %s; %s is %s (%s)", col, x.Op, needs, col, ct.Class, ct.Type))
	}
	switch x.Op {
	case OpIsNull, OpIsNotNull:
		return
	case OpIsTrue, OpIsFalse:
		if ct.Class != ClassBool {
			fail("a boolean column")
		}
		return
	case OpContains, OpNotContains, OpStartsWith, OpEndsWith:
		if ct.Class != ClassText {
			fail("a text column")
		}
		return
	case OpWithin, OpBefore, OpAfter:
		if ct.Class != ClassTime {
			fail("a date or timestamp column")
		}
		return
	}
	if ct.Class == ClassOther {
		cc.typeError(x.Range, fmt.Sprintf("%s is %s (%s): it can only be tested with is null or is not null", col, ct.Class, ct.Type))
		return
	}
	if x.Ref != nil {
		rt, ok := cc.refType(g, x.Ref)
		if ok && rt.Class != ct.Class {
			cc.typeError(x.Range, fmt.Sprintf("%s %s %s compares %s (%s) with %s (%s)", col, x.Op, x.Ref, ct.Class, ct.Type, rt.Class, rt.Type))
		}
		return
	}
	vals := x.Values
	if x.Op != OpIn && x.Op != OpNotIn {
		vals = []Literal{x.Value}
	}
	for _, v := range vals {
		switch v.Kind {
		case LitNumber:
			if ct.Class != ClassNumber {
				fail("a number column for " + v.Text)
				return
			}
		case LitBool:
			if ct.Class != ClassBool {
				fail("a boolean column for " + v.Text)
				return
			}
		case LitDate:
			if ct.Class != ClassTime {
				fail("a date or timestamp column")
				return
			}
		case LitString:
			if ct.Class != ClassText && !(ct.Class == ClassTime && isDateText(v.Text)) {
				fail(fmt.Sprintf("a text column for %q", v.Text))
				return
			}
		}
	}
}

// isDateText reports whether a string reads as a date or timestamp.
func isDateText(s string) bool {
	_, err := parseDate(s)
	return err == nil
}

// havingTypes checks an aggregate's column against its function and value:
// sum and avg need numbers; min and max compare a number column with a
// number, a text column with a string, a date or timestamp column with a
// string that reads as one.
func (cc *columnChecker) havingTypes(e *Entity, h *Having) {
	ct, ok := cc.typeOf(e.Table, h.Column)
	if !ok {
		return
	}
	agg := fmt.Sprintf("having %s(%s)", h.Func, h.Column)
	col := e.Name + "." + h.Column
	switch {
	case h.Func == AggSum || h.Func == AggAvg:
		if ct.Class != ClassNumber {
			cc.typeError(h.Range, fmt.Sprintf("%s needs a number column; %s is %s (%s)", agg, col, ct.Class, ct.Type))
		}
	case h.Value.Kind == LitNumber:
		if ct.Class != ClassNumber {
			cc.typeError(h.Range, fmt.Sprintf("%s %s %s needs a number column; %s is %s (%s)", agg, h.Op, h.Value.Text, col, ct.Class, ct.Type))
		}
	case ct.Class == ClassTime:
		if !isDateText(h.Value.Text) {
			cc.typeError(h.Range, fmt.Sprintf("%s %s %q: %s is %s (%s), and %q is not a date such as \"2026-03-05\"", agg, h.Op, h.Value.Text, col, ct.Class, ct.Type, h.Value.Text))
		}
	case ct.Class != ClassText:
		cc.typeError(h.Range, fmt.Sprintf("%s %s %q needs a text, date or timestamp column; %s is %s (%s)", agg, h.Op, h.Value.Text, col, ct.Class, ct.Type))
	}
}
