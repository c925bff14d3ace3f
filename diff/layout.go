package diff

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/linkaud/linkaud/dsl"
)

// Trait is the Enrich.Step of a trait (a profile column).
const Trait = -1

// Layout describes the result rows of one audience (contracts.md "Result
// rows"): profile_key, then key_<i> for each step of the primary path, then
// enrich_<j> for each enrichment column. The engine fills it from the plan;
// LayoutOf derives the same from the checked audience.
type Layout struct {
	// Steps are the primary path's steps, top down; one key column each.
	Steps []Step `json:"steps,omitempty"`
	// Enrich are the enrichment columns in column order.
	Enrich []Enrich `json:"enrich,omitempty"`
}

// Step is one step of the primary path.
type Step struct {
	// Entity names the step's entity: the object name in _entity_context.
	Entity string `json:"entity"`
	// Key is the entity's key column: the key's property name.
	Key string `json:"key"`
}

// Enrich is one enrichment column.
type Enrich struct {
	// Name is the column name: the property name in events.
	Name string `json:"name"`
	// Step is the index of the step the column belongs to, or Trait.
	Step int `json:"step"`
}

// LayoutOf returns the layout of a's result rows.
func LayoutOf(a *dsl.Audience) Layout {
	var l Layout
	if a.Primary != nil {
		for _, s := range a.Primary.Steps {
			l.Steps = append(l.Steps, Step{Entity: s.Entity.Name, Key: s.Entity.Key})
		}
	}
	for _, r := range a.Enrich {
		e := Enrich{Name: r.Column, Step: Trait}
		if r.Source == dsl.SourceStep {
			e.Step = r.StepIndex
		}
		l.Enrich = append(l.Enrich, e)
	}
	return l
}

// Columns is the number of result columns.
func (l Layout) Columns() int { return 1 + len(l.Steps) + len(l.Enrich) }

// Validate checks the layout itself.
func (l Layout) Validate() error {
	var errs []error
	for i, s := range l.Steps {
		if s.Entity == "" || s.Key == "" {
			errs = append(errs, fmt.Errorf("diff: layout step %d needs an entity and a key column", i))
		}
	}
	for j, e := range l.Enrich {
		if e.Name == "" {
			errs = append(errs, fmt.Errorf("diff: layout enrichment %d has no name", j))
		}
		if e.Step != Trait && (e.Step < 0 || e.Step >= len(l.Steps)) {
			errs = append(errs, fmt.Errorf("diff: layout enrichment %s belongs to step %d of a %d-step path", e.Name, e.Step, len(l.Steps)))
		}
	}
	return errors.Join(errs...)
}

// equal reports whether two layouts describe the same columns.
func (l Layout) equal(m Layout) bool {
	return slices.Equal(l.Steps, m.Steps) && slices.Equal(l.Enrich, m.Enrich)
}

// sameChain reports whether the paths of l and m agree on the entities of
// steps 0..k, so that (profile, key_0..key_k) pairs mean the same thing.
func (l Layout) sameChain(m Layout, k int) bool {
	if k >= len(l.Steps) || k >= len(m.Steps) {
		return false
	}
	return slices.Equal(l.Steps[:k+1], m.Steps[:k+1])
}

// stepCols returns the indexes (into Enrich) of step columns, in order: a
// row's stored value holds their values in this order.
func (l Layout) stepCols() []int {
	var out []int
	for j, e := range l.Enrich {
		if e.Step != Trait {
			out = append(out, j)
		}
	}
	return out
}

// traitCols returns the indexes (into Enrich) of trait columns, in order: a
// member's stored value holds their values in this order.
func (l Layout) traitCols() []int {
	var out []int
	for j, e := range l.Enrich {
		if e.Step == Trait {
			out = append(out, j)
		}
	}
	return out
}

// ErrLayout is returned (wrapped) when the result columns do not match the
// layout: a planner or engine bug.
var ErrLayout = errors.New("diff: result columns do not match the layout")

// checkSchema checks the stream's columns against the layout, by position
// and name (case-insensitively: Snowflake upper-cases names).
func (l Layout) checkSchema(s *arrow.Schema) error {
	want := []string{"profile_key"}
	for i := range l.Steps {
		want = append(want, "key_"+strconv.Itoa(i))
	}
	for j := range l.Enrich {
		want = append(want, "enrich_"+strconv.Itoa(j))
	}
	if s.NumFields() != len(want) {
		return fmt.Errorf("%w: %d columns, want %d (%s)", ErrLayout, s.NumFields(), len(want), strings.Join(want, ", "))
	}
	for i, f := range s.Fields() {
		if !strings.EqualFold(f.Name, want[i]) {
			return fmt.Errorf("%w: column %d is %q, want %q", ErrLayout, i, f.Name, want[i])
		}
	}
	return nil
}
