package planner

import (
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/dsl"
)

// Names in the statement that no DSL table can take: table name parts are
// identifiers, which cannot contain '-'. Generated aliases (p, e0, t1, …) are
// never confused with tables because every table is aliased.
const (
	rankCol    = `"la-rank"`
	membersCTE = `"la-members"`
	rowsCTE    = `"la-rows"`
	resultCTE  = `"la-result"`
)

// audience writes the whole statement:
//
//	WITH "la-members" AS (profile rows with a key that satisfy the match),
//	     "la-rows"    AS (one SELECT per way a chain can end, UNION ALL),
//	     "la-result"  AS (SELECT DISTINCT …)
//	SELECT … FROM "la-result" ORDER BY profile_key, key_0, … NULLS FIRST
//
// A chain of the primary path either reaches its last step, or stops at a
// row whose next step holds over no matching rows, or (a member without
// matching rows at step 0) has no entity at all. Each case is an inner
// join down to where the chain ends plus, when it stops early, a NOT EXISTS
// for the next step; a case that cannot produce rows (the next quantifier
// needs at least one row) is left out. Conditions are correlated EXISTS or
// counting subqueries throughout, so a profile with many matching rows is
// still one member, and DISTINCT removes the duplicates a junction table
// may list.
func (c *compiler) audience(a *dsl.Audience) (string, []Column, error) {
	g := c.g
	const p = "p"
	match, err := c.cond(a.Match, p, false)
	if err != nil {
		return "", nil, err
	}
	key := c.col(p, g.Profile.Key)
	where := append([]string{key + " IS NOT NULL"}, conjuncts(match)...)
	from := []string{c.table(g.Profile.Table) + " AS " + p}
	var members string
	if c.opts.Limit > 0 {
		// The first Limit distinct keys: a key the profile table lists
		// twice is still one member.
		ranked := selectSQL(p+".*, DENSE_RANK() OVER (ORDER BY "+c.d.SortKey(c.d.Text(key))+") AS "+rankCol, from, where)
		members = selectSQL(p+".*", []string{"(\n  " + indent(ranked) + "\n) AS " + p}, []string{rankCol + " <= " + strconv.Itoa(c.opts.Limit)})
	} else {
		members = selectSQL(p+".*", from, where)
	}

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

	var parts []string
	if a.Primary == nil {
		parts = append(parts, c.part(a, cols, -1, nil, nil))
	} else {
		path := a.Primary
		n := len(steps)
		for k := n - 1; k >= 0; k-- {
			if k < n-1 && !holdsAtZero(steps[k+1]) {
				continue // a matching row at k always has a child at k+1
			}
			if blocked(steps[1 : k+1]) {
				continue // a chain never goes below a step that wants no rows
			}
			part, err := c.chain(a, cols, path, k)
			if err != nil {
				return "", nil, err
			}
			parts = append(parts, part)
		}
		if !required(a.Match, path) || holdsAtZero(steps[0]) {
			// A member with no matching row at step 0.
			_, from, where, err := c.children(path, 0, p, scope{profile: p}, joinChildren)
			if err != nil {
				return "", nil, err
			}
			none := exists(selectSQL("1", from, where), true)
			parts = append(parts, c.part(a, cols, -1, nil, []string{none.sql}))
		}
	}

	if len(parts) == 0 {
		// No chain can exist (e.g. having count < 0): no rows, but a
		// statement with the right columns.
		parts = append(parts, c.part(a, cols, -1, nil, []string{"FALSE"}))
	}
	names := make([]string, len(cols))
	order := make([]string, 1+len(steps))
	for i, col := range cols {
		names[i] = quoteIdent(col.Name)
		switch col.Role {
		case RoleProfileKey:
			order[0] = c.d.SortKey(names[i])
		case RoleEntityKey:
			order[1+col.Step] = c.d.SortKey(names[i]) + " NULLS FIRST"
		}
	}
	list := strings.Join(names, ", ")
	var b strings.Builder
	b.WriteString("WITH " + membersCTE + " AS" + c.d.Materialized() + " (\n  " + indent(members) + "\n),\n")
	b.WriteString(rowsCTE + " AS (\n  " + indent(strings.Join(parts, "\nUNION ALL\n")) + "\n),\n")
	b.WriteString(resultCTE + " AS (\n  SELECT DISTINCT " + list + "\n  FROM " + rowsCTE + "\n)\n")
	b.WriteString("SELECT " + list + "\nFROM " + resultCTE)
	if !c.opts.Unordered {
		b.WriteString("\nORDER BY " + strings.Join(order, ", "))
	}
	return b.String(), cols, nil
}

// chain is the part of the rows whose chains end at step k: rows of steps
// 0..k joined from the member down, each matching; below the last step, the
// row at k has no matching child.
func (c *compiler) chain(a *dsl.Audience, cols []Column, path *dsl.Path, k int) (string, error) {
	steps := path.Steps
	sc := scope{profile: "p"}
	from := []string{membersCTE + " AS p"}
	var where []string
	upper := "p"
	aliases := make([]string, k+1)
	for i := 0; i <= k; i++ {
		st := steps[i]
		if st.Entity == nil || st.Rel == nil {
			return "", errorAt(st, "step %d of the path is not resolved", i+1)
		}
		e := "e" + strconv.Itoa(i)
		aliases[i] = e
		table := c.table(st.Entity.Table) + " AS " + e
		if rel := st.Rel; rel.Through == nil {
			from = append(from, "JOIN "+table+" ON "+strings.Join(c.pairs(rel.On, upper, e), " AND "))
		} else {
			j := "j" + strconv.Itoa(i)
			from = append(from,
				"JOIN "+c.table(rel.Through.Table)+" AS "+j+" ON "+strings.Join(c.pairs(rel.On, upper, j), " AND "),
				"JOIN "+table+" ON "+strings.Join(c.pairs(rel.ThroughOn, j, e), " AND "))
		}
		sc = sc.withStep(i, e)
		where = append(where, c.col(e, st.Entity.Key)+" IS NOT NULL")
		if st.Where != nil {
			x, err := c.pred(st.Where, sc, false)
			if err != nil {
				return "", err
			}
			where = append(where, conjuncts(x)...)
		}
		if i+1 == len(steps) {
			break
		}
		next := steps[i+1]
		switch {
		case i == k:
			// The chain stops here: the next step holds over no rows
			// (the caller checked), so this row matches exactly when
			// it has no matching child.
			_, f, w, err := c.children(path, i+1, e, sc, joinChildren)
			if err != nil {
				return "", err
			}
			where = append(where, exists(selectSQL("1", f, w), true).sql)
		case next.Having == nil && next.Quant.Kind == dsl.AtLeast && next.Quant.N <= 1:
			// The joined child at i+1 is matching, so at least one
			// matching child exists: the quantifier holds.
		default:
			x, err := c.stepHolds(path, i+1, e, sc, false)
			if err != nil {
				return "", err
			}
			where = append(where, conjuncts(x)...)
		}
		upper = e
	}
	return c.part(a, cols, k, aliases, where, from...), nil
}

// part is one SELECT of the rows: the chain ends at step k (-1: no entity),
// aliases names the step rows 0..k.
func (c *compiler) part(a *dsl.Audience, cols []Column, k int, aliases []string, where []string, from ...string) string {
	if len(from) == 0 {
		from = []string{membersCTE + " AS p"}
	}
	sel := make([]string, len(cols))
	for i, col := range cols {
		var v string
		switch col.Role {
		case RoleProfileKey:
			v = c.d.Text(c.col("p", c.g.Profile.Key))
		case RoleEntityKey:
			if col.Step <= k {
				v = c.d.Text(c.col(aliases[col.Step], a.Primary.Steps[col.Step].Entity.Key))
			} else {
				v = c.d.Text("NULL")
			}
		case RoleEnrich:
			switch {
			case col.Ref.Source == dsl.SourceTrait:
				v = c.col("p", col.Ref.Column)
			case col.Step <= k:
				v = c.col(aliases[col.Step], col.Ref.Column)
			default:
				v = "NULL"
			}
		}
		sel[i] = v + " AS " + quoteIdent(col.Name)
	}
	return selectSQL(strings.Join(sel, ",\n  "), from, where)
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
