package dsl

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

// Test is a checked test block: an audience, and one or more cycles of
// given tables and expectations (docs/testing.md).
type Test struct {
	Range
	Name     string
	Audience *Audience
	Cycles   []*TestCycle
}

// TestCycle is the part of a test before the first `then`, or between two.
type TestCycle struct {
	Range
	// Now is the cycle's start; zero when the test does not say (the
	// runner then takes DefaultTestNow, or an hour after the previous
	// cycle's).
	Now time.Time
	// Givens replace the tables they name from this cycle on.
	Givens  []*TestGiven
	Expects []*TestExpect
}

// DefaultTestNow is the start of a test's first cycle when it gives no
// `now`.
var DefaultTestNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestGiven is `given "TABLE" from "FILE"` (File set) or inline rows
// (Columns and Rows; a nil cell is NULL).
type TestGiven struct {
	Range
	Table TableName
	File  string
	// Columns are the file's header or the inline columns.
	Columns []string
	Rows    [][]*string
}

// ExpectKind is the kind of an expectation.
type ExpectKind int

const (
	ExpectMembers   ExpectKind = iota // exactly Keys
	ExpectNoMembers                   // no member
	ExpectMember                      // Keys[0] is a member, with exactly EntityKeys at Step when Entity is set
	ExpectEvents                      // exactly Events since the previous cycle
	ExpectNoEvents                    // no change since the previous cycle
)

// TestExpect is one `expect`.
type TestExpect struct {
	Range
	Kind ExpectKind
	Keys []string
	// Entity and Step name a step of the audience's primary path (with
	// entities; added and removed events).
	Entity     *Entity
	Step       int
	EntityKeys []string
	Events     []*TestEvent
}

// TestEvent is one expected change: "entered" or "exited" of profile Key,
// "added" or "removed" of entity Key (at Step) for profile Profile.
type TestEvent struct {
	Range
	Kind    string
	Entity  *Entity
	Step    int
	Key     string
	Profile string
}

// tests checks the test blocks, after the audiences.
func (c *checker) tests(decls []*grammar.Test) {
	if len(decls) == 0 {
		return
	}
	tables, used := UsedColumns(c.ws)
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	seen := map[string]grammar.Node{}
	for _, d := range decls {
		name := d.Name.Value()
		if prev, ok := seen[name]; ok {
			c.errorf(d.Name, "test %q declared again (first at %s)", name, posText(prev))
			continue
		}
		seen[name] = d
		if t := c.test(d, tables, names, used); t != nil {
			c.ws.Tests = append(c.ws.Tests, t)
		}
	}
}

func (c *checker) test(d *grammar.Test, tables []TableName, names []string, used map[string][]string) *Test {
	t := &Test{Range: rng(d), Name: d.Name.Value()}
	cyc := &TestCycle{Range: rng(d)}
	t.Cycles = []*TestCycle{cyc}
	var audience, now grammar.Node
	ok := true
	src := map[*TestExpect]*grammar.Expect{}
	for _, cl := range d.Clauses {
		switch {
		case cl.Audience != nil:
			if audience != nil {
				c.errorf(cl, "a test names one audience (already at %s)", posText(audience))
				ok = false
				continue
			}
			audience = cl
			a := c.audByName[cl.Audience.Text]
			if a == nil {
				c.unknown(cl.Audience, "audience", AudienceNamesOf(c.ws))
				ok = false
				continue
			}
			t.Audience = a
		case cl.Now != nil:
			if now != nil {
				c.errorf(cl, "this cycle's now is already given at %s", posText(now))
				ok = false
				continue
			}
			now = cl
			ts, err := time.Parse(time.RFC3339Nano, cl.Now.Value())
			if err != nil {
				c.errorf(cl.Now, "now takes an RFC 3339 time such as \"2026-03-15T12:00:00Z\", not %s", cl.Now.Raw)
				ok = false
				continue
			}
			cyc.Now = ts.UTC()
		case cl.Then:
			cyc = &TestCycle{Range: rng(cl)}
			t.Cycles = append(t.Cycles, cyc)
			now = nil
		case cl.Given != nil:
			g := c.given(cl.Given, tables, names, used)
			if g == nil {
				ok = false
				continue
			}
			cyc.Givens = append(cyc.Givens, g)
		case cl.Expect != nil:
			e := &TestExpect{Range: rng(cl), Step: -1}
			switch x := cl.Expect; {
			case x.No == "members":
				e.Kind = ExpectNoMembers
			case x.No == "events":
				e.Kind = ExpectNoEvents
			case x.Members != nil:
				e.Kind = ExpectMembers
				e.Keys = strValues(x.Members)
			case x.Member != nil:
				e.Kind = ExpectMember
				e.Keys = []string{x.Member.Value()}
				e.EntityKeys = strValues(x.Entities)
			case x.Events != nil:
				e.Kind = ExpectEvents
			}
			if e.Kind == ExpectEvents || e.Kind == ExpectNoEvents {
				if len(t.Cycles) == 1 {
					c.errorf(cl, "expect %s compares a cycle with the previous one: write it after `then`", map[bool]string{true: "events", false: "no events"}[e.Kind == ExpectEvents])
					ok = false
					continue
				}
			}
			src[e] = cl.Expect
			cyc.Expects = append(cyc.Expects, e)
		}
	}
	if audience == nil {
		c.errorf(d.Name, "test %q names no audience: add `audience NAME`", t.Name)
		return nil
	}
	for i, cy := range t.Cycles {
		if len(cy.Expects) == 0 {
			what := "the test"
			if len(t.Cycles) > 1 {
				what = fmt.Sprintf("cycle %d of the test", i+1)
			}
			c.errorf(&rangeNode{cy.Range}, "%s expects nothing: add `expect members …`, `expect no members`, `expect member …` or, after `then`, `expect events …`", what)
			ok = false
		}
	}
	if t.Audience == nil {
		return nil
	}
	// Entities and events need the audience's primary path, resolved now.
	for _, cy := range t.Cycles {
		for _, e := range cy.Expects {
			x := src[e]
			if x.Entity != nil {
				var found bool
				if e.Entity, e.Step, found = c.primaryStep(t.Audience, x.Entity); !found {
					ok = false
				}
			}
			for _, ev := range x.Events {
				te := &TestEvent{Range: rng(ev), Kind: ev.Kind.Text, Key: ev.Key.Value(), Step: -1}
				switch ev.Kind.Text {
				case "entered", "exited":
					if ev.Entity != nil || ev.For != nil {
						c.errorf(ev, "%s takes the profile's key alone: %s \"KEY\"", ev.Kind.Text, ev.Kind.Text)
						ok = false
					}
				case "added", "removed":
					if ev.Entity == nil || ev.For == nil {
						c.errorf(ev, "%s takes an entity, its key and the profile's: %s ENTITY \"KEY\" for \"PROFILE\"", ev.Kind.Text, ev.Kind.Text)
						ok = false
						continue
					}
					var found bool
					if te.Entity, te.Step, found = c.primaryStep(t.Audience, ev.Entity); !found {
						ok = false
					}
					te.Profile = ev.For.Value()
				default:
					d := c.errorf(ev.Kind, "unknown event %q: entered, exited, added or removed", ev.Kind.Text)
					d.Suggestion = suggest(ev.Kind.Text, []string{"entered", "exited", "added", "removed"})
					ok = false
				}
				e.Events = append(e.Events, te)
			}
		}
	}
	if !ok {
		return nil
	}
	return t
}

// rangeNode makes a Range usable where a grammar node is.
type rangeNode struct{ r Range }

func (n *rangeNode) Span() (grammar.Pos, grammar.Pos) { return n.r.Start, n.r.End }

// primaryStep resolves an entity of a test to a step of the audience's
// primary path.
func (c *checker) primaryStep(a *Audience, n *grammar.Name) (*Entity, int, bool) {
	var names []string
	if a.Primary != nil {
		for i, st := range a.Primary.Steps {
			if st.Entity != nil && st.Entity.Name == n.Text {
				return st.Entity, i, true
			}
			if st.Entity != nil {
				names = append(names, st.Entity.Name)
			}
		}
	}
	if len(names) == 0 {
		c.errorf(n, "audience %s has no entities (its match has no path whose rows it returns), so it has no %s", a.Name, n.Text)
		return nil, 0, false
	}
	d := c.errorf(n, "%s is not an entity of audience %s's path (%s)", n.Text, a.Name, strings.Join(names, ", "))
	d.Suggestion = suggest(n.Text, names)
	return nil, 0, false
}

func strValues(ss []*grammar.Str) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Value()
	}
	return out
}

// AudienceNamesOf lists the workspace's audiences.
func AudienceNamesOf(ws *Workspace) []string {
	out := make([]string, len(ws.Audiences))
	for i, a := range ws.Audiences {
		out[i] = a.Name
	}
	return out
}

// given checks one given: a table of the graph, and a CSV file inside the
// workspace whose header (or inline columns) has every column the graph
// reads of the table.
func (c *checker) given(g *grammar.Given, tables []TableName, names []string, used map[string][]string) *TestGiven {
	raw := g.Table.Value()
	var table TableName
	for _, t := range tables {
		if strings.EqualFold(t.String(), raw) {
			table = t
		}
	}
	if table == nil {
		d := c.errorf(g.Table, "unknown table %q: a test gives tables of the graph (%s)", raw, strings.Join(names, ", "))
		d.Suggestion = suggest(raw, names)
		return nil
	}
	out := &TestGiven{Range: rng(g), Table: table}
	var header []string
	at := grammar.Node(g.Table)
	if g.From != nil {
		at = g.From
		path, ok := c.localPath(g.From, "the CSV file", g.From.Value())
		if !ok {
			return nil
		}
		out.File = path
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				c.errorf(g.From, "missing file %s: the path is relative to the workspace directory", g.From.Raw)
			} else {
				c.errorf(g.From, "cannot read %s: %v", g.From.Raw, err)
			}
			return nil
		}
		defer f.Close()
		r := csv.NewReader(f)
		header, err = r.Read()
		if err == io.EOF {
			c.errorf(g.From, "%s is empty: a CSV file starts with a header line naming its columns", g.From.Raw)
			return nil
		}
		if err != nil {
			c.errorf(g.From, "%s: bad CSV header: %v", g.From.Raw, err)
			return nil
		}
		if len(header) > 0 {
			header[0] = strings.TrimPrefix(header[0], "\ufeff")
		}
	} else {
		for _, n := range g.Columns {
			header = append(header, n.Text)
		}
		for _, row := range g.Rows {
			if len(row.Values) != len(header) {
				c.errorf(row, "%d values for %d columns (%s)", len(row.Values), len(header), strings.Join(header, ", "))
				return nil
			}
			cells := make([]*string, len(row.Values))
			for i, v := range row.Values {
				switch {
				case v.Str != nil:
					s := v.Str.Value()
					cells[i] = &s
				case v.Literal != nil && v.Literal.Null:
				case v.Literal != nil && (v.Literal.Number != "" || v.Literal.Bool != ""):
					s := v.Literal.Text()
					cells[i] = &s
				default:
					c.errorf(v, "a row holds strings, numbers, true, false or null")
					return nil
				}
			}
			out.Rows = append(out.Rows, cells)
		}
	}
	have := map[string]bool{}
	for _, h := range header {
		if have[strings.ToUpper(h)] {
			c.errorf(at, "bad CSV header: column %q appears twice", h)
			return nil
		}
		have[strings.ToUpper(h)] = true
	}
	for i, h := range header {
		if strings.TrimSpace(h) == "" {
			c.errorf(at, "bad CSV header: column %d has no name", i+1)
			return nil
		}
	}
	// The key of the table's entity must be there; any other column the
	// workspace reads is NULL when left out.
	var missing []string
	for _, e := range append([]*Entity{c.ws.Graph.Profile}, c.ws.Graph.Entities...) {
		if e.Table.String() == table.String() && e.Key != "" && !have[strings.ToUpper(e.Key)] {
			missing = append(missing, e.Key)
		}
	}
	if len(missing) > 0 {
		if g.From != nil {
			c.errorf(at, "bad CSV header: %s lacks %s, the key of %s (it has %s)", g.From.Raw, quoteList(missing), table, strings.Join(header, ", "))
		} else {
			c.errorf(at, "the rows of %s lack %s, its key (columns has %s)", table, quoteList(missing), strings.Join(header, ", "))
		}
		return nil
	}
	out.Columns = header
	return out
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}
