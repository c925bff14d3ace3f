package dsl

// Inspect walks a condition in depth-first order, as go/ast.Inspect does:
// it calls f(n) for n, and if f returns true, for each of n's children —
// the terms of And, Or, Not; the steps of a Path with their Where
// predicates; a Trait's Compare; a Performed's Where; the terms of the
// predicate nodes. Referenced audiences are not entered.
func Inspect(n Node, f func(Node) bool) {
	if n == nil || !f(n) {
		return
	}
	switch n := n.(type) {
	case *And:
		for _, t := range n.Terms {
			Inspect(t, f)
		}
	case *Or:
		for _, t := range n.Terms {
			Inspect(t, f)
		}
	case *Not:
		Inspect(n.X, f)
	case *Path:
		for _, s := range n.Steps {
			Inspect(s, f)
		}
	case *Step:
		if n.Where != nil {
			Inspect(n.Where, f)
		}
	case *Trait:
		Inspect(n.Compare, f)
	case *Performed:
		if n.Where != nil {
			Inspect(n.Where, f)
		}
	case *PredAnd:
		for _, t := range n.Terms {
			Inspect(t, f)
		}
	case *PredOr:
		for _, t := range n.Terms {
			Inspect(t, f)
		}
	case *PredNot:
		Inspect(n.X, f)
	}
}
