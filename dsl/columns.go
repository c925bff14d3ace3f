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
// case-insensitively, as both DuckDB and Snowflake resolve unquoted names.
func CheckColumns(ctx context.Context, ws *Workspace, wh ColumnLister) Diagnostics {
	cc := &columnChecker{ctx: ctx, wh: wh, tables: map[string]*tableInfo{}}
	g := ws.Graph
	for _, e := range append([]*Entity{g.Profile}, g.Entities...) {
		cc.need(e.Table, e.Key, e.Range, "key of "+e.Name)
	}
	for _, r := range g.Relationships {
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
	if m := g.Memberships; m != nil {
		cc.need(m.Table, m.ProfileColumn, m.Range, "memberships profile column")
		cc.need(m.Table, m.AudienceColumn, m.Range, "memberships audience column")
	}
	if ev := g.Events; ev != nil {
		for _, c := range []string{ev.ProfileColumn, ev.NameColumn, ev.TimeColumn} {
			cc.need(ev.Table, c, ev.Range, "events column")
		}
	}
	for _, a := range ws.Audiences {
		cc.cond(g, a.Match)
		for _, e := range a.Enrich {
			cc.ref(g, e)
		}
	}
	cc.diags.Sort()
	return cc.diags
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
}

type columnChecker struct {
	ctx    context.Context
	wh     ColumnLister
	tables map[string]*tableInfo
	diags  Diagnostics
	// reported avoids repeating one missing table or column per use.
	reported map[string]bool
}

func (cc *columnChecker) table(t TableName) *tableInfo {
	key := strings.ToUpper(t.String())
	if ti, ok := cc.tables[key]; ok {
		return ti
	}
	ti := &tableInfo{columns: map[string]bool{}}
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
		case *Step:
			if n.Having != nil && n.Having.Column != "" {
				cc.need(n.Entity.Table, n.Having.Column, n.Having.Range, "aggregated column of "+n.Entity.Name)
			}
		}
		return true
	})
}
