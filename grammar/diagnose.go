package grammar

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// diagnose explains why a declaration does not parse. Participle builds the
// tree, but with backtracking its errors often point at where it gave up
// rather than at the mistake ("unexpected "match"" for a path missing its
// entity). diagnose walks the same grammar by hand, left to right, and
// stops at the first token that cannot continue the declaration, saying
// what could have come there. It returns nil if it finds nothing wrong;
// the caller then falls back to participle's message.
//
// It follows participle's choices where they matter: keywords are ordinary
// identifiers (`entity x` without a block is a setting), and optional
// parts are taken greedily.
func diagnose(chunk []lexer.Token) (err *Error) {
	d := &diagnoser{toks: chunk}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(bail); !ok {
				panic(r)
			}
			err = d.err
		}
	}()
	d.decl()
	if !d.peek().EOF() {
		d.fail(fmt.Sprintf("a new declaration after the end of %s", d.what))
	}
	return nil
}

type bail struct{}

type diagnoser struct {
	toks []lexer.Token // ends with EOF
	i    int
	what string // the declaration, e.g. `audience a`, for messages
	err  *Error
	// failAt is the index of the token err is about.
	failAt int
	// swallowed explains a doubtful reading, appended to the message.
	swallowed string
}

func (d *diagnoser) peek() lexer.Token { return d.toks[d.i] }

func (d *diagnoser) peekAt(n int) lexer.Token {
	if d.i+n < len(d.toks) {
		return d.toks[d.i+n]
	}
	return d.toks[len(d.toks)-1]
}

func (d *diagnoser) next() lexer.Token {
	t := d.toks[d.i]
	if d.i < len(d.toks)-1 {
		d.i++
	}
	return t
}

// is reports whether t is the keyword or punctuation v. As in participle,
// keywords are matched by text: any identifier token may spell one.
func is(t lexer.Token, v string) bool { return !t.EOF() && t.Value == v }

func isIdent(t lexer.Token) bool { return t.Type == tokIdent }

func isLiteral(t lexer.Token) bool {
	return t.Type == tokNumber || t.Type == tokDuration ||
		t.Type == tokIdent && (t.Value == "true" || t.Value == "false" || t.Value == "null")
}

func isValueStart(t lexer.Token) bool {
	return t.Type == tokIdent || t.Type == tokString || t.Type == tokNumber || t.Type == tokDuration
}

// describe names a token for a message.
func describe(t lexer.Token) string {
	switch t.Type {
	case lexer.EOF:
		return "the end of the file"
	case tokString:
		return "string " + t.Value
	case tokNumber:
		return "number " + t.Value
	case tokDuration:
		return "duration " + t.Value
	}
	return strconv.Quote(t.Value)
}

// fail stops at the current token: expected says what could come there.
func (d *diagnoser) fail(expected string, suggestFrom ...string) {
	t := d.peek()
	d.failAt = d.i
	if t.EOF() {
		// Point just after the last token, where the missing text goes.
		pos := t.Pos
		if d.i > 0 {
			pos = endOf(d.toks[d.i-1])
		}
		d.err = &Error{Pos: pos, EndPos: pos, Msg: fmt.Sprintf("%s is incomplete: expected %s%s", d.what, expected, d.swallowed)}
		panic(bail{})
	}
	msg := fmt.Sprintf("unexpected %s: expected %s", describe(t), expected)
	if isIdent(t) {
		if s := Suggest(t.Value, suggestFrom); s != "" {
			msg += "; did you mean " + s + "?"
		}
	}
	d.err = &Error{Pos: t.Pos, EndPos: endOf(t), Msg: msg + d.swallowed}
	panic(bail{})
}

// expect consumes the keyword or punctuation v, else fails saying what
// it should have followed.
func (d *diagnoser) expect(v, after string) lexer.Token {
	if !is(d.peek(), v) {
		d.fail(fmt.Sprintf("%q after %s", v, after))
	}
	return d.next()
}

func (d *diagnoser) name(what, after string) lexer.Token {
	if !isIdent(d.peek()) {
		d.fail(fmt.Sprintf("%s after %s", what, after))
	}
	return d.next()
}

func (d *diagnoser) str(what, after string) {
	if d.peek().Type != tokString {
		d.fail(fmt.Sprintf("%s (a double-quoted string) after %s", what, after))
	}
	d.next()
}

func (d *diagnoser) literal(what, after string) {
	if !isLiteral(d.peek()) {
		d.fail(fmt.Sprintf("%s after %s", what, after))
	}
	d.next()
}

const declKeywords = "warehouse, state, graph, audience, destination, activation or test"

func (d *diagnoser) decl() {
	t := d.peek()
	d.what = "the declaration"
	if isTopLevel(t) {
		d.what = t.Value
		if n := d.peekAt(1); isIdent(n) && t.Value != "warehouse" && t.Value != "graph" && t.Value != "state" {
			d.what += " " + n.Value
		}
	}
	switch {
	case is(t, "warehouse"):
		d.next()
		d.block("warehouse", d.setting, "a setting (key value)")
	case is(t, "state"):
		d.next()
		d.value("the state directory (a string)", `"state"`)
		if is(d.peek(), "{") {
			d.block("state", d.setting, "a setting (key value)")
		}
	case is(t, "graph"):
		d.next()
		d.block("graph", d.graphItem, "profile, entity, relationship, memberships, events or a setting", "profile", "entity", "relationship", "memberships", "events")
	case is(t, "audience"):
		d.next()
		d.name("the audience's name", `"audience"`)
		d.block(d.what, d.audienceClause, `description, schedule, match, enrich, enabled or alert`, "description", "schedule", "match", "enrich", "enabled", "alert")
	case is(t, "destination"):
		d.next()
		d.name("the destination's name", `"destination"`)
		d.block(d.what, d.setting, "a setting (key value)")
	case is(t, "activation"):
		d.next()
		d.name("the activation's name", `"activation"`)
		d.block(d.what, d.activationClause, "audience, destination, event, send_current, properties or a setting", "audience", "destination", "event", "send_current", "properties")
	case is(t, "test"):
		d.next()
		d.str("the test's name", `"test"`)
		d.block(d.what, d.testClause, "audience, now, given, expect or then", "audience", "now", "given", "expect", "then")
	default:
		d.fail("a declaration: "+declKeywords, TopLevelKeywords...)
	}
}

// block is `{ ITEM* }`; item parses one item and reports whether one was
// there; items names them for the message when neither an item nor `}`
// follows.
func (d *diagnoser) block(what string, item func() bool, items string, keywords ...string) {
	open := d.expect("{", what)
	for item() {
	}
	if t := d.peek(); t.EOF() {
		pos := endOf(d.toks[d.i-1])
		where := "the end of the file"
		if t.Value != "" {
			where = fmt.Sprintf("the next declaration (line %d)", t.Pos.Line)
		}
		d.failAt = d.i
		d.err = &Error{Pos: pos, EndPos: pos, Msg: fmt.Sprintf(`missing "}" to close %s (opened at line %d) before %s`, what, open.Pos.Line, where)}
		panic(bail{})
	}
	if t := d.peek(); is(t, ")") {
		d.failAt = d.i
		d.err = &Error{Pos: t.Pos, EndPos: endOf(t), Msg: `unexpected ")": no "(" is open here`}
		panic(bail{})
	}
	if !is(d.peek(), "}") {
		closing := fmt.Sprintf(`"}" to close the "{" at line %d`, open.Pos.Line)
		d.fail(fmt.Sprintf("%s, or %s", items, closing), keywords...)
	}
	d.next()
}

// setting is `KEY VALUE [from VALUE]`.
func (d *diagnoser) setting() bool {
	if !isIdent(d.peek()) {
		return false
	}
	key := d.next()
	d.value("a value", strconv.Quote(key.Value))
	if is(d.peek(), "from") && isValueStart(d.peekAt(1)) {
		d.next()
		d.value("a value", `"from"`)
	}
	return true
}

// value is a string, number, duration, true, false, null, env("NAME") or
// a (qualified) name.
func (d *diagnoser) value(what, after string) {
	d.part(func() { d.value1(what, after) })
}

func (d *diagnoser) value1(what, after string) {
	t := d.peek()
	switch {
	case is(t, "env") && is(d.peekAt(1), "("):
		d.next()
		d.next()
		d.str("the variable's name", `"env("`)
		d.expect(")", `env("…"`)
	case t.Type == tokString || isLiteral(t):
		d.next()
	case isIdent(t):
		d.ref("a name", after)
	default:
		d.fail(fmt.Sprintf("%s after %s", what, after))
	}
}

func (d *diagnoser) ref(what, after string) string {
	n := d.name(what, after)
	text := n.Value
	if is(d.peek(), ".") && isIdent(d.peekAt(1)) {
		d.next()
		text += "." + d.next().Value
	}
	return text
}

func (d *diagnoser) graphItem() bool {
	t := d.peek()
	switch {
	case is(t, "profile") && is(d.peekAt(1), "{"):
		d.next()
		d.block("profile", d.setting, "a setting (table, key)")
	case is(t, "entity") && isIdent(d.peekAt(1)) && is(d.peekAt(2), "{"):
		d.next()
		n := d.next()
		d.block("entity "+n.Value, d.setting, "a setting (table, key)")
	case is(t, "relationship") && isIdent(d.peekAt(1)) && is(d.peekAt(2), "->"):
		d.next()
		from := d.next()
		d.next()
		to := d.name("the entity it leads to", "relationship "+from.Value+" ->")
		after := fmt.Sprintf("relationship %s -> %s", from.Value, to.Value)
		if is(d.peek(), "through") {
			d.next()
			d.str("the junction table", `"through"`)
			d.expect("as", "the junction table")
			d.name("the junction table's alias", `"as"`)
			after = "the junction table's alias"
		}
		if !is(d.peek(), "on") {
			d.fail(fmt.Sprintf(`"on" and the join columns after %s`, after))
		}
		d.next()
		d.joinCond()
		for is(d.peek(), "and") {
			d.next()
			d.joinCond()
		}
	case is(t, "entity") && !isIdent(d.peekAt(1)) && !isValueStart(d.peekAt(1)):
		d.next()
		d.name("the entity's name", `"entity"`)
	case is(t, "relationship") && !isValueStart(d.peekAt(1)):
		d.next()
		d.name("the entity it starts from", `"relationship"`)
	case is(t, "memberships") && is(d.peekAt(1), "{"):
		d.next()
		d.block("memberships", d.setting, "a setting (table, profile, audience)")
	case is(t, "events") && is(d.peekAt(1), "{"):
		d.next()
		d.block("events", d.setting, "a setting (table, profile, name, time)")
	default:
		return d.setting()
	}
	return true
}

func (d *diagnoser) joinCond() {
	left := d.ref("a column (entity.column)", `"on"`)
	d.expect("=", left)
	d.ref("a column (entity.column)", `"="`)
}

func (d *diagnoser) audienceClause() bool {
	t := d.peek()
	switch {
	case is(t, "description"):
		d.next()
		d.str("the description", `"description"`)
	case is(t, "schedule"):
		d.next()
		switch t := d.peek(); {
		case is(t, "every"):
			d.next()
			d.literal("a duration such as 15m, 1h or 1d", `"every"`)
		case is(t, "daily"):
			d.next()
			d.expect("at", `"daily"`)
			d.str(`the time, e.g. "09:00",`, `"daily at"`)
		case is(t, "cron"):
			d.next()
			d.str(`a cron expression, e.g. "0 9 * * MON",`, `"cron"`)
		case is(t, "manual"):
			d.next()
		default:
			d.fail(`every DURATION, daily at "HH:MM", cron "SPEC" or manual after "schedule"`, "every", "daily", "cron", "manual")
		}
		if is(d.peek(), "in") {
			d.next()
			d.str(`a time zone, e.g. "Europe/Paris",`, `"in"`)
		}
	case is(t, "match"):
		d.next()
		d.or(0, `"match"`)
	case is(t, "enrich"):
		d.next()
		d.refList(`"enrich"`)
	case is(t, "enabled"):
		d.next()
		d.value("true or false", `"enabled"`)
	case is(t, "alert"):
		d.next()
		d.name("what to watch, e.g. size_change,", `"alert"`)
		if t := d.peek(); t.Type != tokOp {
			d.fail("a comparison (>, >=, <, <=) after the metric")
		}
		d.next()
		// Any literal parses (the checker says a threshold is a number),
		// as participle accepts it.
		if t := d.peek(); !isLiteral(t) {
			d.fail("a threshold such as 20% or 1000 after the comparison")
		}
		d.next()
		if is(d.peek(), "%") {
			d.next()
		}
		if is(d.peek(), "notify") {
			d.next()
			d.name("the destination to notify", `"notify"`)
		}
	default:
		return false
	}
	return true
}

func (d *diagnoser) refList(after string) {
	d.ref("a column (entity.column or trait.column)", after)
	for is(d.peek(), ",") {
		d.next()
		d.ref("a column (entity.column or trait.column)", `","`)
	}
}

func (d *diagnoser) activationClause() bool {
	t := d.peek()
	n := d.peekAt(1)
	switch {
	case is(t, "audience") && isIdent(n):
		d.next()
		d.next()
	case is(t, "destination") && isIdent(n):
		d.next()
		d.next()
	case is(t, "event") && isIdent(n):
		d.next()
		d.next()
		if e := d.peek(); isIdent(e) && !isActivationKeyword(e) {
			if strings.HasPrefix(n.Value, "audience_") {
				// Events about the audience take no entity: an identifier
				// here is more likely a misspelt clause, worth a hint if
				// the activation then fails to parse.
				d.swallowed = fmt.Sprintf("; %q was read as the entity of event %s", e.Value, n.Value)
				if s := Suggest(e.Value, activationKeywords); s != "" {
					d.swallowed += ": did you mean " + s + "?"
				}
			}
			d.next()
		}
	case is(t, "send_current") && isValueStart(n):
		d.next()
		d.value("true or false", `"send_current"`)
	case is(t, "properties") && isIdent(n):
		d.next()
		d.refList(`"properties"`)
	default:
		return d.setting()
	}
	return true
}

var activationKeywords = []string{"audience", "destination", "event", "send_current", "properties"}

func isActivationKeyword(t lexer.Token) bool {
	switch t.Value {
	case "audience", "destination", "event", "send_current", "properties":
		return true
	}
	return false
}

// Conditions. depth counts open parentheses, which ParseFile limits
// before parsing; after names what came before, for messages.

const conditionStart = "a condition (a path such as profile -> account, trait, in audience, performed, not or a parenthesis)"

func (d *diagnoser) or(depth int, after string) {
	d.and(depth, after)
	for is(d.peek(), "or") {
		d.next()
		d.and(depth, `"or"`)
	}
}

func (d *diagnoser) and(depth int, after string) {
	d.unary(depth, after)
	for is(d.peek(), "and") {
		d.next()
		d.unary(depth, `"and"`)
	}
}

// unary is `not UNARY` or a primary condition. As in participle, an
// alternative that fails within two tokens of where it started is given
// up for the next one: `not in (1)` compares a column named not.
func (d *diagnoser) unary(depth int, after string) {
	if is(d.peek(), "not") && d.alt(func() {
		d.next()
		d.unary(depth, `"not"`)
	}) {
		return
	}
	d.primary(depth, after)
}

func (d *diagnoser) primary(depth int, after string) {
	t, n := d.peek(), d.peekAt(1)
	var first *Error // the first alternative's error, the most specific
	try := func(f func()) bool {
		if d.alt(f) {
			return true
		}
		if first == nil {
			first = d.err
		}
		return false
	}
	switch {
	case is(t, "(") && try(func() { d.group(depth, after) }):
	case is(t, "trait") && try(func() {
		d.next()
		d.comparison("trait")
	}):
	case is(t, "in") && try(func() {
		d.next()
		d.expect("audience", `"in"`)
		d.name("the audience's name", `"in audience"`)
	}):
	case is(t, "performed") && try(func() { d.performed(depth) }):
	case isIdent(t) && is(n, "->") && try(func() { d.path(depth) }):
	case isIdent(t) && try(func() { d.comparison("") }):
	case first != nil:
		d.err = first
		panic(bail{})
	default:
		d.fail(fmt.Sprintf("%s after %s", conditionStart, after))
	}
}

// alt runs f, one alternative of a choice. If f fails at most two tokens
// after where it started (participle's lookahead), alt restores the
// position and returns false; a failure further on is final.
func (d *diagnoser) alt(f func()) (ok bool) {
	start := d.i
	defer func() {
		if r := recover(); r != nil {
			if _, isBail := r.(bail); !isBail || d.failAt-start > lookahead {
				panic(r)
			}
			d.i = start
			ok = false
		}
	}()
	f()
	return true
}

// part runs f, a choice or an optional part. When f fails at most two
// tokens in, participle rolls the part back and fails where it started;
// failAt says so, for the enclosing alt.
func (d *diagnoser) part(f func()) {
	start := d.i
	defer func() {
		if r := recover(); r != nil {
			if _, isBail := r.(bail); isBail && d.failAt-start <= lookahead {
				d.failAt = start
			}
			panic(r)
		}
	}()
	f()
}

func (d *diagnoser) group(depth int, after string) {
	open := d.next()
	d.or(depth+1, after)
	if !is(d.peek(), ")") {
		d.fail(fmt.Sprintf(`"and", "or", or ")" to close the "(" at %d:%d`, open.Pos.Line, open.Pos.Column))
	}
	d.next()
}

func (d *diagnoser) path(depth int) {
	d.next() // the root
	for is(d.peek(), "->") {
		d.next()
		d.step(depth)
	}
}

func (d *diagnoser) step(depth int) {
	t := d.peek()
	switch {
	case is(t, "at") && (is(d.peekAt(1), "least") || is(d.peekAt(1), "most")):
		d.next()
		kind := d.next()
		d.literal("a count", `"at `+kind.Value+`"`)
	case is(t, "exactly") && isLiteral(d.peekAt(1)):
		d.next()
		d.next()
	}
	d.name("an entity", `"->"`)
	if is(d.peek(), "where") {
		d.part(func() {
			d.next()
			d.filter(depth, `"where"`)
		})
	}
	if is(d.peek(), "having") {
		d.part(func() {
			d.next()
			d.having()
		})
	}
}

func (d *diagnoser) filter(depth int, after string) {
	if is(d.peek(), "(") {
		d.group(depth, after)
		return
	}
	if !isIdent(d.peek()) {
		d.fail(fmt.Sprintf("a comparison such as status = \"open\", or a parenthesised group, after %s", after))
	}
	d.comparison("")
}

func (d *diagnoser) having() {
	f := d.name("an aggregate: count, sum(column), min(column), max(column) or avg(column),", `"having"`)
	after := f.Value
	if is(d.peek(), "(") {
		d.next()
		c := d.name("a column", f.Value+"(")
		d.expect(")", f.Value+"("+c.Value)
		after = f.Value + "(" + c.Value + ")"
	}
	if d.peek().Type != tokOp {
		d.fail(fmt.Sprintf("a comparison operator (= != < <= > >=) after %s", after))
	}
	op := d.next()
	d.value("a value", strconv.Quote(op.Value))
}

func (d *diagnoser) performed(depth int) {
	d.next()
	d.str("the event's name", `"performed"`)
	t := d.peek()
	if is(t, "at") && (is(d.peekAt(1), "least") || is(d.peekAt(1), "most")) || is(t, "exactly") && isLiteral(d.peekAt(1)) {
		d.part(func() {
			d.next()
			if t.Value == "at" {
				d.next()
			}
			d.literal("a count", t.Value)
			d.expect("times", "the count")
		})
	}
	if is(d.peek(), "within") {
		d.part(func() {
			d.next()
			d.window(`"within"`)
		})
	}
	if is(d.peek(), "where") {
		d.part(func() {
			d.next()
			d.filter(depth, `"where"`)
		})
	}
}

func (d *diagnoser) window(after string) {
	d.literal("a count, as in within 30 days,", after)
	d.name("a unit, days or hours,", "the count")
}

const operators = "(= != < <= > >= in, not in, contains, not contains, starts with, ends with, is, within, before or after)"

func (d *diagnoser) comparison(prefix string) {
	left := d.ref("a column", prefix)
	if prefix != "" {
		left = prefix + " " + left
	}
	d.part(func() { d.operator(left) })
}

func (d *diagnoser) operator(left string) {
	t := d.peek()
	switch {
	case is(t, "is"):
		d.next()
		if is(d.peek(), "not") {
			d.next()
		}
		if t := d.peek(); !is(t, "null") && !is(t, "true") && !is(t, "false") {
			d.fail(`null, true or false after "is"`, "null", "true", "false")
		}
		d.next()
	case is(t, "in") || is(t, "not") && is(d.peekAt(1), "in"):
		if is(t, "not") {
			d.next()
		}
		d.next()
		d.expect("(", `"in"`)
		d.value("a value", `"("`)
		for is(d.peek(), ",") {
			d.next()
			d.value("a value", `","`)
		}
		d.expect(")", "the list")
	case is(t, "within"):
		d.next()
		d.window(`"within"`)
	case is(t, "not"):
		d.next()
		if !is(d.peek(), "contains") {
			d.fail(`"in" or "contains" after "not"`)
		}
		d.next()
		d.value("a value", `"contains"`)
	case is(t, "starts") || is(t, "ends"):
		d.next()
		d.expect("with", strconv.Quote(t.Value))
		d.value("a value", strconv.Quote(t.Value+" with"))
	case is(t, "contains") || is(t, "before") || is(t, "after") || t.Type == tokOp:
		d.next()
		if t.Value == "=" && is(d.peek(), "=") {
			d.fail(`a value: compare with a single "="`)
		}
		d.value("a value", strconv.Quote(t.Value))
	default:
		d.fail(fmt.Sprintf("an operator after %s %s", left, operators))
	}
}
