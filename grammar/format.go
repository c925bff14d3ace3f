package grammar

import (
	"math"
	"sort"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"
)

// Width is the column limit Format fits conditions, relationships and
// lists into before breaking them over several lines.
const Width = 80

// Format returns the canonical text of f:
//
//   - declarations in source order, separated by one blank line;
//   - blocks opened with `{` at the end of the line, two-space indentation,
//     one setting, graph item or clause per line (an empty block is `{}`);
//   - single spaces between tokens, strings re-quoted with Quote;
//   - a match condition on one line when it fits in Width columns, else
//     broken before its top-level `or`s and `and`s (continuation lines
//     indented two more) and, for a path that does not fit, before each
//     `->`, aligned under the first; parenthesised groups break the same
//     way inside the parenthesis;
//   - a long relationship breaks before `on`, a long enrich or properties
//     list after its commas.
//
// Every comment is kept, in order: a comment on its own line stays on its
// own line before the token it preceded, a comment at the end of a line
// stays at the end of the line holding the token it followed, and a
// comment between two tokens that end up on one line moves to its own
// line before that line. A blank line between items of a block, or between
// comments, is kept (runs collapse to one); blank lines after `{` and
// before `}` are dropped.
//
// The layout depends only on the tree, the comments and, for blank lines
// and comment placement, the source lines of the tokens, so formatting
// formatted text changes nothing. Comments are placed by the tokens of
// f.Src; f must be the result of ParseFile. Declarations that failed to
// parse are not in the tree and are therefore not printed: format only
// files without syntax errors.
func Format(f *File) []byte {
	w := newWriter(f)
	w.layout(fileDoc(f))
	w.end()
	return w.out
}

// --- documents -------------------------------------------------------------

// A doc describes text with optional line breaks, after Wadler's "prettier
// printer": a group is printed flat if it fits, else its soft lines break.
type doc interface{}

type (
	dTok  string // one source token
	dText string // text that is not a token (spaces)
	dLine struct{}
	dHard brk // a line break that is always taken
	dNest struct {
		n int
		d doc
	}
	dAlign struct{ d doc } // indent continuation lines to the current column
	dGroup struct{ d doc }
	// dEmpty is the inside of an empty block: nothing, or a line break if
	// comments are there, so that they stay inside.
	dEmpty struct{}
	dCat   []doc
)

var (
	sp   = dText(" ")
	line = dLine{} // a space, or a line break if its group does not fit
)

func cat(ds ...doc) dCat     { return ds }
func nest(n int, d doc) doc  { return dNest{n, d} }
func group(d doc) doc        { return dGroup{d} }
func align(d doc) doc        { return dAlign{d} }
func width(s string) int     { return utf8.RuneCountInString(s) }
func words(ws []string) dCat { return joinDocs(ws, sp) }
func name(n *Name) doc       { return dTok(n.Text) }
func str(s *Str) doc         { return dTok(Quote(s.Value())) }
func literal(l *Literal) doc { return dTok(l.Text()) }
func window(w *Window) doc   { return cat(literal(w.Count), sp, name(w.Unit)) }
func joinDocs(ws []string, sep doc) dCat {
	var d dCat
	for i, w := range ws {
		if i > 0 {
			d = append(d, sep)
		}
		d = append(d, dTok(w))
	}
	return d
}

// brk is the kind of a line break; it decides where blank lines may stay.
type brk int

const (
	brkFile  brk = iota // before the first line of the file
	brkSoft             // inside a construct: never a blank line
	brkOpen             // after `{`: no blank line before the first line
	brkItem             // between the items of a block: blank lines kept
	brkClose            // before `}`: blank lines kept before comments only
	brkEmpty            // inside an empty block with comments
	brkDecl             // between declarations: always a blank line
	brkEOF              // after the last declaration
)

// blank reports whether a blank line goes before a line that follows a
// break of kind k: first says whether it is the first line after the break,
// comment whether it is a comment, had whether the source had a blank line.
func (k brk) blank(first, comment, had bool) bool {
	switch k {
	case brkOpen, brkFile:
		return !first && had
	case brkItem, brkEOF:
		return had
	case brkClose:
		return comment && had
	case brkEmpty:
		return comment && !first && had
	case brkDecl:
		return first || had
	}
	return false
}

// --- the tree as documents ---------------------------------------------------

func fileDoc(f *File) doc {
	var d dCat
	for i, decl := range f.Decls {
		if i > 0 {
			d = append(d, dHard(brkDecl))
		}
		d = append(d, declDoc(decl))
	}
	return d
}

func block(head doc, items []doc) doc {
	if len(items) == 0 {
		return cat(head, sp, dTok("{"), dEmpty{}, dTok("}"))
	}
	body := dCat{dHard(brkOpen)}
	for i, it := range items {
		if i > 0 {
			body = append(body, dHard(brkItem))
		}
		body = append(body, it)
	}
	return cat(head, sp, dTok("{"), nest(2, body), dHard(brkClose), dTok("}"))
}

func settings(ss []*Setting) []doc {
	ds := make([]doc, len(ss))
	for i, s := range ss {
		ds[i] = setting(s)
	}
	return ds
}

func setting(s *Setting) doc {
	d := cat(name(s.Key), sp, value(s.Value))
	if s.From != nil {
		d = append(d, sp, dTok("from"), sp, value(s.From))
	}
	return d
}

func declDoc(d *Decl) doc {
	switch {
	case d.Warehouse != nil:
		return block(dTok("warehouse"), settings(d.Warehouse.Settings))
	case d.State != nil:
		head := cat(dTok("state"), sp, value(d.State.Path))
		if !d.State.Block {
			return head
		}
		return block(head, settings(d.State.Settings))
	case d.Graph != nil:
		items := make([]doc, len(d.Graph.Items))
		for i, it := range d.Graph.Items {
			items[i] = graphItem(it)
		}
		return block(dTok("graph"), items)
	case d.Audience != nil:
		a := d.Audience
		items := make([]doc, len(a.Clauses))
		for i, c := range a.Clauses {
			items[i] = audienceClause(c)
		}
		return block(cat(dTok("audience"), sp, name(a.Name)), items)
	case d.Destination != nil:
		return block(cat(dTok("destination"), sp, name(d.Destination.Name)), settings(d.Destination.Settings))
	case d.Activation != nil:
		a := d.Activation
		items := make([]doc, len(a.Clauses))
		for i, c := range a.Clauses {
			items[i] = activationClause(c)
		}
		return block(cat(dTok("activation"), sp, name(a.Name)), items)
	case d.Test != nil:
		return testDoc(d.Test)
	}
	return cat()
}

func graphItem(it *GraphItem) doc {
	switch {
	case it.Profile != nil:
		return block(dTok("profile"), settings(it.Profile.Settings))
	case it.Entity != nil:
		return block(cat(dTok("entity"), sp, name(it.Entity.Name)), settings(it.Entity.Settings))
	case it.Relationship != nil:
		return relationship(it.Relationship)
	case it.Memberships != nil:
		return block(dTok("memberships"), settings(it.Memberships.Settings))
	case it.Events != nil:
		return block(dTok("events"), settings(it.Events.Settings))
	case it.Setting != nil:
		return setting(it.Setting)
	}
	return cat()
}

func relationship(r *Relationship) doc {
	head := cat(dTok("relationship"), sp, name(r.From), sp, dTok("->"), sp, name(r.To))
	if r.Through != nil {
		head = append(head, sp, dTok("through"), sp, str(r.Through), sp, dTok("as"), sp, name(r.Alias))
	}
	var ands dCat
	for _, j := range r.On[1:] {
		ands = append(ands, line, dTok("and"), sp, joinCond(j))
	}
	on := group(cat(dTok("on"), sp, joinCond(r.On[0]), nest(2, ands)))
	return group(cat(head, nest(4, cat(line, on))))
}

func joinCond(j *JoinCond) doc { return cat(ref(j.Left), sp, dTok("="), sp, ref(j.Right)) }

func ref(r *Ref) doc {
	var d dCat
	for i, p := range r.Parts {
		if i > 0 {
			d = append(d, dTok("."))
		}
		d = append(d, name(p))
	}
	return d
}

func value(v *Value) doc {
	switch {
	case v.Env != nil:
		return cat(dTok("env"), dTok("("), str(v.Env), dTok(")"))
	case v.Str != nil:
		return str(v.Str)
	case v.Literal != nil:
		return literal(v.Literal)
	case v.Ref != nil:
		return ref(v.Ref)
	}
	return cat()
}

// refList is `KEYWORD a, b, c`, broken after the commas when too long.
func refList(keyword string, refs []*Ref) doc {
	var d dCat
	for i, r := range refs {
		if i > 0 {
			d = append(d, dTok(","), line)
		}
		d = append(d, ref(r))
	}
	return group(cat(dTok(keyword), sp, align(d)))
}

func audienceClause(c *AudienceClause) doc {
	switch {
	case c.Description != nil:
		return cat(dTok("description"), sp, str(c.Description))
	case c.Schedule != nil:
		s := c.Schedule
		zone := cat()
		if s.Zone != nil {
			zone = cat(sp, dTok("in"), sp, str(s.Zone))
		}
		switch {
		case s.Every != nil:
			return cat(dTok("schedule"), sp, dTok("every"), sp, literal(s.Every), zone)
		case s.Daily != nil:
			return cat(dTok("schedule"), sp, dTok("daily"), sp, dTok("at"), sp, str(s.Daily), zone)
		case s.Cron != nil:
			return cat(dTok("schedule"), sp, dTok("cron"), sp, str(s.Cron), zone)
		}
		return cat(dTok("schedule"), sp, dTok("manual"), zone)
	case c.Match != nil:
		return cat(dTok("match"), sp, or(c.Match))
	case c.Enrich != nil:
		return refList("enrich", c.Enrich)
	case c.Enabled != nil:
		return cat(dTok("enabled"), sp, value(c.Enabled))
	case c.Alert != nil:
		a := c.Alert
		d := cat(dTok("alert"), sp, name(a.Metric), sp, dTok(a.Op), sp, literal(a.Threshold))
		if a.Percent {
			d = append(d, dTok("%"))
		}
		if a.Notify != nil {
			d = append(d, sp, dTok("notify"), sp, name(a.Notify))
		}
		return d
	}
	return cat()
}

func activationClause(c *ActivationClause) doc {
	switch {
	case c.Audience != nil:
		return cat(dTok("audience"), sp, name(c.Audience))
	case c.Destination != nil:
		return cat(dTok("destination"), sp, name(c.Destination))
	case c.Event != nil:
		d := cat(dTok("event"), sp, name(c.Event.Kind))
		if c.Event.Entity != nil {
			d = append(d, sp, name(c.Event.Entity))
		}
		return d
	case c.SendCurrent != nil:
		return cat(dTok("send_current"), sp, value(c.SendCurrent))
	case c.Properties != nil:
		return refList("properties", c.Properties)
	case c.Setting != nil:
		return setting(c.Setting)
	}
	return cat()
}

// or and and break before their operators, continuation lines indented
// by two; an `and` inside an `or` of several terms is indented two more.
func or(o *Or) doc {
	if len(o.Terms) == 1 {
		return and(o.Terms[0])
	}
	d := dCat{and(o.Terms[0])}
	for _, t := range o.Terms[1:] {
		d = append(d, line, dTok("or"), sp, and(t))
	}
	return group(nest(2, d))
}

func and(a *And) doc {
	if len(a.Terms) == 1 {
		return unary(a.Terms[0])
	}
	d := dCat{unary(a.Terms[0])}
	for _, t := range a.Terms[1:] {
		d = append(d, line, dTok("and"), sp, unary(t))
	}
	return group(nest(2, d))
}

func unary(u *Unary) doc {
	if u.Not != nil {
		return cat(dTok("not"), sp, unary(u.Not))
	}
	p := u.Primary
	switch {
	case p.Group != nil:
		return parens(p.Group)
	case p.Trait != nil:
		return cat(dTok("trait"), sp, comparison(p.Trait))
	case p.InAudience != nil:
		return cat(dTok("in"), sp, dTok("audience"), sp, name(p.InAudience))
	case p.Performed != nil:
		return performed(p.Performed)
	case p.Path != nil:
		return path(p.Path)
	case p.Comparison != nil:
		return comparison(p.Comparison)
	}
	return cat()
}

func parens(o *Or) doc { return cat(dTok("("), align(or(o)), dTok(")")) }

// path breaks before each `->`, aligned under the first.
func path(p *Path) doc {
	var steps dCat
	for i, s := range p.Steps {
		if i > 0 {
			steps = append(steps, line)
		}
		steps = append(steps, dTok("->"), sp, step(s))
	}
	return group(cat(name(p.Root), sp, align(steps)))
}

func step(s *Step) doc {
	var d dCat
	if s.Quant != nil {
		d = append(d, quant(s.Quant), sp)
	}
	d = append(d, name(s.Entity))
	if s.Where != nil {
		d = append(d, sp, dTok("where"), sp, filter(s.Where))
	}
	if s.Having != nil {
		h := s.Having
		d = append(d, sp, dTok("having"), sp, name(h.Func))
		if h.Column != nil {
			d = append(d, dTok("("), name(h.Column), dTok(")"))
		}
		d = append(d, sp, dTok(h.Op), sp, value(h.Value))
	}
	return d
}

func quant(q *Quant) doc { return cat(words(q.Kind), sp, literal(q.Count)) }

func filter(f *Filter) doc {
	if f.Group != nil {
		return parens(f.Group)
	}
	return comparison(f.Comparison)
}

func performed(p *Performed) doc {
	d := cat(dTok("performed"), sp, str(p.Event))
	if p.Quant != nil {
		d = append(d, sp, quant(p.Quant), sp, dTok("times"))
	}
	if p.Within != nil {
		d = append(d, sp, dTok("within"), sp, window(p.Within))
	}
	if p.Where != nil {
		d = append(d, sp, dTok("where"), sp, filter(p.Where))
	}
	return d
}

func comparison(c *Comparison) doc {
	d := cat(ref(c.Left), sp)
	switch {
	case len(c.Is) > 0:
		return append(d, dTok("is"), sp, words(c.Is))
	case c.List != nil:
		if c.NotIn {
			d = append(d, dTok("not"), sp)
		}
		d = append(d, dTok("in"), sp, dTok("("))
		for i, v := range c.List {
			if i > 0 {
				d = append(d, dTok(","), sp)
			}
			d = append(d, value(v))
		}
		return append(d, dTok(")"))
	case c.Window != nil:
		return append(d, dTok("within"), sp, window(c.Window))
	}
	return append(d, words(c.Op), sp, value(c.Right))
}

// --- layout ----------------------------------------------------------------

type cmd struct {
	ind  int
	flat bool
	d    doc
}

// layout prints d through w, choosing for each group whether it is flat.
func (w *writer) layout(d doc) {
	stack := []cmd{{0, false, d}}
	col := 0
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch d := c.d.(type) {
		case dTok:
			w.tok(string(d))
			col += width(string(d))
		case dText:
			w.text(string(d))
			col += width(string(d))
		case dLine:
			if c.flat {
				w.text(" ")
				col++
			} else {
				w.newline(c.ind, brkSoft)
				col = c.ind
			}
		case dHard:
			w.newline(c.ind, brk(d))
			col = c.ind
		case dEmpty:
			if w.ci < len(w.cmts) && w.gaps[w.ci] <= w.ti {
				w.newline(c.ind, brkEmpty)
				col = c.ind
			}
		case dNest:
			stack = append(stack, cmd{c.ind + d.n, c.flat, d.d})
		case dAlign:
			stack = append(stack, cmd{col, c.flat, d.d})
		case dGroup:
			flat := c.flat || fits(Width-col, cmd{c.ind, true, d.d}, stack)
			stack = append(stack, cmd{c.ind, flat, d.d})
		case dCat:
			for i := len(d) - 1; i >= 0; i-- {
				stack = append(stack, cmd{c.ind, c.flat, d[i]})
			}
		}
	}
}

// fits reports whether next, printed flat, and what follows it up to the
// next line break fit in rem columns.
func fits(rem int, next cmd, rest []cmd) bool {
	stack := []cmd{next}
	for rem >= 0 {
		if len(stack) == 0 {
			if len(rest) == 0 {
				return true
			}
			stack = append(stack, rest[len(rest)-1])
			rest = rest[:len(rest)-1]
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch d := c.d.(type) {
		case dTok:
			rem -= width(string(d))
		case dText:
			rem -= width(string(d))
		case dLine:
			if !c.flat {
				return true
			}
			rem--
		case dHard:
			return true
		case dNest:
			stack = append(stack, cmd{c.ind, c.flat, d.d})
		case dAlign:
			stack = append(stack, cmd{c.ind, c.flat, d.d})
		case dGroup:
			stack = append(stack, cmd{c.ind, c.flat, d.d})
		case dCat:
			for i := len(d) - 1; i >= 0; i-- {
				stack = append(stack, cmd{c.ind, c.flat, d[i]})
			}
		}
	}
	return false
}

// --- output and comments -----------------------------------------------------

// writer assembles lines and places comments. Comments are tied to the
// source tokens: gaps[i] is the number of tokens before comment i, so a
// comment is written when the token it preceded is. Lines are ended
// lazily, so that a comment that followed the line's last token on the
// same source line can still be appended to it.
type writer struct {
	out  []byte
	toks []lexer.Token // the printed declarations' tokens, in source order
	cmts []Comment
	gaps []int
	ci   int // next comment to place
	ti   int // tokens printed so far

	open     bool // a line was written and awaits its newline
	lastTok  int  // index of the open line's last token
	lastLine int  // source line of the last thing written
	// The last comment written, for aligning a comment continued on the
	// next line under it.
	prev struct {
		ok                bool
		outCol, line, col int
	}

	// The line being built.
	ind     int
	cind    int // indentation of comments on their own lines before it
	kind    brk
	started bool
	buf     []byte
	pre     []Comment // comments from between this line's tokens
}

func newWriter(f *File) *writer {
	w := &writer{cmts: f.Comments, kind: brkFile}
	if len(f.Comments) > 0 && len(f.Src) > 0 {
		w.toks = declTokens(f)
	}
	w.gaps = make([]int, len(f.Comments))
	for i, c := range f.Comments {
		w.gaps[i] = sort.Search(len(w.toks), func(k int) bool { return w.toks[k].Pos.Offset > c.Pos.Offset })
	}
	return w
}

// declTokens returns the tokens of f.Src that belong to f's declarations,
// without whitespace and comments.
func declTokens(f *File) []lexer.Token {
	var toks []lexer.Token
	s := scanner{src: string(f.Src), pos: Pos{Filename: f.Name, Line: 1, Column: 1}}
	d := 0
	for t := s.next(); !t.EOF(); t = s.next() {
		if t.Type == tokSpace || t.Type == tokComment {
			continue
		}
		for d < len(f.Decls) && t.Pos.Offset >= f.Decls[d].EndPos.Offset {
			d++
		}
		if d == len(f.Decls) {
			break
		}
		if t.Pos.Offset >= f.Decls[d].Pos.Offset {
			toks = append(toks, t)
		}
	}
	return toks
}

func (w *writer) srcLine(i int) int {
	if i >= 0 && i < len(w.toks) {
		return w.toks[i].Pos.Line
	}
	return w.lastLine
}

func (w *writer) tok(s string) {
	i := w.ti
	w.ti++
	if !w.started {
		w.startLine(i)
	} else {
		for w.ci < len(w.cmts) && w.gaps[w.ci] <= i {
			w.pre = append(w.pre, w.cmts[w.ci])
			w.ci++
		}
	}
	w.buf = append(w.buf, s...)
}

func (w *writer) text(s string) {
	if w.started {
		w.buf = append(w.buf, s...)
	}
}

func (w *writer) newline(ind int, kind brk) {
	w.finishLine()
	w.ind, w.cind, w.kind = ind, ind, kind
	if kind == brkClose || kind == brkEmpty {
		w.cind += 2 // comments before `}` belong inside the block
	}
}

// endOpen ends the open line, first appending a comment that followed its
// last token on the same source line.
func (w *writer) endOpen() {
	if !w.open {
		return
	}
	if w.ci < len(w.cmts) && w.gaps[w.ci] == w.lastTok+1 && w.cmts[w.ci].Pos.Line == w.srcLine(w.lastTok) {
		c := w.cmts[w.ci]
		w.ci++
		w.out = append(w.out, ' ')
		w.prev.ok, w.prev.outCol, w.prev.line, w.prev.col = true, w.col()+1, c.Pos.Line, c.Pos.Column
		w.out = append(w.out, c.Text...)
		w.lastLine = c.Pos.Line
	}
	w.out = append(w.out, '\n')
	w.open = false
}

// col is the 0-based column (in runes) at the end of the output.
func (w *writer) col() int {
	i := len(w.out)
	for i > 0 && w.out[i-1] != '\n' {
		i--
	}
	return utf8.RuneCount(w.out[i:])
}

// ownLine writes comments that precede token i on their own lines.
func (w *writer) ownLines(upto int, first *bool) {
	for w.ci < len(w.cmts) && w.gaps[w.ci] <= upto {
		c := w.cmts[w.ci]
		w.ci++
		if len(w.out) > 0 && w.kind.blank(*first, true, c.Pos.Line > w.lastLine+1) {
			w.out = append(w.out, '\n')
		}
		col := w.cind
		if w.prev.ok && c.Pos.Line == w.prev.line+1 && c.Pos.Column == w.prev.col {
			col = w.prev.outCol - 1 // continues the comment above
		}
		w.indent(col)
		w.out = append(w.out, c.Text...)
		w.out = append(w.out, '\n')
		w.prev.ok, w.prev.outCol, w.prev.line, w.prev.col = true, col+1, c.Pos.Line, c.Pos.Column
		w.lastLine = c.Pos.Line
		*first = false
	}
}

func (w *writer) indent(n int) {
	for ; n > 0; n-- {
		w.out = append(w.out, ' ')
	}
}

func (w *writer) startLine(i int) {
	w.started = true
	w.endOpen()
	first := true
	w.ownLines(i, &first)
	if len(w.out) > 0 && w.kind.blank(first, false, w.srcLine(i) > w.lastLine+1) {
		w.out = append(w.out, '\n')
	}
}

func (w *writer) finishLine() {
	if !w.started {
		return
	}
	for _, c := range w.pre {
		w.indent(w.ind)
		w.out = append(w.out, c.Text...)
		w.out = append(w.out, '\n')
	}
	w.indent(w.ind)
	w.out = append(w.out, w.buf...)
	w.open = true
	w.lastTok = w.ti - 1
	w.lastLine = w.srcLine(w.lastTok)
	w.prev.ok = false
	w.started = false
	w.buf = w.buf[:0]
	w.pre = w.pre[:0]
}

func (w *writer) end() {
	w.finishLine()
	w.endOpen()
	w.ind, w.cind, w.kind = 0, 0, brkEOF
	first := true
	w.ownLines(math.MaxInt, &first)
	if len(w.out) > 0 && w.out[len(w.out)-1] != '\n' {
		w.out = append(w.out, '\n')
	}
}
