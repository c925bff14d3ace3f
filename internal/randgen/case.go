package randgen

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

// Type is a column type of the generated tables.
type Type int

const (
	Text Type = iota
	Int
	Float
	Bool
	Timestamp
	Date
)

// SQL is the DuckDB type.
func (t Type) SQL() string {
	return [...]string{"VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP", "DATE"}[t]
}

func (t Type) numeric() bool  { return t == Int || t == Float }
func (t Type) temporal() bool { return t == Timestamp || t == Date }

// comparable reports whether columns of types t and u may be compared by
// a dynamic reference (DESIGN: of the same type).
func (t Type) comparable(u Type) bool {
	return t == u || t.numeric() && u.numeric() || t.temporal() && u.temporal()
}

// Column is a typed column.
type Column struct {
	Name string
	Type Type
}

// Table is a generated warehouse table with its rows. Values are nil,
// string, int64, float64, bool or time.Time (UTC).
type Table struct {
	Name    []string // schema and table, or table alone
	Columns []Column
	Rows    [][]any
}

// QName is the name as the DSL writes it, "S.T".
func (t *Table) QName() string { return strings.Join(t.Name, ".") }

// Col returns the column named name.
func (t *Table) Col(name string) Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	panic("randgen: no column " + name + " in " + t.QName())
}

func (t *Table) colIndex(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	panic("randgen: no column " + name + " in " + t.QName())
}

// Entity is the profile or an entity of the graph.
type Entity struct {
	Name  string
	Table *Table
	Key   string
	Level int // level under the first parent: profile 1
}

// Pair joins an upper column to a lower one.
type Pair struct{ Upper, Lower string }

// Rel is a relationship, direct or through a junction table.
type Rel struct {
	From, To  *Entity
	On        []Pair // direct: From.Upper = To.Lower; junction: From.Upper = Through.Lower
	Through   *Table
	Alias     string
	ThroughOn []Pair // Through.Upper = To.Lower
}

// Graph is a generated data graph.
type Graph struct {
	Profile  *Entity
	Entities []*Entity
	Rels     []*Rel

	Memberships                           *Table
	MembershipProfile, MembershipAudience string

	Events                             *Table
	EventProfile, EventName, EventTime string
}

// Tables lists every table of the graph.
func (g *Graph) Tables() []*Table {
	ts := []*Table{g.Profile.Table}
	for _, e := range g.Entities {
		ts = append(ts, e.Table)
	}
	for _, r := range g.Rels {
		if r.Through != nil {
			ts = append(ts, r.Through)
		}
	}
	if g.Memberships != nil {
		ts = append(ts, g.Memberships)
	}
	if g.Events != nil {
		ts = append(ts, g.Events)
	}
	return ts
}

// Entity returns the entity named name, profile included.
func (g *Graph) Entity(name string) *Entity {
	if name == "profile" {
		return g.Profile
	}
	for _, e := range g.Entities {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Text renders the graph block.
func (g *Graph) Text() string {
	var b strings.Builder
	b.WriteString("graph {\n")
	fmt.Fprintf(&b, "  profile { table %s key %s }\n", grammar.Quote(g.Profile.Table.QName()), g.Profile.Key)
	for _, e := range g.Entities {
		fmt.Fprintf(&b, "  entity %s { table %s key %s }\n", e.Name, grammar.Quote(e.Table.QName()), e.Key)
	}
	for _, r := range g.Rels {
		var on []string
		if r.Through == nil {
			for _, p := range r.On {
				on = append(on, fmt.Sprintf("%s.%s = %s.%s", r.From.Name, p.Upper, r.To.Name, p.Lower))
			}
			fmt.Fprintf(&b, "  relationship %s -> %s on %s\n", r.From.Name, r.To.Name, strings.Join(on, " and "))
			continue
		}
		for _, p := range r.On {
			on = append(on, fmt.Sprintf("%s.%s = %s.%s", r.From.Name, p.Upper, r.Alias, p.Lower))
		}
		for _, p := range r.ThroughOn {
			on = append(on, fmt.Sprintf("%s.%s = %s.%s", r.Alias, p.Upper, r.To.Name, p.Lower))
		}
		fmt.Fprintf(&b, "  relationship %s -> %s through %s as %s\n      on %s\n", r.From.Name, r.To.Name,
			grammar.Quote(r.Through.QName()), r.Alias, strings.Join(on, " and "))
	}
	if g.Memberships != nil {
		fmt.Fprintf(&b, "  memberships { table %s profile %s audience %s }\n", grammar.Quote(g.Memberships.QName()), g.MembershipProfile, g.MembershipAudience)
	}
	if g.Events != nil {
		fmt.Fprintf(&b, "  events { table %s profile %s name %s time %s }\n", grammar.Quote(g.Events.QName()), g.EventProfile, g.EventName, g.EventTime)
	}
	b.WriteString("}\n")
	return b.String()
}

// ---- audiences ----

// Audience is a generated audience; its conditions render as DSL text.
type Audience struct {
	Name   string
	Match  Cond
	Enrich []string // "entity.column" or "trait.column"
}

// Cond is an audience-level condition: *And, *Or, *Not, *Path, *Trait,
// *InAudience, *Performed.
type Cond interface{ text() string }

// Pred is a row predicate: *PAnd, *POr, *PNot, *Cmp.
type Pred interface{ ptext() string }

type (
	And  struct{ Terms []Cond }
	Or   struct{ Terms []Cond }
	Not  struct{ X Cond }
	Path struct{ Steps []*Step }
	Step struct {
		Entity *Entity
		Quant  string // "" or e.g. "at least 2"
		Where  Pred
		Having string // "" or e.g. "count >= 2", "sum(amount) > 3"
	}
	Trait      struct{ Cmp *Cmp }
	InAudience struct{ Name string }
	Performed  struct {
		Event  string
		Quant  string // "" or e.g. "at most 1"
		Within string // "" or e.g. "7 days"
		Where  Pred
	}
	PAnd struct{ Terms []Pred }
	POr  struct{ Terms []Pred }
	PNot struct{ X Pred }
	// Cmp is a comparison as text: Left is the column, Rest the operator
	// and operand, e.g. `= "x"` or `< account.limit`.
	Cmp struct {
		Left, Rest string
		// Refs names the entities whose columns the comparison uses, so
		// that shrinking keeps only comparisons still in scope.
		Refs []string
	}
)

func joinConds(ts []Cond, op string) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = "(" + t.text() + ")"
	}
	return strings.Join(parts, " "+op+" ")
}

func (c *And) text() string { return joinConds(c.Terms, "and") }
func (c *Or) text() string  { return joinConds(c.Terms, "or") }
func (c *Not) text() string { return "not (" + c.X.text() + ")" }
func (c *Path) text() string {
	var b strings.Builder
	b.WriteString("profile")
	for _, s := range c.Steps {
		b.WriteString(" -> ")
		if s.Quant != "" {
			b.WriteString(s.Quant + " ")
		}
		b.WriteString(s.Entity.Name)
		if s.Where != nil {
			b.WriteString(" where " + whereText(s.Where))
		}
		if s.Having != "" {
			b.WriteString(" having " + s.Having)
		}
	}
	return b.String()
}
func (c *Trait) text() string      { return "trait " + c.Cmp.ptext() }
func (c *InAudience) text() string { return "in audience " + c.Name }
func (c *Performed) text() string {
	s := "performed " + grammar.Quote(c.Event)
	if c.Quant != "" {
		s += " " + c.Quant + " times"
	}
	if c.Within != "" {
		s += " within " + c.Within
	}
	if c.Where != nil {
		s += " where " + whereText(c.Where)
	}
	return s
}

func whereText(p Pred) string {
	if c, ok := p.(*Cmp); ok {
		return c.ptext()
	}
	return "(" + p.ptext() + ")"
}

func joinPreds(ts []Pred, op string) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		if c, ok := t.(*Cmp); ok {
			parts[i] = c.ptext()
		} else {
			parts[i] = "(" + t.ptext() + ")"
		}
	}
	return strings.Join(parts, " "+op+" ")
}

func (p *PAnd) ptext() string { return joinPreds(p.Terms, "and") }
func (p *POr) ptext() string  { return joinPreds(p.Terms, "or") }
func (p *PNot) ptext() string { return "not (" + p.X.ptext() + ")" }
func (p *Cmp) ptext() string  { return p.Left + " " + p.Rest }

// Text renders the audience.
func (a *Audience) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audience %s {\n  match %s\n", a.Name, a.Match.text())
	if len(a.Enrich) > 0 {
		fmt.Fprintf(&b, "  enrich %s\n", strings.Join(a.Enrich, ", "))
	}
	b.WriteString("}\n")
	return b.String()
}

// ---- cases ----

// Case is one generated test: a graph with data, helper audiences the
// target may refer to with `in audience`, and the target audience.
type Case struct {
	Graph   *Graph
	Helpers []*Audience
	Target  *Audience
	Now     time.Time
	// Limit, when positive, previews only the first Limit members.
	Limit int
}

// AudiencesText renders the helpers the target uses (directly or not) and
// the target.
func (c *Case) AudiencesText() string {
	var b strings.Builder
	used := c.usedHelpers()
	for _, h := range c.Helpers {
		if used[h.Name] {
			b.WriteString(h.Text())
		}
	}
	b.WriteString(c.Target.Text())
	return b.String()
}

func (c *Case) usedHelpers() map[string]bool {
	used := map[string]bool{}
	var walk func(Cond)
	walk = func(x Cond) {
		switch x := x.(type) {
		case *And:
			for _, t := range x.Terms {
				walk(t)
			}
		case *Or:
			for _, t := range x.Terms {
				walk(t)
			}
		case *Not:
			walk(x.X)
		case *InAudience:
			for _, h := range c.Helpers {
				if h.Name == x.Name && !used[h.Name] {
					used[h.Name] = true
					walk(h.Match)
				}
			}
		}
	}
	walk(c.Target.Match)
	return used
}

// Source is the whole case as workspace files.
func (c *Case) Source() map[string]string {
	return map[string]string{"graph.la": c.Graph.Text(), "audiences.la": c.AudiencesText()}
}

// DataText lists the non-empty tables as SQL a reader can paste into
// DuckDB, for reproducers.
func (c *Case) DataText() string {
	var b strings.Builder
	done := map[string]bool{}
	for _, t := range c.Graph.Tables() {
		for _, s := range t.DDL() {
			if !done[s] {
				done[s] = true
				b.WriteString(s + ";\n")
			}
		}
		if len(t.Rows) == 0 {
			continue
		}
		b.WriteString("INSERT INTO " + t.SQLName() + " VALUES\n")
		for i, r := range t.Rows {
			vals := make([]string, len(r))
			for j, v := range r {
				vals[j] = SQLLiteral(v, t.Columns[j].Type)
			}
			sep := ",\n"
			if i == len(t.Rows)-1 {
				sep = ";\n"
			}
			b.WriteString("  (" + strings.Join(vals, ", ") + ")" + sep)
		}
	}
	return b.String()
}

// SQLName is the table's quoted DuckDB name.
func (t *Table) SQLName() string {
	parts := make([]string, len(t.Name))
	for i, p := range t.Name {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// DDL creates the table (and its schema) in DuckDB.
func (t *Table) DDL() []string {
	var out []string
	if len(t.Name) == 2 {
		out = append(out, `CREATE SCHEMA IF NOT EXISTS "`+strings.ReplaceAll(t.Name[0], `"`, `""`)+`"`)
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = `"` + strings.ReplaceAll(c.Name, `"`, `""`) + `" ` + c.Type.SQL()
	}
	return append(out, "CREATE TABLE "+t.SQLName()+" ("+strings.Join(cols, ", ")+")")
}

// SQLLiteral writes v as a DuckDB literal of type t (for reproducers only;
// tests load data through parameters).
func SQLLiteral(v any, t Type) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		if t == Date {
			return "DATE '" + v.UTC().Format("2006-01-02") + "'"
		}
		return "TIMESTAMP '" + v.UTC().Format("2006-01-02 15:04:05.000000") + "'"
	}
	return fmt.Sprint(v)
}

// NumberText writes a number as the DSL does.
func NumberText(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	return r.FloatString(2)
}
