package planner

import (
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/dsl"
)

// audience writes the whole statement:
//
//	WITH <the relations of each path, membership and event test>,
//	     members AS (the profile rows with a key that satisfy the match),
//	     rows    AS (one SELECT per way a chain can end, UNION ALL),
//	     result  AS (SELECT DISTINCT …)
//	SELECT … FROM result ORDER BY profile_key, key_0, … NULLS FIRST
//
// A chain of the primary path either reaches its last step, or stops at a
// row whose next step holds over no matching rows, or (a member without
// matching rows at step 0) has no entity at all. Each case joins the
// members to the primary path's rows relations down to where the chain
// ends: those hold only matching rows, so no quantifier is evaluated
// twice. A case that cannot produce rows (the next quantifier needs at
// least one row) is left out; DISTINCT removes the duplicates that several
// parent rows with one join value may produce.
func (c *compiler) audience(a *dsl.Audience) (string, []Column, error) {
	g := c.g
	c.primary, c.enrich = a.Primary, a.Enrich

	cols := []Column{{Name: "profile_key", Role: RoleProfileKey, Step: -1}}
	var steps []*dsl.Step
	if a.Primary != nil {
		steps = a.Primary.Steps
	}
	for i := range steps {
		cols = append(cols, Column{Name: "key_" + strconv.Itoa(i), Role: RoleEntityKey, Step: i})
	}
	for j, r := range a.Enrich {
		if r.Source == dsl.SourceStep && (a.Primary == nil || r.StepIndex < 0 || r.StepIndex >= len(steps)) {
			return "", nil, errorAt(r, "enrich %s: not a step of the audience's path", r)
		}
		if r.Source == dsl.SourceEvents {
			return "", nil, errorAt(r, "enrich %s: events columns cannot be enriched", r)
		}
		step := -1
		if r.Source == dsl.SourceStep {
			step = r.StepIndex
		}
		cols = append(cols, Column{Name: "enrich_" + strconv.Itoa(j), Role: RoleEnrich, Step: step, Ref: r})
	}

	var pp *pathPlan
	if a.Primary != nil {
		var err error
		if pp, err = c.plan(a.Primary); err != nil {
			return "", nil, err
		}
	}

	// The members, with the profile columns the rows read.
	var profileCols []string
	profileCol := func(col string) string {
		for i, p := range profileCols {
			if p == col {
				return ownName(i)
			}
		}
		profileCols = append(profileCols, col)
		return ownName(len(profileCols) - 1)
	}
	for _, r := range a.Enrich {
		if r.Source == dsl.SourceTrait {
			profileCol(r.Column)
		}
	}
	if pp != nil {
		for _, p := range pp.steps[0].st.Rel.On {
			profileCol(p.Upper)
		}
		for _, x := range pp.steps[0].ctx {
			profileCol(x.ref.Column)
		}
	}
	q := &selectQuery{from: []string{c.table(g.Profile.Table) + " AS p"}}
	match, err := c.cond(a.Match, q, false)
	if err != nil {
		return "", nil, err
	}
	key := c.col("p", g.Profile.Key)
	q.where = append([]string{key + " IS NOT NULL"}, conjuncts(match)...)
	q.cols = []string{c.as(key, keyName)}
	for i, col := range profileCols {
		q.cols = append(q.cols, c.as(c.col("p", col), ownName(i)))
	}
	if c.opts.Limit > 0 {
		// The first Limit distinct keys: a key the profile table lists
		// twice is still one member.
		q.cols = append(q.cols, c.as("DENSE_RANK() OVER (ORDER BY "+c.d.SortKey(c.d.Text(key))+")", rankName))
		ranked := c.newCTE("", "ranked", q.sql())
		q = &selectQuery{from: []string{c.read(ranked, "p")}, where: []string{c.gen("p", rankName) + " <= " + strconv.Itoa(c.opts.Limit)}}
		q.cols = []string{c.as(c.gen("p", keyName), keyName)}
		for i := range profileCols {
			q.cols = append(q.cols, c.as(c.gen("p", ownName(i)), ownName(i)))
		}
	}
	members := c.newCTE("", "members", q.sql())
	// Computed once, before the rows join it: under a tight memory_limit
	// DuckDB spills a materialized relation and the sort after it, where
	// the pipeline through DISTINCT and ORDER BY runs out of memory.
	members.materialize = true
	fromMembers := func(col string) string { return c.gen("p", profileCol(col)) }

	var parts []string
	if pp == nil {
		parts = append(parts, c.part(a, cols, nil, -1, members, nil, nil, fromMembers))
	} else {
		n := len(steps)
		for k := n - 1; k >= 0; k-- {
			if k < n-1 && !holdsAtZero(steps[k+1]) {
				continue // a matching row at k always has a child at k+1
			}
			if blocked(steps[1 : k+1]) {
				continue // a chain never goes below a step that wants no rows
			}
			parts = append(parts, c.chain(a, cols, pp, k, members, fromMembers))
		}
		if !required(a.Match, a.Primary) || holdsAtZero(steps[0]) {
			// A member with no matching row at step 0.
			first := pp.steps[0]
			if first.agg == nil {
				if err := c.makeAgg(first); err != nil {
					return "", nil, err
				}
			}
			on := c.link(first, "m", fromMembers, func(x ctxItem) string { return fromMembers(x.ref.Column) })
			from := []string{"LEFT JOIN " + c.read(first.agg, "m") + " ON " + on}
			parts = append(parts, c.part(a, cols, nil, -1, members, from, []string{c.gen("m", pkName(0)) + " IS NULL"}, fromMembers))
		}
	}
	if len(parts) == 0 {
		// No chain can exist (e.g. having count < 0): no rows, but a
		// statement with the right columns.
		parts = append(parts, c.part(a, cols, nil, -1, members, nil, []string{"FALSE"}, fromMembers))
	}
	rows := c.newCTE("", "rows", strings.Join(parts, "\nUNION ALL\n"))

	names := make([]string, len(cols))
	order := make([]string, 1+len(steps))
	for i, col := range cols {
		names[i] = c.d.Quote(col.Name)
		switch col.Role {
		case RoleProfileKey:
			order[0] = c.d.SortKey(names[i])
		case RoleEntityKey:
			order[1+col.Step] = c.d.SortKey(names[i]) + " NULLS FIRST"
		}
	}
	list := strings.Join(names, ", ")
	result := c.newCTE("", "result", "SELECT DISTINCT "+list+"\nFROM "+c.read(rows, "r"))
	var b strings.Builder
	b.WriteString("SELECT " + list + "\nFROM " + c.read(result, "r"))
	if !c.opts.Unordered {
		b.WriteString("\nORDER BY " + strings.Join(order, ", "))
	}
	return c.withList() + b.String(), cols, nil
}

// chain is the part of the rows whose chains end at step k: the members
// joined to the rows of steps 0..k; below the last step, the row at k has
// no matching child.
func (c *compiler) chain(a *dsl.Audience, cols []Column, pp *pathPlan, k int, members *cte, fromMembers func(string) string) string {
	aliases := make([]string, k+1)
	var from, where []string
	upper, value := fromMembers, func(x ctxItem) string { return fromMembers(x.ref.Column) }
	for i := 0; i <= k; i++ {
		sp := pp.steps[i]
		r := "r" + strconv.Itoa(i)
		aliases[i] = r
		from = append(from, "JOIN "+c.read(sp.rows, r)+" ON "+c.link(sp, r, upper, value))
		ownCol := func(col string) string { return c.gen(r, ownName(sp.ownIndex(col))) }
		upper = ownCol
		value = func(x ctxItem) string { return c.carried(sp, x, r, r, ownCol) }
	}
	if k+1 < len(pp.steps) && pp.steps[k].more {
		where = append(where, c.gen(aliases[k], moreName)+" = 0")
	}
	return c.part(a, cols, pp, k, members, from, where, fromMembers)
}

// part is one SELECT of the rows over the members (alias p) and joins:
// the chain ends at step k (-1: no entity), the rows of steps 0..k joined
// as r0, r1, ….
func (c *compiler) part(a *dsl.Audience, cols []Column, pp *pathPlan, k int, members *cte, joins, where []string, fromMembers func(string) string) string {
	q := &selectQuery{from: append([]string{c.read(members, "p")}, joins...), where: where}
	for _, col := range cols {
		var v string
		switch col.Role {
		case RoleProfileKey:
			v = c.d.Text(c.gen("p", keyName))
		case RoleEntityKey:
			if col.Step <= k {
				v = c.d.Text(c.gen("r"+strconv.Itoa(col.Step), keyName))
			} else {
				v = c.d.Text("NULL")
			}
		case RoleEnrich:
			switch {
			case col.Ref.Source == dsl.SourceTrait:
				v = fromMembers(col.Ref.Column)
			case col.Step <= k:
				v = c.gen("r"+strconv.Itoa(col.Step), ownName(pp.steps[col.Step].ownIndex(col.Ref.Column)))
			default:
				v = "NULL"
			}
		}
		q.cols = append(q.cols, c.as(v, col.Name))
	}
	return q.sql()
}

// blocked reports whether one of steps holds only over no rows (exactly 0,
// at most 0, having count = 0): then a matching parent has no matching
// child, and no chain reaches the step.
func blocked(steps []*dsl.Step) bool {
	for _, st := range steps {
		if h := st.Having; h != nil {
			if h.Func != dsl.AggCount {
				continue
			}
			n, err := countValue(h)
			if err == nil && (h.Op == dsl.OpEq && n == 0 || h.Op == dsl.OpLt && n <= 1 || h.Op == dsl.OpLe && n <= 0) {
				return true
			}
			continue
		}
		if st.Quant.Kind != dsl.AtLeast && st.Quant.N == 0 {
			return true
		}
	}
	return false
}

// required reports whether path must hold for match to hold: it is match,
// or a term of a top-level conjunction.
func required(match dsl.Cond, path *dsl.Path) bool {
	switch m := match.(type) {
	case *dsl.Path:
		return m == path
	case *dsl.And:
		for _, t := range m.Terms {
			if required(t, path) {
				return true
			}
		}
	}
	return false
}
