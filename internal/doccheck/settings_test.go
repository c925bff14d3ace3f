package doccheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/internal/metrics"
)

// Every setting, clause and event kind the checker accepts is documented
// in the table of its block, and every documented one exists.
func TestSettingsDocumented(t *testing.T) {
	type entry struct {
		where string
		seen  bool
	}
	docs := map[string]map[string]*entry{} // block → name
	markerAt := map[string]string{}
	for _, p := range pages(t) {
		for _, m := range p.Markers {
			if m.Kind != "settings" {
				continue
			}
			where := fmt.Sprintf("%s:%d", p.Path, m.Line)
			if prev, dup := markerAt[m.Arg]; dup {
				t.Errorf("%s: <!-- settings: %s --> again (first at %s)", where, m.Arg, prev)
				continue
			}
			markerAt[m.Arg] = where
			docs[m.Arg] = map[string]*entry{}
			for _, n := range m.Names {
				docs[m.Arg][n.Text] = &entry{where: fmt.Sprintf("%s:%d", p.Path, n.Line)}
			}
		}
	}
	blocks := map[string]bool{}
	covered := 0
	for _, s := range dsl.Settings() {
		blocks[s.Block] = true
		table, ok := docs[s.Block]
		if !ok {
			continue // reported once below
		}
		e := table[s.Name]
		if e == nil {
			t.Errorf("%s: the checker accepts %s %q, which is not documented: add a row `%s` to the table after <!-- settings: %s -->",
				markerAt[s.Block], s.Block, s.Name, s.Name, s.Block)
			continue
		}
		e.seen = true
		covered++
	}
	for _, typ := range dsl.DestinationTypes() {
		blocks["destination "+typ] = true
	}
	var missing []string
	for b := range blocks {
		if _, ok := docs[b]; !ok {
			missing = append(missing, b)
		}
	}
	slices.Sort(missing)
	for _, b := range missing {
		hint := "a section with <!-- settings: " + b + " --> and a table of its settings"
		if typ, ok := strings.CutPrefix(b, "warehouse "); ok {
			hint = "a page docs/warehouses/" + typ + ".md, linked from docs/warehouses/README.md, with <!-- settings: " + b + " --> before the table of its settings"
		}
		t.Errorf("nothing documents %q: add %s", b, hint)
	}
	for block, table := range docs {
		if !blocks[block] {
			t.Errorf("%s: <!-- settings: %s -->: the checker knows no such block", markerAt[block], block)
			continue
		}
		for name, e := range table {
			if !e.seen {
				t.Errorf("%s: `%s` is documented for %s, but the checker does not accept it", e.where, name, block)
			}
		}
	}
	t.Logf("%d settings, clauses and event kinds of %d blocks documented", covered, len(blocks))
}

// Every metric the worker registers is documented, and the reverse.
func TestMetricsDocumented(t *testing.T) {
	m := metrics.New()
	m.Observe(fakeState{}, func() []string { return []string{"hook"} })
	m.ObserveHistory(fakeState{})
	registered := map[string]bool{}
	for _, n := range m.Names() {
		registered[strings.TrimPrefix(n, "linkaud_")] = true
	}
	// Names must agree with what the registry serves.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if name, ok := strings.CutPrefix(mf.GetName(), "linkaud_"); ok && !registered[name] {
			t.Errorf("metrics.Names lacks linkaud_%s, which the registry serves", name)
		}
	}
	documented := map[string]string{}
	for _, p := range pages(t) {
		for _, m := range p.Markers {
			if m.Kind != "metrics" {
				continue
			}
			for _, n := range m.Names {
				documented[strings.TrimPrefix(n.Text, "linkaud_")] = fmt.Sprintf("%s:%d", p.Path, n.Line)
			}
		}
	}
	if len(documented) == 0 {
		t.Fatal("no <!-- metrics --> table in the docs")
	}
	for name := range registered {
		if _, ok := documented[name]; !ok {
			t.Errorf("metric linkaud_%s is not documented: add it to the table after <!-- metrics -->", name)
		}
	}
	for name, where := range documented {
		if !registered[name] {
			t.Errorf("%s: linkaud_%s is documented but not registered", where, name)
		}
	}
	t.Logf("%d metrics documented", len(registered))
}

// fakeState stands for the state the worker's scrape-time gauges read.
type fakeState struct{}

func (fakeState) Backlogs() (map[string]int64, error)           { return map[string]int64{"hook": 1}, nil }
func (fakeState) DeadLetters(string) ([]diff.DeadLetter, error) { return nil, nil }
func (fakeState) Audiences() ([]diff.AudienceState, error) {
	return []diff.AudienceState{{Name: "gold"}}, nil
}
func (fakeState) History(string) ([]diff.HistoryPoint, error) {
	return []diff.HistoryPoint{{Run: 1, Start: time.Unix(1e9, 0), Members: 3, OK: true, Runs: 1}}, nil
}
