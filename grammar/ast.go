package grammar

import (
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// Pos is a position in a source file: file name, byte offset, 1-based line
// and 1-based column counted in runes.
type Pos = lexer.Position

// Node is implemented by every node of the parse tree.
type Node interface {
	// Span returns the position of the node's first token and the position
	// just past its last token.
	Span() (start, end Pos)
}

// span is embedded in every node; participle fills Pos and EndPos.
type span struct {
	Pos    Pos
	EndPos Pos
}

// Span implements Node.
func (s span) Span() (Pos, Pos) { return s.Pos, s.EndPos }

// File is one parsed .la file. Decls holds every declaration that parsed;
// a declaration with a syntax error is left out and reported instead.
type File struct {
	Name     string
	Src      []byte
	Decls    []*Decl
	Comments []Comment
	// Broken lists the declarations that did not parse, so that the checker
	// does not report their names as unknown elsewhere.
	Broken []BrokenDecl
}

// BrokenDecl names a declaration that had a syntax error.
type BrokenDecl struct {
	Keyword string // e.g. "audience"
	Name    string // the identifier after the keyword, if any
}

// Comment is a `#` comment, kept for fmt.
type Comment struct {
	Pos  Pos
	Text string // including the leading '#'
}

// Decl is one top-level declaration. Exactly one field is set.
type Decl struct {
	span
	Warehouse   *Warehouse   `parser:"  @@"`
	State       *State       `parser:"| @@"`
	Graph       *Graph       `parser:"| @@"`
	Audience    *Audience    `parser:"| @@"`
	Destination *Destination `parser:"| @@"`
	Activation  *Activation  `parser:"| @@"`
	Test        *Test        `parser:"| @@"`
}

// Warehouse is `warehouse { SETTING* }`.
type Warehouse struct {
	span
	Settings []*Setting `parser:"'warehouse' '{' @@* '}'"`
}

// State is `state "DIR" [{ SETTING* }]`: where the state lives and, in
// the optional block, how the process running it may use the machine
// (memory_limit).
type State struct {
	span
	Path     *Value     `parser:"'state' @@"`
	Block    bool       `parser:"( @'{'"`
	Settings []*Setting `parser:"  @@* '}' )?"`
}

// Setting is `KEY VALUE [from VALUE]`, the generic body of warehouse,
// destination, profile, entity, memberships and events blocks. Which keys a
// block allows is the checker's business, so that a misspelt key gets a
// suggestion rather than a syntax error.
type Setting struct {
	span
	Key   *Name  `parser:"@@"`
	Value *Value `parser:"@@"`
	From  *Value `parser:"( 'from' @@ )?"`
}

// Graph is `graph { ... }`.
type Graph struct {
	span
	Items []*GraphItem `parser:"'graph' '{' @@* '}'"`
}

// GraphItem is one declaration inside a graph block. Exactly one field is set.
type GraphItem struct {
	span
	Profile      *Profile      `parser:"  @@"`
	Entity       *Entity       `parser:"| @@"`
	Relationship *Relationship `parser:"| @@"`
	Memberships  *Memberships  `parser:"| @@"`
	Events       *Events       `parser:"| @@"`
	Setting      *Setting      `parser:"| @@"`
}

// Profile is `profile { table "T" key COLUMN }`.
type Profile struct {
	span
	Settings []*Setting `parser:"'profile' '{' @@* '}'"`
}

// Entity is `entity NAME { table "T" key COLUMN }`.
type Entity struct {
	span
	Name     *Name      `parser:"'entity' @@"`
	Settings []*Setting `parser:"'{' @@* '}'"`
}

// Relationship is
// `relationship FROM -> TO [through "T" as ALIAS] on A.X = B.Y (and A.X = B.Y)*`.
type Relationship struct {
	span
	From    *Name       `parser:"'relationship' @@"`
	To      *Name       `parser:"'->' @@"`
	Through *Str        `parser:"( 'through' @@"`
	Alias   *Name       `parser:"  'as' @@ )?"`
	On      []*JoinCond `parser:"'on' @@ ( 'and' @@ )*"`
}

// JoinCond is `A.X = B.Y`.
type JoinCond struct {
	span
	Left  *Ref `parser:"@@ '='"`
	Right *Ref `parser:"@@"`
}

// Memberships is `memberships { table "T" profile COLUMN audience COLUMN }`.
type Memberships struct {
	span
	Settings []*Setting `parser:"'memberships' '{' @@* '}'"`
}

// Events is `events { table "T" profile COLUMN name COLUMN time COLUMN }`.
type Events struct {
	span
	Settings []*Setting `parser:"'events' '{' @@* '}'"`
}

// Audience is `audience NAME { CLAUSE* }`.
type Audience struct {
	span
	Name    *Name             `parser:"'audience' @@ '{'"`
	Clauses []*AudienceClause `parser:"@@* '}'"`
}

// AudienceClause is one clause of an audience. Exactly one field is set.
type AudienceClause struct {
	span
	Description *Str      `parser:"  'description' @@"`
	Schedule    *Schedule `parser:"| 'schedule' @@"`
	Match       *Or       `parser:"| 'match' @@"`
	Enrich      []*Ref    `parser:"| 'enrich' @@ ( ',' @@ )*"`
	// Enabled is `enabled true|false`; any value parses, the checker
	// says what it takes.
	Enabled *Value `parser:"| 'enabled' @@"`
	Alert   *Alert `parser:"| 'alert' @@"`
}

// Alert is `alert METRIC OP NUMBER[%] [notify DESTINATION]`, e.g.
// `alert size_change > 20% notify ops`; the checker knows the metrics.
type Alert struct {
	span
	Metric    *Name    `parser:"@@"`
	Op        string   `parser:"@Op"`
	Threshold *Literal `parser:"@@"`
	Percent   bool     `parser:"@'%'?"`
	Notify    *Name    `parser:"( 'notify' @@ )?"`
}

// Schedule is `every DURATION`, `daily at "HH:MM"`, `cron "SPEC"` or
// `manual`, optionally followed by `in "ZONE"` (an IANA time zone; the
// checker allows it after daily at and cron only).
type Schedule struct {
	span
	Every  *Literal `parser:"( 'every' @@"`
	Daily  *Str     `parser:"| 'daily' 'at' @@"`
	Cron   *Str     `parser:"| 'cron' @@"`
	Manual bool     `parser:"| @'manual' )"`
	Zone   *Str     `parser:"( 'in' @@ )?"`
}

// Or is `AND (or AND)*`.
type Or struct {
	span
	Terms []*And `parser:"@@ ( 'or' @@ )*"`
}

// And is `UNARY (and UNARY)*`.
type And struct {
	span
	Terms []*Unary `parser:"@@ ( 'and' @@ )*"`
}

// Unary is `not UNARY` or a primary condition.
type Unary struct {
	span
	Not     *Unary   `parser:"  'not' @@"`
	Primary *Primary `parser:"| @@"`
}

// Primary is a parenthesised group or one condition. The grammar accepts a
// bare comparison anywhere so that the checker can explain where it belongs.
type Primary struct {
	span
	Group      *Or         `parser:"  '(' @@ ')'"`
	Trait      *Comparison `parser:"| 'trait' @@"`
	InAudience *Name       `parser:"| 'in' 'audience' @@"`
	Performed  *Performed  `parser:"| @@"`
	Path       *Path       `parser:"| @@"`
	Comparison *Comparison `parser:"| @@"`
}

// Path is `ROOT -> STEP (-> STEP)*`; ROOT must be `profile`.
type Path struct {
	span
	Root  *Name   `parser:"@@"`
	Steps []*Step `parser:"( '->' @@ )+"`
}

// Step is `[QUANT] ENTITY [where FILTER] [having AGG]`.
type Step struct {
	span
	Quant  *Quant  `parser:"@@?"`
	Entity *Name   `parser:"@@"`
	Where  *Filter `parser:"( 'where' @@ )?"`
	Having *Having `parser:"( 'having' @@ )?"`
}

// Filter is the argument of `where`: one comparison or a parenthesised group.
type Filter struct {
	span
	Group      *Or         `parser:"  '(' @@ ')'"`
	Comparison *Comparison `parser:"| @@"`
}

// Quant is `at least N`, `at most N` or `exactly N`.
type Quant struct {
	span
	Kind  []string `parser:"@( 'at' ( 'least' | 'most' ) | 'exactly' )"`
	Count *Literal `parser:"@@"`
}

// KindText is the quantifier's words joined by spaces: "at least", "at most", "exactly".
func (q *Quant) KindText() string { return strings.Join(q.Kind, " ") }

// Having is `having count OP VALUE` or `having FUNC(COLUMN) OP VALUE`.
type Having struct {
	span
	Func   *Name  `parser:"@@"`
	Column *Name  `parser:"( '(' @@ ')' )?"`
	Op     string `parser:"@Op"`
	Value  *Value `parser:"@@"`
}

// Performed is
// `performed "EVENT" [QUANT times] [within N days|hours] [where FILTER]`.
type Performed struct {
	span
	Event  *Str    `parser:"'performed' @@"`
	Quant  *Quant  `parser:"( @@ 'times' )?"`
	Within *Window `parser:"( 'within' @@ )?"`
	Where  *Filter `parser:"( 'where' @@ )?"`
}

// Window is `N days` or `N hours`.
type Window struct {
	span
	Count *Literal `parser:"@@"`
	Unit  *Name    `parser:"@@"`
}

// Comparison is `COLUMN OPERATOR [OPERANDS]`. Exactly one operator form is set.
type Comparison struct {
	span
	Left   *Ref     `parser:"@@"`
	Is     []string `parser:"( 'is' @( 'not'? ( 'null' | 'true' | 'false' ) )"`
	NotIn  bool     `parser:"| ( @'not'? 'in'"`
	List   []*Value `parser:"    '(' @@ ( ',' @@ )* ')' )"`
	Window *Window  `parser:"| 'within' @@"`
	Op     []string `parser:"| @( 'not'? 'contains' | 'starts' 'with' | 'ends' 'with' | 'before' | 'after' | Op )"`
	Right  *Value   `parser:"  @@ )"`
}

// OpText is the operator's words joined by spaces, e.g. "not in", "is not null".
func (c *Comparison) OpText() string {
	switch {
	case len(c.Is) > 0:
		return "is " + strings.Join(c.Is, " ")
	case c.List != nil && c.NotIn:
		return "not in"
	case c.List != nil:
		return "in"
	case c.Window != nil:
		return "within"
	}
	return strings.Join(c.Op, " ")
}

// Value is an operand or setting value: a string, number, duration, boolean,
// `null`, `env("NAME")`, or a (possibly qualified) name.
type Value struct {
	span
	Env     *Str     `parser:"  'env' '(' @@ ')'"`
	Str     *Str     `parser:"| @@"`
	Literal *Literal `parser:"| @@"`
	Ref     *Ref     `parser:"| @@"`
}

// Literal is a number, duration, boolean or null token, kept as written.
type Literal struct {
	span
	Number   string `parser:"  @Number"`
	Duration string `parser:"| @Duration"`
	Bool     string `parser:"| @( 'true' | 'false' )"`
	Null     bool   `parser:"| @'null'"`
}

// Text is the literal as written.
func (l *Literal) Text() string {
	switch {
	case l.Number != "":
		return l.Number
	case l.Duration != "":
		return l.Duration
	case l.Bool != "":
		return l.Bool
	case l.Null:
		return "null"
	}
	return ""
}

// Ref is `NAME` or `QUALIFIER.NAME`.
type Ref struct {
	span
	Parts []*Name `parser:"@@ ( '.' @@ )?"`
}

// String is the reference as written, e.g. "account.id".
func (r *Ref) String() string {
	parts := make([]string, len(r.Parts))
	for i, p := range r.Parts {
		parts[i] = p.Text
	}
	return strings.Join(parts, ".")
}

// Name is an identifier with its position.
type Name struct {
	span
	Text string `parser:"@Ident"`
}

// Str is a double-quoted string. Value holds the decoded text; Raw the source.
type Str struct {
	span
	Raw string `parser:"@String"`
}

// Value decodes the string's escapes. The lexer has already rejected
// malformed escapes, so decoding cannot fail here.
func (s *Str) Value() string {
	v, _ := unquote(s.Raw)
	return v
}

// Destination is `destination NAME { SETTING* }`.
type Destination struct {
	span
	Name     *Name      `parser:"'destination' @@"`
	Settings []*Setting `parser:"'{' @@* '}'"`
}

// Activation is `activation NAME { CLAUSE* }`.
type Activation struct {
	span
	Name    *Name               `parser:"'activation' @@ '{'"`
	Clauses []*ActivationClause `parser:"@@* '}'"`
}

// ActivationClause is one clause of an activation. Exactly one field is set.
type ActivationClause struct {
	span
	Audience    *Name    `parser:"  'audience' @@"`
	Destination *Name    `parser:"| 'destination' @@"`
	Event       *Event   `parser:"| 'event' @@"`
	SendCurrent *Value   `parser:"| 'send_current' @@"`
	Properties  []*Ref   `parser:"| 'properties' @@ ( ',' @@ )*"`
	Setting     *Setting `parser:"| @@"`
}

// Event is `entity_added ENTITY`, `entity_removed ENTITY`, `audience_entered`,
// `audience_exited` or `audience_membership_changed`.
type Event struct {
	span
	Kind   *Name `parser:"@@"`
	Entity *Name `parser:"( (?! 'audience' | 'destination' | 'event' | 'send_current' | 'properties' | '}' ) @@ )?"`
}
