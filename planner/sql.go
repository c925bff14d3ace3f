package planner

import (
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/dsl"
)

// The statement is a WITH list of named relations (CTEs) and one final
// SELECT. Every SELECT this package writes is one of those: the body of a
// CTE, a branch of a CTE's UNION ALL, or the final SELECT. None is nested in
// an expression or a FROM clause, so no SELECT can read a column of another
// one's rows: there is no correlation to restrict or to run once per row,
// on any warehouse. checkUncorrelated verifies this on every plan.

// cte is one named relation of the WITH list.
type cte struct {
	name string
	body string
	// refs counts the FROM and JOIN clauses that read it: a relation read
	// more than once is materialized where the dialect can be told to, and
	// one with materialize set in any case.
	refs        int
	materialize bool
}

// selectQuery is one SELECT. Its expressions are SQL text over the aliases
// its from list introduces; from[0] is "relation AS alias", the rest are
// JOIN or LEFT JOIN clauses.
type selectQuery struct {
	distinct bool
	cols     []string
	from     []string
	where    []string
	groupBy  []string
}

func (q *selectQuery) sql() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.distinct {
		b.WriteString("DISTINCT ")
	}
	b.WriteString(strings.Join(q.cols, ",\n  "))
	for i, f := range q.from {
		if i == 0 {
			b.WriteString("\nFROM " + f)
		} else {
			b.WriteString("\n" + f)
		}
	}
	seen := map[string]bool{}
	first := true
	for _, w := range q.where {
		if seen[w] {
			continue // the key is also a join column, say
		}
		seen[w] = true
		if first {
			first = false
			b.WriteString("\nWHERE " + indent(w))
		} else {
			b.WriteString("\n  AND " + indent(w))
		}
	}
	if len(q.groupBy) > 0 {
		b.WriteString("\nGROUP BY " + strings.Join(q.groupBy, ", "))
	}
	return b.String()
}

// addWhere appends the conjuncts of x to q's WHERE list.
func (q *selectQuery) addWhere(x expr) {
	q.where = append(q.where, conjuncts(x)...)
}

// newCTE adds a relation to the WITH list; relations are listed in the
// order they are made, so a body may read only relations made before it.
//
// Names read as what they hold, la_credit_card_rows3: the label is an
// entity name or a word, both identifiers, so the name is valid unquoted
// in every dialect; the number keeps it unique.
func (c *compiler) newCTE(label, kind, body string) *cte {
	c.n++
	name := c.prefix + label + "_" + kind + strconv.Itoa(c.n)
	if label == "" {
		name = c.prefix + kind + strconv.Itoa(c.n)
	}
	t := &cte{name: name, body: body}
	c.ctes = append(c.ctes, t)
	return t
}

// read is the FROM or JOIN operand for t, counting the read.
func (c *compiler) read(t *cte, alias string) string {
	t.refs++
	return c.d.Quote(t.name) + " AS " + alias
}

// withList renders the WITH clause of the relations made so far.
func (c *compiler) withList() string {
	var b strings.Builder
	for i, t := range c.ctes {
		if i == 0 {
			b.WriteString("WITH ")
		} else {
			b.WriteString(",\n")
		}
		mat := ""
		if t.refs > 1 || t.materialize {
			mat = c.d.Materialized()
		}
		b.WriteString(c.d.Quote(t.name) + " AS" + mat + " (\n  " + indent(t.body) + "\n)")
	}
	if len(c.ctes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// ctePrefix chooses the prefix of the statement's relation names: "la_",
// or "la0_", "la1_", … when a table of the graph is named without a schema
// and starts with it, so that no relation name can shadow a table.
func ctePrefix(g *dsl.Graph) string {
	var single []string
	add := func(t dsl.TableName) {
		if len(t) == 1 {
			single = append(single, strings.ToLower(t[0]))
		}
	}
	if g.Profile != nil {
		add(g.Profile.Table)
	}
	for _, e := range g.Entities {
		add(e.Table)
	}
	for _, r := range g.Relationships {
		if r.Through != nil {
			add(r.Through.Table)
		}
	}
	if g.Memberships != nil {
		add(g.Memberships.Table)
	}
	if g.Events != nil {
		add(g.Events.Table)
	}
	for n := -1; ; n++ {
		p := "la_"
		if n >= 0 {
			p = "la" + strconv.Itoa(n) + "_"
		}
		free := true
		for _, s := range single {
			if strings.HasPrefix(s, p) {
				free = false
				break
			}
		}
		if free {
			return p
		}
	}
}

// col is alias.name for a column of a warehouse table (the dialect's
// identifier rule applies).
func (c *compiler) col(alias, name string) string { return alias + "." + c.d.Ident(name) }

// gen is alias.name for a column the planner named.
func (c *compiler) gen(alias, name string) string { return alias + "." + c.d.Quote(name) }

// as is "expr AS name" for a column the planner names.
func (c *compiler) as(expr, name string) string { return expr + " AS " + c.d.Quote(name) }

func (c *compiler) table(t dsl.TableName) string {
	parts := make([]string, len(t))
	for i, p := range t {
		parts[i] = c.d.Ident(p)
	}
	return strings.Join(parts, ".")
}

// Names of the columns the planner gives its relations. They are lower
// case ASCII, so that they read the same in every dialect, and never
// derived from a workspace name, so that no column of a table can take them.
func pkName(i int) string  { return "p" + strconv.Itoa(i) } // the parent's join value
func ctxName(i int) string { return "x" + strconv.Itoa(i) } // a value carried down
func ownName(i int) string { return "c" + strconv.Itoa(i) } // a column of the step's row

const (
	keyName   = "k"   // the entity's (or profile's) key
	countName = "n"   // COUNT(DISTINCT key) of matching rows
	aggName   = "a"   // SUM/MIN/MAX/AVG of matching rows
	moreName  = "h"   // 1 when the row has a matching child, else 0
	rankName  = "rnk" // a member's rank by key (preview limit)
)
