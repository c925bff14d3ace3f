package dsl

// TablesRead lists the tables a cycle of audience a reads: the profile's,
// those of its paths' entities and junctions and of the audiences it
// includes, and the memberships and events tables when it tests them. A
// load that fails fails the audiences that read its table, and only them.
func TablesRead(g *Graph, a *Audience) []TableName {
	var out []TableName
	seen := map[string]bool{}
	add := func(t TableName) {
		if len(t) > 0 && !seen[t.String()] {
			seen[t.String()] = true
			out = append(out, t)
		}
	}
	add(g.Profile.Table)
	visited := map[*Audience]bool{}
	var visit func(a *Audience)
	visit = func(a *Audience) {
		if a == nil || visited[a] {
			return
		}
		visited[a] = true
		Inspect(a.Match, func(n Node) bool {
			switch n := n.(type) {
			case *Step:
				add(n.Entity.Table)
				if n.Rel != nil && n.Rel.Through != nil {
					add(n.Rel.Through.Table)
				}
			case *InAudience:
				if n.Audience != nil {
					visit(n.Audience)
				} else if g.Memberships != nil {
					add(g.Memberships.Table)
				}
			case *Performed:
				if g.Events != nil {
					add(g.Events.Table)
				}
			}
			return true
		})
	}
	visit(a)
	return out
}
