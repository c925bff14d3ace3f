package planner

import (
	"errors"
	"fmt"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// Plan is the SQL of one audience and the layout of its result rows.
type Plan struct {
	Audience *dsl.Audience
	// SQL is one statement returning Columns, rows DISTINCT and ordered by
	// profile_key, key_0, …, key_{n-1} in byte order, NULLs first.
	SQL     string
	Columns []Column
	// Dialect is the dialect the SQL is written in.
	Dialect string
}

// Role says what a result column holds.
type Role int

const (
	// RoleProfileKey is profile_key: the profile's key as text, never NULL.
	RoleProfileKey Role = iota
	// RoleEntityKey is key_<Step>: the key of that step's row as text,
	// NULL where the chain stops.
	RoleEntityKey
	// RoleEnrich is enrich_<j>: Audience.Enrich[j] in the warehouse's type.
	RoleEnrich
)

func (r Role) String() string {
	return [...]string{"profile key", "entity key", "enrich"}[r]
}

// Column is one result column.
type Column struct {
	Name string
	Role Role
	// Step is the step index of an entity key, or of a step enrichment
	// column; -1 for the profile key and trait enrichments.
	Step int
	// Ref is the enrichment column (RoleEnrich only).
	Ref *dsl.ColumnRef
}

// KeyColumns is the number of entity key columns (the primary path's
// steps); they follow profile_key.
func (p *Plan) KeyColumns() int {
	n := 0
	for _, c := range p.Columns {
		if c.Role == RoleEntityKey {
			n++
		}
	}
	return n
}

// Options configure Compile.
type Options struct {
	// Now is the cycle's start: `within N days|hours` means Now-N ≤ t ≤ Now.
	// Required when the audience (or one it includes) has a time window, so
	// that the same cycle always gets the same SQL.
	Now time.Time
	// Limit, when positive, keeps only the first Limit members in profile
	// key order, with all their rows (preview).
	Limit int
	// Unordered leaves out the final ORDER BY. The differ needs the order;
	// a consumer that does not (the benchmark's EXCEPT baseline, which
	// materializes the result into a table) should not pay for the sort.
	Unordered bool
}

// Error is a planning error, placed at the construct it concerns.
type Error struct {
	Range dsl.Range
	Msg   string
}

func (e *Error) Error() string {
	s := e.Range.Start
	if s.Filename == "" && s.Line == 0 {
		return "planner: " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", s.Filename, s.Line, s.Column, e.Msg)
}

func errorAt(n dsl.Node, format string, args ...any) error {
	var r dsl.Range
	if n != nil {
		r = n.Span()
	}
	return &Error{Range: r, Msg: fmt.Sprintf(format, args...)}
}

// maxInline bounds how deeply `in audience` may inline other audiences; the
// checker rejects cycles, this only guards against IR built by hand.
const maxInline = 64

// Compile writes the SQL of audience a over graph g in dialect d.
func Compile(a *dsl.Audience, g *dsl.Graph, d Dialect, opts Options) (*Plan, error) {
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
	sql, cols, err := c.audience(a)
	if err != nil {
		return nil, err
	}
	if err := checkUncorrelated(sql, d.BackslashEscapes()); err != nil {
		return nil, fmt.Errorf("planner: internal error: %w", err)
	}
	return &Plan{Audience: a, SQL: sql, Columns: cols, Dialect: d.Name()}, nil
}
