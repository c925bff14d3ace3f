package dsl

import (
	"fmt"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

var binaryOps = map[string]Op{"=": OpEq, "!=": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}

// filter checks a step's or performed's where.
func (c *checker) filter(s *scope, f *grammar.Filter) Pred {
	if f.Comparison != nil {
		if cmp := c.compare(s, f.Comparison, false); cmp != nil {
			return cmp
		}
		return nil
	}
	return c.predOr(s, f.Group)
}

func (c *checker) predOr(s *scope, o *grammar.Or) Pred {
	var terms []Pred
	for _, a := range o.Terms {
		var and []Pred
		for _, u := range a.Terms {
			if p := c.predUnary(s, u); p != nil {
				and = append(and, p)
			}
		}
		if len(and) != len(a.Terms) {
			continue
		}
		if len(and) == 1 {
			terms = append(terms, and[0])
		} else {
			terms = append(terms, &PredAnd{Range: rng(a), Terms: and})
		}
	}
	if len(terms) != len(o.Terms) {
		return nil
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return &PredOr{Range: rng(o), Terms: terms}
}

func (c *checker) predUnary(s *scope, u *grammar.Unary) Pred {
	if u.Not != nil {
		x := c.predUnary(s, u.Not)
		if x == nil {
			return nil
		}
		return &PredNot{Range: rng(u), X: x}
	}
	p := u.Primary
	switch {
	case p.Group != nil:
		return c.predOr(s, p.Group)
	case p.Comparison != nil:
		if cmp := c.compare(s, p.Comparison, false); cmp != nil {
			return cmp
		}
		return nil
	case p.Trait != nil:
		c.errorf(p, "trait conditions belong at audience level, not inside where: compare with trait.COLUMN on the right instead")
	case p.Path != nil:
		c.errorf(p, "a path cannot be nested inside where: continue the path with -> instead")
	case p.InAudience != nil:
		c.errorf(p, "in audience belongs at audience level, not inside where")
	case p.Performed != nil:
		c.errorf(p, "performed belongs at audience level, not inside where")
	}
	return nil
}

// compare checks `COLUMN OP OPERAND` in scope s. trait is set for `trait …`.
func (c *checker) compare(s *scope, cmp *grammar.Comparison, trait bool) *Compare {
	col := c.leftColumn(s, cmp.Left, trait)
	if col == nil {
		return nil
	}
	ir := &Compare{Range: rng(cmp), Column: col}
	opText := cmp.OpText()
	switch {
	case len(cmp.Is) > 0:
		ir.Op = map[string]Op{"is null": OpIsNull, "is not null": OpIsNotNull, "is true": OpIsTrue, "is false": OpIsFalse, "is not true": -1, "is not false": -1}[opText]
		if ir.Op < 0 {
			c.errorf(cmp, "write %s instead of %s", map[string]string{"is not true": "is false", "is not false": "is true"}[opText], opText)
			return nil
		}
		return ir
	case cmp.List != nil:
		ir.Op = OpIn
		if cmp.NotIn {
			ir.Op = OpNotIn
		}
		if len(cmp.List) > MaxListItems {
			c.errorf(cmp, "%s list of %d values: the limit is %d (MaxListItems); put the values in a warehouse table and join it through the graph", opText, len(cmp.List), MaxListItems)
			return nil
		}
		kind := LiteralKind(-1)
		for _, v := range cmp.List {
			lit, ok := c.literal(v, opText)
			if !ok {
				return nil
			}
			if kind >= 0 && lit.Kind != kind {
				c.errorf(v, "%s list mixes types: every value must be a %s", opText, kindName(kind))
				return nil
			}
			kind = lit.Kind
			ir.Values = append(ir.Values, lit)
		}
		return ir
	case cmp.Window != nil:
		ir.Op = OpWithin
		w, ok := c.window(cmp.Window)
		if !ok {
			return nil
		}
		ir.Window = &w
		return ir
	}
	ops := map[string]Op{"=": OpEq, "!=": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe,
		"contains": OpContains, "not contains": OpNotContains, "starts with": OpStartsWith, "ends with": OpEndsWith,
		"before": OpBefore, "after": OpAfter}
	op, ok := ops[opText]
	if !ok {
		c.errorf(cmp, "unknown operator %q", opText)
		return nil
	}
	ir.Op = op
	v := cmp.Right
	if v.Ref != nil {
		if op == OpBefore || op == OpAfter {
			c.errorf(v, "%s takes a date string, e.g. \"2026-01-31\"", opText)
			return nil
		}
		ref := c.rightRef(s, v.Ref)
		if ref == nil {
			return nil
		}
		ir.Ref = ref
		return ir
	}
	lit, ok := c.literal(v, opText)
	if !ok {
		return nil
	}
	switch op {
	case OpContains, OpNotContains, OpStartsWith, OpEndsWith:
		if lit.Kind != LitString {
			c.errorf(v, "%s takes a string", opText)
			return nil
		}
	case OpBefore, OpAfter:
		if lit.Kind != LitString {
			c.errorf(v, "%s takes a date string, e.g. \"2026-01-31\"", opText)
			return nil
		}
		t, err := parseDate(lit.Text)
		if err != nil {
			c.errorf(v, "%s takes a date \"YYYY-MM-DD\" or a timestamp \"YYYY-MM-DDTHH:MM:SSZ\", not %s", opText, grammar.Quote(lit.Text))
			return nil
		}
		lit = Literal{Kind: LitDate, Text: lit.Text, Time: t}
	case OpLt, OpLe, OpGt, OpGe:
		if lit.Kind == LitBool {
			c.errorf(v, "%s does not compare booleans", opText)
			return nil
		}
	}
	ir.Value = lit
	return ir
}

func kindName(k LiteralKind) string {
	return [...]string{"string", "number", "boolean", "date"}[k]
}

func (c *checker) literal(v *grammar.Value, op string) (Literal, bool) {
	switch {
	case v.Str != nil:
		return Literal{Kind: LitString, Text: v.Str.Value()}, true
	case v.Literal != nil && v.Literal.Number != "":
		return Literal{Kind: LitNumber, Text: v.Literal.Number}, true
	case v.Literal != nil && v.Literal.Bool != "":
		return Literal{Kind: LitBool, Bool: v.Literal.Bool == "true", Text: v.Literal.Bool}, true
	case v.Literal != nil && v.Literal.Null:
		c.errorf(v, "a comparison with null is never true: use is null or is not null")
	case v.Literal != nil && v.Literal.Duration != "":
		c.errorf(v, "%s is not a value here: for a time window write `within N days`", v.Literal.Duration)
	case v.Env != nil:
		c.errorf(v, "env() is for settings, not conditions")
	case v.Ref != nil:
		c.errorf(v, "%s takes a value (a string, number or boolean) here", op)
	}
	return Literal{}, false
}

// parseDate reads "YYYY-MM-DD" (midnight UTC), or a timestamp with or
// without zone (without: UTC).
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q", s)
}

// leftColumn resolves the column a comparison tests.
func (c *checker) leftColumn(s *scope, r *grammar.Ref, trait bool) *ColumnRef {
	switch {
	case trait:
		if len(r.Parts) == 2 {
			if r.Parts[0].Text != "trait" {
				c.errorf(r, "trait takes a profile column: write trait %s", r.Parts[1].Text)
				return nil
			}
		}
		return &ColumnRef{Range: rng(r), Source: SourceTrait, StepIndex: -1, Entity: c.ws.Graph.Profile, Column: r.Parts[len(r.Parts)-1].Text}
	case s.events:
		if len(r.Parts) == 2 {
			c.errorf(r, "performed … where compares columns of the events table: write %s", r.Parts[1].Text)
			return nil
		}
		return &ColumnRef{Range: rng(r), Source: SourceEvents, StepIndex: -1, Column: r.Parts[0].Text}
	}
	step := s.path.Steps[s.stepIndex]
	if len(r.Parts) == 2 && r.Parts[0].Text != step.Entity.Name {
		c.errorf(r.Parts[0], "the left side of a where is a column of %s: write %s or %s.%s", step.Entity.Name, r.Parts[1].Text, step.Entity.Name, r.Parts[1].Text)
		return nil
	}
	return &ColumnRef{Range: rng(r), Source: SourceStep, Step: step, StepIndex: s.stepIndex, Entity: step.Entity, Column: r.Parts[len(r.Parts)-1].Text}
}

// rightRef resolves a dynamic reference: a column of the same path at the
// same or a higher level, or trait.COLUMN.
func (c *checker) rightRef(s *scope, r *grammar.Ref) *ColumnRef {
	if len(r.Parts) != 2 {
		d := c.errorf(r, "%s is not a value: quote a string (\"%s\"), or refer to a column as ENTITY.COLUMN or trait.COLUMN", r.String(), r.String())
		_ = d
		return nil
	}
	q, col := r.Parts[0], r.Parts[1].Text
	if q.Text == "trait" {
		return &ColumnRef{Range: rng(r), Source: SourceTrait, StepIndex: -1, Entity: c.ws.Graph.Profile, Column: col}
	}
	if s.path == nil {
		if s.events {
			c.errorf(q, "performed … where can refer to trait.COLUMN only, not %s", r.String())
		} else {
			c.errorf(q, "a trait can be compared with trait.COLUMN only, not %s", r.String())
		}
		return nil
	}
	var names []string
	for i := s.stepIndex; i >= 0; i-- {
		st := s.path.Steps[i]
		if st.Entity.Name == q.Text {
			return &ColumnRef{Range: rng(r), Source: SourceStep, Step: st, StepIndex: i, Entity: st.Entity, Column: col}
		}
		names = append(names, st.Entity.Name)
	}
	for i := s.stepIndex + 1; i < len(s.path.Steps); i++ {
		if s.path.Steps[i].Entity.Name == q.Text {
			c.errorf(q, "%s is below %s on this path: a reference may name the same step or one above it", q.Text, s.path.Steps[s.stepIndex].Entity.Name)
			return nil
		}
	}
	d := c.errorf(q, "%s is not on this path above %s: a reference names a step of the same path (same level or higher) or trait", q.Text, s.path.Steps[s.stepIndex].Entity.Name)
	d.Suggestion = suggest(q.Text, append(names, "trait"))
	return nil
}
