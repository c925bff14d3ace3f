package dsl

import (
	"context"
	"slices"
	"strings"
)

// UsedColumns lists, per table of the graph (by TableName.String(), as
// the graph spells it), the columns the workspace reads: keys, join
// columns, memberships and events columns, and those of every audience's
// conditions, aggregates and enrichment — what CheckColumns asks the
// warehouse for. Every table of the graph is listed, in order of first
// use, its columns in order of first use. `linkaud test` makes the tables
// a test does not give with these columns, empty.
func UsedColumns(ws *Workspace) (tables []TableName, columns map[string][]string) {
	cc := &columnChecker{ctx: context.Background(), tables: map[string]*tableInfo{}, used: map[string][]string{}}
	cc.order = &tables
	cc.workspace(ws)
	return tables, cc.used
}

// use records column of table t (UsedColumns).
func (cc *columnChecker) use(t TableName, column string) {
	key := t.String()
	cols, seen := cc.used[key]
	if !seen && cc.order != nil {
		*cc.order = append(*cc.order, t)
	}
	if !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, column) }) {
		cols = append(cols, column)
	}
	cc.used[key] = cols
}
