package dsl

import (
	"fmt"
	"strings"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

// CanonicalAudience renders an audience's meaning as DSL text: one line per
// clause, fully parenthesised conditions, no comments or layout. Equal
// meaning gives equal text, so it fingerprints versions and lets tests
// compare IR before and after fmt.
func CanonicalAudience(a *Audience) string {
	s := canonicalDefinition(a)
	if a.Enabled != nil {
		s = strings.TrimSuffix(s, "}\n") + fmt.Sprintf("  enabled %t\n}\n", *a.Enabled)
	}
	return s
}

// canonicalDefinition is CanonicalAudience without `enabled`: what the
// members are, which a version fingerprints. Enabling is not an edit.
func canonicalDefinition(a *Audience) string {
	var b strings.Builder
	fmt.Fprintf(&b, "audience %s {\n", a.Name)
	if a.Description != "" {
		fmt.Fprintf(&b, "  description %s\n", grammar.Quote(a.Description))
	}
	fmt.Fprintf(&b, "  schedule %s\n", a.Schedule)
	if a.Match != nil {
		fmt.Fprintf(&b, "  match %s\n", CondString(a.Match))
	}
	if len(a.Enrich) > 0 {
		parts := make([]string, len(a.Enrich))
		for i, e := range a.Enrich {
			parts[i] = e.String()
		}
		fmt.Fprintf(&b, "  enrich %s\n", strings.Join(parts, ", "))
	}
	b.WriteString("}\n")
	return b.String()
}

// CanonicalGraph renders a graph as DSL text in declaration order.
func CanonicalGraph(g *Graph) string {
	var b strings.Builder
	b.WriteString("graph {\n")
	fmt.Fprintf(&b, "  max_depth %d\n", g.MaxDepth)
	fmt.Fprintf(&b, "  profile { table %s key %s }\n", grammar.Quote(g.Profile.Table.String()), g.Profile.Key)
	for _, e := range g.Entities {
		fmt.Fprintf(&b, "  entity %s { table %s key %s }\n", e.Name, grammar.Quote(e.Table.String()), e.Key)
	}
	for _, r := range g.Relationships {
		fmt.Fprintf(&b, "  relationship %s -> %s", r.From.Name, r.To.Name)
		var on []string
		if r.Through == nil {
			for _, p := range r.On {
				on = append(on, fmt.Sprintf("%s.%s = %s.%s", r.From.Name, p.Upper, r.To.Name, p.Lower))
			}
		} else {
			fmt.Fprintf(&b, " through %s as %s", grammar.Quote(r.Through.Table.String()), r.Through.Alias)
			for _, p := range r.On {
				on = append(on, fmt.Sprintf("%s.%s = %s.%s", r.From.Name, p.Upper, r.Through.Alias, p.Lower))
			}
			for _, p := range r.ThroughOn {
				on = append(on, fmt.Sprintf("%s.%s = %s.%s", r.Through.Alias, p.Upper, r.To.Name, p.Lower))
			}
		}
		fmt.Fprintf(&b, " on %s\n", strings.Join(on, " and "))
	}
	if m := g.Memberships; m != nil {
		fmt.Fprintf(&b, "  memberships { table %s profile %s audience %s }\n", grammar.Quote(m.Table.String()), m.ProfileColumn, m.AudienceColumn)
	}
	if e := g.Events; e != nil {
		fmt.Fprintf(&b, "  events { table %s profile %s name %s time %s }\n", grammar.Quote(e.Table.String()), e.ProfileColumn, e.NameColumn, e.TimeColumn)
	}
	b.WriteString("}\n")
	return b.String()
}

func (s Schedule) String() string {
	switch s.Kind {
	case ScheduleManual:
		return "manual"
	case ScheduleDaily:
		return "daily at " + grammar.Quote(s.DailyAt) + s.zone()
	case ScheduleCron:
		return "cron " + grammar.Quote(s.Cron) + s.zone()
	}
	return "every " + formatDuration(s.Every)
}

func (s Schedule) zone() string {
	if s.Zone == "" {
		return ""
	}
	return " in " + grammar.Quote(s.Zone)
}

func formatDuration(d interface{ Seconds() float64 }) string {
	sec := int64(d.Seconds())
	for _, u := range []struct {
		n    int64
		unit string
	}{{7 * 86400, "w"}, {86400, "d"}, {3600, "h"}, {60, "m"}} {
		if sec%u.n == 0 && sec >= u.n {
			return fmt.Sprintf("%d%s", sec/u.n, u.unit)
		}
	}
	return fmt.Sprintf("%ds", sec)
}

// CondString renders a condition as DSL text, parenthesising every group.
func CondString(c Cond) string {
	switch c := c.(type) {
	case *And:
		return joinConds(c.Terms, " and ")
	case *Or:
		return joinConds(c.Terms, " or ")
	case *Not:
		return "not " + wrapCond(c.X)
	case *Path:
		var b strings.Builder
		b.WriteString("profile")
		for _, s := range c.Steps {
			b.WriteString(" -> ")
			if s.Having == nil && s.Quant != (Quant{Kind: AtLeast, N: 1}) {
				fmt.Fprintf(&b, "%s %d ", s.Quant.Kind, s.Quant.N)
			}
			b.WriteString(s.Entity.Name)
			if s.Where != nil {
				b.WriteString(" where (" + PredString(s.Where) + ")")
			}
			if h := s.Having; h != nil {
				fn := h.Func.String()
				if h.Column != "" {
					fn += "(" + h.Column + ")"
				}
				fmt.Fprintf(&b, " having %s %s %s", fn, h.Op, h.Value)
			}
		}
		return b.String()
	case *Trait:
		return "trait " + PredString(c.Compare)
	case *InAudience:
		return "in audience " + c.Name
	case *Performed:
		var b strings.Builder
		b.WriteString("performed " + grammar.Quote(c.Event))
		if c.Quant != (Quant{Kind: AtLeast, N: 1}) {
			fmt.Fprintf(&b, " %s %d times", c.Quant.Kind, c.Quant.N)
		}
		if c.Within != nil {
			b.WriteString(" within " + c.Within.String())
		}
		if c.Where != nil {
			b.WriteString(" where (" + PredString(c.Where) + ")")
		}
		return b.String()
	}
	return fmt.Sprintf("<%T>", c)
}

func joinConds(cs []Cond, sep string) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = wrapCond(c)
	}
	return strings.Join(parts, sep)
}

func wrapCond(c Cond) string {
	switch c.(type) {
	case *And, *Or:
		return "(" + CondString(c) + ")"
	}
	return CondString(c)
}

// PredString renders a predicate as DSL text, parenthesising every group.
func PredString(p Pred) string {
	switch p := p.(type) {
	case *PredAnd:
		return joinPreds(p.Terms, " and ")
	case *PredOr:
		return joinPreds(p.Terms, " or ")
	case *PredNot:
		return "not " + wrapPred(p.X)
	case *Compare:
		var b strings.Builder
		b.WriteString(p.Column.Column)
		b.WriteString(" " + p.Op.String())
		switch {
		case p.Op == OpIn || p.Op == OpNotIn:
			parts := make([]string, len(p.Values))
			for i, v := range p.Values {
				parts[i] = v.String()
			}
			b.WriteString(" (" + strings.Join(parts, ", ") + ")")
		case p.Op == OpWithin:
			b.WriteString(" " + p.Window.String())
		case p.Ref != nil:
			b.WriteString(" " + p.Ref.String())
		case p.Op >= OpIsNull && p.Op <= OpIsFalse:
		default:
			b.WriteString(" " + p.Value.String())
		}
		return b.String()
	}
	return fmt.Sprintf("<%T>", p)
}

func joinPreds(ps []Pred, sep string) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = wrapPred(p)
	}
	return strings.Join(parts, sep)
}

func wrapPred(p Pred) string {
	switch p.(type) {
	case *PredAnd, *PredOr:
		return "(" + PredString(p) + ")"
	}
	return PredString(p)
}

// String renders the literal as DSL text.
func (l Literal) String() string {
	switch l.Kind {
	case LitNumber:
		return l.Text
	case LitBool:
		if l.Bool {
			return "true"
		}
		return "false"
	}
	return grammar.Quote(l.Text)
}

func (w Window) String() string {
	if w.Unit == 24*time.Hour {
		return fmt.Sprintf("%d days", w.N)
	}
	return fmt.Sprintf("%d hours", w.N)
}
