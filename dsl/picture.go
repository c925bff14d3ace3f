package dsl

import (
	"fmt"
	"io"
	"strings"
)

// Levels returns each entity's depth in the graph: profile is 1, an entity
// is one more than the shallowest entity leading to it. Unreachable
// entities are absent.
func (g *Graph) Levels() map[*Entity]int {
	levels := map[*Entity]int{g.Profile: 1}
	for changed := true; changed; {
		changed = false
		for _, r := range g.Relationships {
			l, ok := levels[r.From]
			if !ok {
				continue
			}
			if cur, ok := levels[r.To]; !ok || l+1 < cur {
				levels[r.To], changed = l+1, true
			}
		}
	}
	return levels
}

func joinLabel(r *Relationship) string {
	var parts []string
	for _, p := range r.On {
		lower := r.To.Name
		if r.Through != nil {
			lower = r.Through.Alias
		}
		parts = append(parts, fmt.Sprintf("%s.%s = %s.%s", r.From.Name, p.Upper, lower, p.Lower))
	}
	for _, p := range r.ThroughOn {
		parts = append(parts, fmt.Sprintf("%s.%s = %s.%s", r.Through.Alias, p.Upper, r.To.Name, p.Lower))
	}
	label := strings.Join(parts, " and ")
	if r.Through != nil {
		label = fmt.Sprintf("through %s: %s", r.Through.Table, label)
	}
	return label
}

func entityLabel(e *Entity, level int) string {
	l := "unreachable"
	if level > 0 {
		l = fmt.Sprintf("level %d", level)
	}
	return fmt.Sprintf("%s (%s)\\n%s key %s", e.Name, l, e.Table.String(), e.Key)
}

// WriteMermaid draws the graph as a Mermaid flowchart: entities with their
// table, key and depth level; relationships with their join columns.
func (g *Graph) WriteMermaid(w io.Writer) error {
	levels := g.Levels()
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	for _, e := range append([]*Entity{g.Profile}, g.Entities...) {
		label := strings.ReplaceAll(entityLabel(e, levels[e]), `\n`, "<br/>")
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", e.Name, strings.ReplaceAll(label, `"`, "#quot;"))
	}
	for _, r := range g.Relationships {
		fmt.Fprintf(&b, "  %s -->|\"%s\"| %s\n", r.From.Name, strings.ReplaceAll(joinLabel(r), `"`, "#quot;"), r.To.Name)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDot draws the graph in Graphviz dot, one rank per depth level.
func (g *Graph) WriteDot(w io.Writer) error {
	levels := g.Levels()
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
	var b strings.Builder
	b.WriteString("digraph graph_ {\n  rankdir=TB;\n  node [shape=box];\n")
	byLevel := map[int][]string{}
	maxLevel := 0
	for _, e := range append([]*Entity{g.Profile}, g.Entities...) {
		fmt.Fprintf(&b, "  %s [label=%s];\n", q(e.Name), q(entityLabel(e, levels[e])))
		byLevel[levels[e]] = append(byLevel[levels[e]], q(e.Name))
		maxLevel = max(maxLevel, levels[e])
	}
	for _, r := range g.Relationships {
		fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", q(r.From.Name), q(r.To.Name), q(joinLabel(r)))
	}
	for l := 1; l <= maxLevel; l++ {
		if len(byLevel[l]) > 0 {
			fmt.Fprintf(&b, "  { rank=same; %s }\n", strings.Join(byLevel[l], "; "))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
