package randgen

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

// Gen draws random graphs, data and audiences from one seed.
type Gen struct {
	r   *rand.Rand
	now time.Time
}

// New returns a generator for seed; the same seed gives the same cases.
func New(seed uint64) *Gen {
	return &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Names are SQL keywords where the language allows it, so that quoting is
// tested everywhere; they differ case-insensitively within a scope, as
// DuckDB identifiers must.
var (
	entityNames = []string{"account", "order", "select", "group", "user", "item", "pet", "card", "line", "limit", "case", "Txn", "sub", "end", "table", "column"}
	columnNames = []string{"name", "order", "group", "value", "amount", "status", "ts", "flag", "select", "user", "limit", "desc", "Type", "total", "tier", "when", "null_", "default", "at", "x"}
	schemaNames = []string{"S", "order", "Bank$1", "_x", "Select"}
	keyNames    = []string{"id", "key", "order", "ID_", "pk"}
	fkNames     = []string{"parent_id", "ref", "group", "owner", "fk", "from_id", "select", "link"}
	eventNames  = []string{"Order Completed", `Say "hi"`, "it's", `back\slash`, "Signup"}
	audNames    = []string{"vip", "churned", "order", "gold_tier"}
)

var textPool = []string{"", "a", "A", "b", "ab", "abc", "a%", "%", "_", "a_c", "it's", `say "hi"`, `back\slash`, `\`, "ü", "über", "日本", "😀", " ", "a b", "Outstanding", "z", "Z", "é", "e\u0301", "x'y\\z", "100%", "\t", "a\nb", "\r\n"}

// subPool are operands of contains, starts with, ends with: wildcards and
// escapes of SQL LIKE and of string literals among them.
var subPool = []string{"", "a", "b", "%", "_", "'", `\`, "ü", "a%", "_c", "b ", "Z", "z"}

type namer struct{ used map[string]bool }

func newNamer() *namer { return &namer{used: map[string]bool{}} }

// pick returns an unused name from pool, or one with a numeric suffix.
func (n *namer) pick(r *rand.Rand, pool []string) string {
	for range 4 {
		s := pool[r.IntN(len(pool))]
		if !n.used[strings.ToLower(s)] {
			n.used[strings.ToLower(s)] = true
			return s
		}
	}
	for i := 2; ; i++ {
		s := pool[r.IntN(len(pool))] + "_" + strconv.Itoa(i)
		if !n.used[strings.ToLower(s)] {
			n.used[strings.ToLower(s)] = true
			return s
		}
	}
}

func (g *Gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *Gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

// Now is the cycle start of the generator's cases: it varies in
// precision so that literals are exercised at second, microsecond and
// nanosecond precision.
func (g *Gen) pickNow() time.Time {
	base := time.Date(2026, 3, 15, 10, 30, 0, 0, time.UTC)
	switch g.r.IntN(3) {
	case 0:
		return base
	case 1:
		return base.Add(123456 * time.Microsecond)
	}
	return base.Add(123456789 * time.Nanosecond)
}

// ---- graphs ----

type tableNamer struct {
	schemas []string
	names   map[string]*namer
}

func (g *Gen) table(tn *tableNamer, base string) *Table {
	var parts []string
	schema := ""
	if len(tn.schemas) > 0 && !g.chance(0.2) {
		schema = pick(g, tn.schemas)
	}
	n := tn.names[strings.ToLower(schema)]
	if n == nil {
		n = newNamer()
		tn.names[strings.ToLower(schema)] = n
	}
	name := n.pick(g.r, []string{base, base + "s", "T_" + base})
	if schema != "" {
		parts = append(parts, schema)
	}
	return &Table{Name: append(parts, name)}
}

// Graph draws a graph and its data: up to 7 entities, each under the
// profile or an entity of level ≤ 5, sometimes with a second parent, joined
// directly or through a junction table, by one or two column pairs.
func (g *Gen) Graph() *Graph {
	g.now = g.pickNow()
	tn := &tableNamer{names: map[string]*namer{}}
	sn := newNamer()
	for range g.r.IntN(3) {
		tn.schemas = append(tn.schemas, sn.pick(g.r, schemaNames))
	}
	cols := map[*Table]*namer{}
	addCol := func(t *Table, pool []string, typ Type) string {
		if cols[t] == nil {
			cols[t] = newNamer()
		}
		name := cols[t].pick(g.r, pool)
		t.Columns = append(t.Columns, Column{Name: name, Type: typ})
		return name
	}
	keyType := func() Type {
		if g.chance(0.5) {
			return Text
		}
		return Int
	}
	attrs := func(t *Table, n int) {
		for range n {
			addCol(t, columnNames, Type(g.r.IntN(6)))
		}
	}

	gr := &Graph{}
	pt := g.table(tn, "profiles")
	gr.Profile = &Entity{Name: "profile", Table: pt, Level: 1}
	gr.Profile.Key = addCol(pt, keyNames, keyType())
	attrs(pt, 1+g.r.IntN(4))

	en := newNamer()
	en.used["profile"] = true
	for range 2 + g.r.IntN(6) {
		var parents []*Entity
		for _, e := range append([]*Entity{gr.Profile}, gr.Entities...) {
			if e.Level < 6 {
				parents = append(parents, e)
			}
		}
		parent := pick(g, parents)
		if g.chance(0.5) {
			// Grow the deepest branch, so that paths of five steps
			// (six levels) are common.
			for _, p := range parents {
				if p.Level > parent.Level {
					parent = p
				}
			}
		}
		name := en.pick(g.r, entityNames)
		t := g.table(tn, strings.ToLower(name))
		e := &Entity{Name: name, Table: t, Level: parent.Level + 1}
		e.Key = addCol(t, keyNames, keyType())
		attrs(t, 1+g.r.IntN(3))
		gr.Entities = append(gr.Entities, e)
		gr.Rels = append(gr.Rels, g.rel(tn, gr, parent, e, addCol))
		if g.chance(0.2) {
			var others []*Entity
			for _, o := range gr.Entities[:len(gr.Entities)-1] {
				if o != parent && o.Level < 6 {
					others = append(others, o)
				}
			}
			if len(others) > 0 {
				gr.Rels = append(gr.Rels, g.rel(tn, gr, pick(g, others), e, addCol))
			}
		}
	}
	if g.chance(0.7) {
		t := g.table(tn, "memberships")
		gr.Memberships = t
		gr.MembershipProfile = addCol(t, []string{"profile", "user", "segment_id"}, pt.Col(gr.Profile.Key).Type)
		gr.MembershipAudience = addCol(t, []string{"audience", "group", "key"}, Text)
	}
	if g.chance(0.7) {
		t := g.table(tn, "events")
		gr.Events = t
		gr.EventProfile = addCol(t, []string{"user_id", "user", "profile"}, pt.Col(gr.Profile.Key).Type)
		gr.EventName = addCol(t, []string{"event", "name", "order"}, Text)
		gr.EventTime = addCol(t, []string{"timestamp", "ts", "at", "time"}, Timestamp)
		for range 1 + g.r.IntN(2) {
			addCol(t, columnNames, pick(g, []Type{Int, Float, Text, Bool}))
		}
	}
	g.data(gr)
	return gr
}

type colAdder func(t *Table, pool []string, typ Type) string

// rel joins parent to child. An upper column is the parent's key or
// another text/int column (so several parents may share children); a
// lower column is a new foreign key column of the child, or the child's
// key for a junction.
func (g *Gen) rel(tn *tableNamer, gr *Graph, parent, child *Entity, addCol colAdder) *Rel {
	r := &Rel{From: parent, To: child}
	upper := func() Column {
		if g.chance(0.6) {
			return parent.Table.Col(parent.Key)
		}
		var cands []Column
		for _, c := range parent.Table.Columns {
			if c.Type == Text || c.Type == Int {
				cands = append(cands, c)
			}
		}
		return pick(g, cands)
	}
	pairs := 1
	if g.chance(0.15) {
		pairs = 2
	}
	if g.chance(0.6) {
		for range pairs {
			u := upper()
			r.On = append(r.On, Pair{Upper: u.Name, Lower: addCol(child.Table, fkNames, u.Type)})
		}
		return r
	}
	j := g.table(tn, "j_"+strings.ToLower(parent.Name)+"_"+strings.ToLower(child.Name))
	r.Through = j
	r.Alias = pick(g, []string{"j", "hp", "link", "through_"})
	if r.Alias == "j" && (parent.Name == "j" || child.Name == "j") {
		r.Alias = "jx"
	}
	for range pairs {
		u := upper()
		r.On = append(r.On, Pair{Upper: u.Name, Lower: addCol(j, fkNames, u.Type)})
	}
	down := child.Table.Col(child.Key)
	if g.chance(0.2) {
		var cands []Column
		for _, c := range child.Table.Columns {
			if c.Type == Text || c.Type == Int {
				cands = append(cands, c)
			}
		}
		down = pick(g, cands)
	}
	r.ThroughOn = append(r.ThroughOn, Pair{Upper: addCol(j, fkNames, down.Type), Lower: down.Name})
	return r
}

// ---- data ----

func (g *Gen) data(gr *Graph) {
	// What each column may take: foreign keys draw from the values of the
	// column they reference.
	refs := map[*Table]map[string]func() any{}
	ref := func(t *Table, col string, from *Table, fromCol string) {
		if refs[t] == nil {
			refs[t] = map[string]func() any{}
		}
		refs[t][col] = func() any {
			if len(from.Rows) == 0 || g.chance(0.15) {
				return g.value(t.Col(col).Type)
			}
			return from.Rows[g.r.IntN(len(from.Rows))][from.colIndex(fromCol)]
		}
	}
	for _, r := range gr.Rels {
		if r.Through == nil {
			for _, p := range r.On {
				ref(r.To.Table, p.Lower, r.From.Table, p.Upper)
			}
			continue
		}
		for _, p := range r.On {
			ref(r.Through, p.Lower, r.From.Table, p.Upper)
		}
		for _, p := range r.ThroughOn {
			ref(r.Through, p.Upper, r.To.Table, p.Lower)
		}
	}
	keys := map[*Table]string{gr.Profile.Table: gr.Profile.Key}
	for _, e := range gr.Entities {
		keys[e.Table] = e.Key
	}
	if m := gr.Memberships; m != nil {
		ref(m, gr.MembershipProfile, gr.Profile.Table, gr.Profile.Key)
	}
	if ev := gr.Events; ev != nil {
		ref(ev, gr.EventProfile, gr.Profile.Table, gr.Profile.Key)
	}
	// Tables in dependency order: profile, entities (parents first),
	// junctions, memberships, events.
	for _, t := range gr.Tables() {
		n := g.r.IntN(26)
		if t == gr.Profile.Table {
			n = 4 + g.r.IntN(17)
		}
		used := map[string]bool{}
		junction := false
		for _, r := range gr.Rels {
			junction = junction || r.Through == t
		}
		for range n {
			if len(t.Rows) > 0 && (junction && g.chance(0.35) || g.chance(0.03)) {
				// A row listed twice (junction), or a key that is not
				// unique: counting and DISTINCT must not depend on it.
				dup := append([]any(nil), t.Rows[g.r.IntN(len(t.Rows))]...)
				if !junction {
					for i, c := range t.Columns {
						if keys[t] != c.Name && g.chance(0.5) {
							dup[i] = g.nullable(c.Type)
						}
					}
				}
				t.Rows = append(t.Rows, dup)
				continue
			}
			row := make([]any, len(t.Columns))
			for i, c := range t.Columns {
				switch {
				case keys[t] == c.Name:
					row[i] = g.key(c.Type, used)
				case t == gr.Memberships && c.Name == gr.MembershipAudience:
					row[i] = pick(g, []string{"vip", "churned", "order", "gold_tier", "helper_a", "helper_b"})
				case t == gr.Events && c.Name == gr.EventName:
					row[i] = pick(g, eventNames)
				case refs[t][c.Name] != nil && !g.chance(0.1):
					row[i] = refs[t][c.Name]()
				default:
					row[i] = g.nullable(c.Type)
				}
			}
			t.Rows = append(t.Rows, row)
		}
	}
}

// key draws a unique key, or now and then NULL (a row that is no entity).
func (g *Gen) key(t Type, used map[string]bool) any {
	if g.chance(0.05) {
		return nil
	}
	for {
		var v any
		if t == Int {
			v = int64(g.r.IntN(60) - 5)
			if g.chance(0.05) {
				v = int64(1<<40 + g.r.IntN(3))
			}
		} else {
			v = pick(g, []string{"k" + strconv.Itoa(g.r.IntN(40)), "K" + strconv.Itoa(g.r.IntN(10)), pick(g, textPool), "a'b", `b\`, "10", "9"})
		}
		s := fmt.Sprint(v)
		if !used[s] {
			used[s] = true
			return v
		}
	}
}

func (g *Gen) nullable(t Type) any {
	if g.chance(0.15) {
		return nil
	}
	return g.value(t)
}

// value draws a non-NULL value of type t from small pools, so that
// literals drawn from the same pools match rows.
func (g *Gen) value(t Type) any {
	switch t {
	case Text:
		return pick(g, textPool)
	case Int:
		if g.chance(0.1) {
			return pick(g, []int64{100, -100, 1 << 40})
		}
		return int64(g.r.IntN(16) - 3)
	case Float:
		if g.chance(0.1) {
			return 100.5
		}
		return float64(g.r.IntN(64)-16) / 4
	case Bool:
		return g.chance(0.5)
	case Timestamp:
		return g.instant()
	case Date:
		d := g.now.Truncate(24*time.Hour).AddDate(0, 0, g.r.IntN(70)-60)
		return d
	}
	panic("randgen: type")
}

// instant draws a timestamp near the boundaries windows and dates test:
// now, now minus each window, midnights, a microsecond either side.
func (g *Gen) instant() time.Time {
	var base time.Time
	switch g.r.IntN(4) {
	case 0:
		w := pick(g, []time.Duration{0, time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour})
		base = g.now.Add(-w)
	case 1:
		base = g.now.Truncate(24*time.Hour).AddDate(0, 0, -g.r.IntN(10))
	default:
		base = g.now.Add(-time.Duration(g.r.Int64N(int64(60*24*time.Hour))) + 5*24*time.Hour)
	}
	base = base.Truncate(time.Microsecond) // TIMESTAMP's precision
	return base.Add(time.Duration(g.r.IntN(3)-1) * time.Microsecond)
}

// ---- audiences ----

// Audiences draws up to two helper audiences and a target (without
// enrich: see Enrich, which needs the checked primary path).
func (g *Gen) Audiences(gr *Graph) (helpers []*Audience, target *Audience) {
	var names []string
	if gr.Memberships != nil {
		names = append(names, audNames...)
	}
	for i := range g.r.IntN(3) {
		h := &Audience{Name: "helper_" + string(rune('a'+i))}
		h.Match = g.cond(gr, 1, names)
		helpers = append(helpers, h)
		names = append(names, h.Name)
	}
	target = &Audience{Name: "target"}
	if g.chance(0.4) {
		target.Match = g.path(gr)
	} else {
		target.Match = g.cond(gr, 2+g.r.IntN(2), names)
	}
	return helpers, target
}

func (g *Gen) cond(gr *Graph, depth int, auds []string) Cond {
	if depth > 0 && g.chance(0.5) {
		switch g.r.IntN(5) {
		case 0:
			return &Not{X: g.cond(gr, depth-1, auds)}
		case 1, 2:
			return &And{Terms: g.conds(gr, depth-1, auds)}
		default:
			return &Or{Terms: g.conds(gr, depth-1, auds)}
		}
	}
	for {
		switch x := g.r.IntN(10); {
		case x < 5:
			return g.path(gr)
		case x < 7:
			return &Trait{Cmp: g.cmp(gr, gr.Profile.Table, gr.Profile.Table.Columns, "", nil, true)}
		case x < 8 && len(auds) > 0:
			return &InAudience{Name: pick(g, auds)}
		case x >= 8 && gr.Events != nil:
			return g.performed(gr)
		}
	}
}

func (g *Gen) conds(gr *Graph, depth int, auds []string) []Cond {
	out := make([]Cond, 2+g.r.IntN(2))
	for i := range out {
		out[i] = g.cond(gr, depth, auds)
	}
	return out
}

func (g *Gen) quant(max int) string {
	switch g.r.IntN(3) {
	case 0:
		return "at least " + strconv.Itoa(g.r.IntN(max+2))
	case 1:
		return "at most " + strconv.Itoa(g.r.IntN(max+1))
	}
	return "exactly " + strconv.Itoa(g.r.IntN(max+1))
}

// scopeCol is a column a dynamic reference may name.
type scopeCol struct {
	ref string // "entity.column" or "trait.column"
	typ Type
}

func (g *Gen) path(gr *Graph) *Path {
	p := &Path{}
	cur := gr.Profile
	var scope []scopeCol
	for _, c := range gr.Profile.Table.Columns {
		scope = append(scope, scopeCol{"trait." + c.Name, c.Type})
	}
	for len(p.Steps) < 5 {
		var next []*Rel
		for _, r := range gr.Rels {
			if r.From == cur {
				next = append(next, r)
			}
		}
		if len(next) == 0 || len(p.Steps) > 0 && g.chance(0.2) {
			break
		}
		e := pick(g, next).To
		for _, c := range e.Table.Columns {
			scope = append(scope, scopeCol{e.Name + "." + c.Name, c.Type})
		}
		st := &Step{Entity: e}
		if g.chance(0.55) {
			st.Where = g.pred(gr, e.Table, e.Table.Columns, e.Name, scope, 2)
		}
		switch x := g.r.Float64(); {
		case x < 0.25:
			st.Quant = g.quant(2)
		case x < 0.5:
			st.Having = g.having(e.Table)
		}
		p.Steps = append(p.Steps, st)
		cur = e
	}
	return p
}

func (g *Gen) having(t *Table) string {
	var nums []Column
	for _, c := range t.Columns {
		if c.Type.numeric() {
			nums = append(nums, c)
		}
	}
	op := pick(g, []string{"=", "!=", "<", "<=", ">", ">="})
	if len(nums) == 0 || g.chance(0.3) {
		return "count " + op + " " + strconv.Itoa(g.r.IntN(4))
	}
	c := pick(g, nums)
	v := g.number()
	if x, ok := g.sample(t, c); ok {
		v = literal(x, c.Type)
	}
	return pick(g, []string{"sum", "min", "max", "avg"}) + "(" + c.Name + ") " + op + " " + v
}

// sample draws, half of the time, a non-NULL value of column c from t's
// rows, so that comparisons hit rows (and their boundaries) often.
func (g *Gen) sample(t *Table, c Column) (any, bool) {
	if t == nil || len(t.Rows) == 0 || g.chance(0.5) {
		return nil, false
	}
	i := t.colIndex(c.Name)
	for range 4 {
		if v := t.Rows[g.r.IntN(len(t.Rows))][i]; v != nil {
			return v, true
		}
	}
	return nil, false
}

// literal writes a value as a DSL literal of type t.
func literal(v any, t Type) string {
	switch v := v.(type) {
	case string:
		return grammar.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		r := new(big.Rat)
		r.SetFloat64(v)
		return NumberText(r)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		if t == Date {
			return grammar.Quote(v.Format("2006-01-02"))
		}
		return grammar.Quote(v.UTC().Format(time.RFC3339Nano))
	}
	panic("randgen: literal")
}

func (g *Gen) performed(gr *Graph) *Performed {
	p := &Performed{Event: pick(g, eventNames)}
	if g.chance(0.4) {
		p.Quant = g.quant(2)
	}
	if g.chance(0.4) {
		p.Within = g.window()
	}
	if g.chance(0.4) {
		var cols []Column
		for _, c := range gr.Events.Columns {
			if c.Name != gr.EventProfile {
				cols = append(cols, c)
			}
		}
		var scope []scopeCol
		for _, c := range gr.Profile.Table.Columns {
			scope = append(scope, scopeCol{"trait." + c.Name, c.Type})
		}
		p.Where = g.pred(gr, gr.Events, cols, "", scope, 1)
	}
	return p
}

func (g *Gen) window() string {
	if g.chance(0.5) {
		n := pick(g, []int{1, 7, 30})
		if n == 1 && g.chance(0.5) {
			return "1 day"
		}
		return strconv.Itoa(n) + " days"
	}
	return strconv.Itoa(pick(g, []int{1, 24, 48})) + " hours"
}

func (g *Gen) pred(gr *Graph, t *Table, cols []Column, entity string, scope []scopeCol, depth int) Pred {
	if depth > 0 && g.chance(0.35) {
		switch g.r.IntN(4) {
		case 0:
			return &PNot{X: g.pred(gr, t, cols, entity, scope, depth-1)}
		case 1, 2:
			return &PAnd{Terms: []Pred{g.pred(gr, t, cols, entity, scope, depth-1), g.pred(gr, t, cols, entity, scope, depth-1)}}
		default:
			return &POr{Terms: []Pred{g.pred(gr, t, cols, entity, scope, depth-1), g.pred(gr, t, cols, entity, scope, depth-1)}}
		}
	}
	return g.cmp(gr, t, cols, entity, scope, false)
}

// cmp draws a comparison on one of cols. entity qualifies the left side
// now and then; scope lists what a dynamic reference may name.
func (g *Gen) cmp(gr *Graph, t *Table, cols []Column, entity string, scope []scopeCol, trait bool) *Cmp {
	c := pick(g, cols)
	left := c.Name
	if entity != "" && g.chance(0.2) {
		left = entity + "." + c.Name
	}
	if trait && g.chance(0.2) {
		left = "trait." + c.Name
	}
	if trait {
		scope = nil
		for _, pc := range gr.Profile.Table.Columns {
			scope = append(scope, scopeCol{"trait." + pc.Name, pc.Type})
		}
	}
	out := &Cmp{Left: left}
	if g.chance(0.1) {
		out.Rest = pick(g, []string{"is null", "is not null"})
		return out
	}
	var refs []scopeCol
	for _, s := range scope {
		if s.typ.comparable(c.Type) {
			refs = append(refs, s)
		}
	}
	if len(refs) > 0 && g.chance(0.2) {
		r := pick(g, refs)
		out.Refs = []string{strings.SplitN(r.ref, ".", 2)[0]}
		var ops []string
		switch {
		case c.Type == Text:
			ops = []string{"=", "!=", "<", "<=", ">", ">=", "contains", "not contains", "starts with", "ends with"}
		case c.Type == Bool:
			ops = []string{"=", "!="}
		default:
			ops = []string{"=", "!=", "<", "<=", ">", ">="}
		}
		out.Rest = pick(g, ops) + " " + r.ref
		return out
	}
	if v, ok := g.sample(t, c); ok && c.Type != Bool {
		lit := literal(v, c.Type)
		switch {
		case c.Type.temporal():
			out.Rest = pick(g, []string{"before", "after"}) + " " + lit
		case c.Type == Text && g.chance(0.3):
			out.Rest = pick(g, []string{"contains", "not contains", "starts with", "ends with"}) + " " + lit
		case g.chance(0.2):
			out.Rest = pick(g, []string{"in", "not in"}) + " (" + lit + ")"
		default:
			out.Rest = pick(g, []string{"=", "!=", "<", "<=", ">", ">="}) + " " + lit
		}
		return out
	}
	switch c.Type {
	case Text:
		switch g.r.IntN(4) {
		case 0:
			out.Rest = pick(g, []string{"contains", "not contains", "starts with", "ends with"}) + " " + q(pick(g, subPool))
		case 1:
			out.Rest = pick(g, []string{"in", "not in"}) + " (" + g.list(func() string { return q(pick(g, textPool)) }) + ")"
		default:
			out.Rest = pick(g, []string{"=", "!=", "<", "<=", ">", ">="}) + " " + q(pick(g, textPool))
		}
	case Int, Float:
		if g.chance(0.25) {
			out.Rest = pick(g, []string{"in", "not in"}) + " (" + g.list(g.number) + ")"
		} else {
			out.Rest = pick(g, []string{"=", "!=", "<", "<=", ">", ">="}) + " " + g.number()
		}
	case Bool:
		out.Rest = pick(g, []string{"is true", "is false", "= true", "= false", "!= true", "!= false"})
	case Timestamp, Date:
		switch g.r.IntN(3) {
		case 0:
			out.Rest = "within " + g.window()
		case 1:
			out.Rest = "before " + q(g.dateLiteral())
		default:
			out.Rest = "after " + q(g.dateLiteral())
		}
	}
	return out
}

func (g *Gen) list(item func() string) string {
	parts := make([]string, 1+g.r.IntN(3))
	for i := range parts {
		parts[i] = item()
	}
	return strings.Join(parts, ", ")
}

func q(s string) string { return grammar.Quote(s) }

// number draws a number literal: integers and exact quarters from the
// data's range.
func (g *Gen) number() string {
	if g.chance(0.3) {
		return NumberText(big.NewRat(int64(g.r.IntN(64)-16), 4))
	}
	if g.chance(0.05) {
		return pick(g, []string{"100", "-100", "100.5", "1.0", "1099511627776"})
	}
	return strconv.Itoa(g.r.IntN(16) - 3)
}

// dateLiteral draws a date or timestamp string near the data's
// boundaries, in each form the language accepts.
func (g *Gen) dateLiteral() string {
	day := g.now.Truncate(24*time.Hour).AddDate(0, 0, -g.r.IntN(10))
	switch g.r.IntN(6) {
	case 0:
		return day.Format("2006-01-02")
	case 1:
		t := g.now.Add(-time.Duration(pick(g, []int{0, 1, 24, 168})) * time.Hour).Truncate(time.Microsecond)
		return t.Format("2006-01-02T15:04:05.999999Z")
	case 2:
		return day.Format("2006-01-02 15:04:05")
	case 3:
		return day.Add(2 * time.Hour).In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05-07:00")
	case 4:
		return day.Add(time.Microsecond).Format("2006-01-02T15:04:05.000001Z")
	}
	return g.now.Format(time.RFC3339Nano)
}

// Enrich draws enrichment columns from the steps (entity names, top down)
// of the audience's primary path and from the traits.
func (g *Gen) Enrich(gr *Graph, steps []string) []string {
	var cands []string
	for _, c := range gr.Profile.Table.Columns {
		cands = append(cands, "trait."+c.Name)
	}
	for _, s := range steps {
		e := gr.Entity(s)
		for _, c := range e.Table.Columns {
			cands = append(cands, s+"."+c.Name)
		}
	}
	var out []string
	seen := map[string]bool{}
	for range g.r.IntN(4) {
		c := pick(g, cands)
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// Limit draws a preview limit for a case: usually none.
func (g *Gen) Limit() int {
	if g.chance(0.15) {
		return 1 + g.r.IntN(5)
	}
	return 0
}

// Now is the cycle start of the last graph drawn: windows and the data's
// timestamps are placed around it.
func (g *Gen) Now() time.Time { return g.now }
