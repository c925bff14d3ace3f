package grammar

// Test is `test "NAME" { CLAUSE* }`: a unit test of an audience, run by
// `linkaud test` on an embedded DuckDB (docs/testing.md). Its clauses form
// cycles separated by `then`: each cycle's givens replace the tables they
// name, and its expectations are checked against that cycle's members and
// (from the second cycle) the changes since the previous one.
type Test struct {
	span
	Name    *Str          `parser:"'test' @@ '{'"`
	Clauses []*TestClause `parser:"@@* '}'"`
}

// TestClause is one clause of a test. Exactly one field is set.
type TestClause struct {
	span
	Audience *Name   `parser:"  'audience' @@"`
	Now      *Str    `parser:"| 'now' @@"`
	Given    *Given  `parser:"| 'given' @@"`
	Expect   *Expect `parser:"| 'expect' @@"`
	Then     bool    `parser:"| @'then'"`
}

// Given is `given "TABLE" from "FILE.csv"` or, inline,
// `given "TABLE" { columns A, B  row V, V  … }`.
type Given struct {
	span
	Table   *Str        `parser:"@@"`
	From    *Str        `parser:"( 'from' @@"`
	Columns []*Name     `parser:"| '{' 'columns' @@ ( ',' @@ )*"`
	Rows    []*GivenRow `parser:"  @@* '}' )"`
}

// GivenRow is `row VALUE, VALUE, …`: strings, numbers, booleans, null.
type GivenRow struct {
	span
	Values []*Value `parser:"'row' @@ ( ',' @@ )*"`
}

// Expect is one expectation: `members "K", …` (exactly these),
// `no members`, `member "K" [with entities ENTITY "E", …]`,
// `events EVENT, …` or `no events`.
type Expect struct {
	span
	No       string         `parser:"(  'no' @( 'members' | 'events' )"`
	Members  []*Str         `parser:"| 'members' @@ ( ',' @@ )*"`
	Member   *Str           `parser:"| 'member' @@"`
	Entity   *Name          `parser:"  ( 'with' 'entities' @@"`
	Entities []*Str         `parser:"    @@ ( ',' @@ )* )?"`
	Events   []*ExpectEvent `parser:"| 'events' @@ ( ',' @@ )* )"`
}

// ExpectEvent is `entered "K"`, `exited "K"`, `added ENTITY "E" for "K"`
// or `removed ENTITY "E" for "K"`.
type ExpectEvent struct {
	span
	Kind   *Name `parser:"@@"`
	Entity *Name `parser:"@@?"`
	Key    *Str  `parser:"@@"`
	For    *Str  `parser:"( 'for' @@ )?"`
}

func testDoc(t *Test) doc {
	items := make([]doc, len(t.Clauses))
	for i, c := range t.Clauses {
		items[i] = testClause(c)
	}
	return block(cat(dTok("test"), sp, str(t.Name)), items)
}

func strList(ss []*Str) doc {
	var d dCat
	for i, s := range ss {
		if i > 0 {
			d = append(d, dTok(","), line)
		}
		d = append(d, str(s))
	}
	return align(d)
}

func testClause(c *TestClause) doc {
	switch {
	case c.Audience != nil:
		return cat(dTok("audience"), sp, name(c.Audience))
	case c.Now != nil:
		return cat(dTok("now"), sp, str(c.Now))
	case c.Then:
		return dTok("then")
	case c.Given != nil:
		g := c.Given
		head := cat(dTok("given"), sp, str(g.Table))
		if g.From != nil {
			return cat(head, sp, dTok("from"), sp, str(g.From))
		}
		var cols dCat
		for i, n := range g.Columns {
			if i > 0 {
				cols = append(cols, dTok(","), sp)
			}
			cols = append(cols, name(n))
		}
		items := []doc{cat(dTok("columns"), sp, cols)}
		for _, r := range g.Rows {
			row := cat(dTok("row"), sp)
			for i, v := range r.Values {
				if i > 0 {
					row = append(row, dTok(","), sp)
				}
				row = append(row, value(v))
			}
			items = append(items, row)
		}
		return block(head, items)
	case c.Expect != nil:
		e := c.Expect
		switch {
		case e.No != "":
			return cat(dTok("expect"), sp, dTok("no"), sp, dTok(e.No))
		case e.Members != nil:
			return group(cat(dTok("expect"), sp, dTok("members"), sp, strList(e.Members)))
		case e.Member != nil:
			d := cat(dTok("expect"), sp, dTok("member"), sp, str(e.Member))
			if e.Entity != nil {
				d = append(d, sp, dTok("with"), sp, dTok("entities"), sp, name(e.Entity), sp, strList(e.Entities))
			}
			return group(d)
		case e.Events != nil:
			var d dCat
			for i, ev := range e.Events {
				if i > 0 {
					d = append(d, dTok(","), line)
				}
				d = append(d, name(ev.Kind), sp)
				if ev.Entity != nil {
					d = append(d, name(ev.Entity), sp)
				}
				d = append(d, str(ev.Key))
				if ev.For != nil {
					d = append(d, sp, dTok("for"), sp, str(ev.For))
				}
			}
			return group(cat(dTok("expect"), sp, dTok("events"), sp, align(d)))
		}
	}
	return cat()
}
