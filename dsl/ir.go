package dsl

import (
	"strings"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

// Range is a span of source text; IR nodes keep one so that later stages
// (planner, executor) can point errors at the audience line.
type Range struct {
	Start, End grammar.Pos
}

// Filename is the file the range is in.
func (r Range) Filename() string { return r.Start.Filename }

// Workspace is a checked workspace: every name resolved, every type checked.
// It is immutable once Check returns and safe to share between goroutines.
type Workspace struct {
	Dir          string
	Files        []*grammar.File
	Warehouse    *Warehouse
	StateDir     string // absolute; default DIR/.linkaud
	Graph        *Graph
	Audiences    []*Audience // in file and source order
	Destinations []*Destination
	Activations  []*Activation
	Tests        []*Test // test blocks, for `linkaud test` (check_tests.go)

	// MemoryLimit is the state block's memory_limit in bytes, 0 when not
	// set: the budget the process divides between the warehouse, the
	// state and the pipeline (engine.PlanMemory).
	MemoryLimit int64
}

// Audience returns the audience named name, or nil.
func (w *Workspace) Audience(name string) *Audience {
	for _, a := range w.Audiences {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Destination returns the destination named name, or nil.
func (w *Workspace) Destination(name string) *Destination {
	for _, d := range w.Destinations {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// ActivationsOf returns the activations of audience a.
func (w *Workspace) ActivationsOf(a *Audience) []*Activation {
	var out []*Activation
	for _, act := range w.Activations {
		if act.Audience == a {
			out = append(out, act)
		}
	}
	return out
}

// Warehouse is the checked `warehouse` block.
type Warehouse struct {
	Range
	Type  string // "duckdb" (default) or "snowflake"
	Path  string // duckdb: absolute file path, or ":memory:" (default)
	Loads []*TableFile
	DSN   Secret // snowflake
	// Settings holds the other settings as written (e.g. snowflake
	// query_tag, role), for the executor to interpret.
	Settings map[string]string
}

// TableFile exposes a CSV or Parquet file as a view (DuckDB only).
type TableFile struct {
	Range
	Table TableName
	File  string // absolute path
}

// Secret is a value given as env("NAME"). It is read only when used and
// never printed: String redacts it.
type Secret struct {
	Env string
}

// IsSet reports whether the secret was configured at all.
func (s Secret) IsSet() bool { return s.Env != "" }

// String names the variable, never the value.
func (s Secret) String() string {
	if s.Env == "" {
		return "<unset>"
	}
	return "env(" + s.Env + ")"
}

// TableName is a possibly qualified warehouse table name, split on '.',
// e.g. "BANK.ACCOUNTS" → ["BANK", "ACCOUNTS"].
type TableName []string

func (t TableName) String() string { return strings.Join(t, ".") }

// Graph is the checked data graph.
type Graph struct {
	Range
	// Profile is the root of every path. Its Name is "profile"; its columns
	// are the traits.
	Profile       *Entity
	Entities      []*Entity // not including Profile
	Relationships []*Relationship
	Memberships   *Memberships // nil when not declared
	Events        *Events      // nil when not declared
	MaxDepth      int          // levels counting profile; default 6
}

// Entity returns the entity named name ("profile" included), or nil.
func (g *Graph) Entity(name string) *Entity {
	if name == g.Profile.Name {
		return g.Profile
	}
	for _, e := range g.Entities {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Relationship returns the relationship from → to, or nil.
func (g *Graph) Relationship(from, to *Entity) *Relationship {
	for _, r := range g.Relationships {
		if r.From == from && r.To == to {
			return r
		}
	}
	return nil
}

// Entity is a warehouse table with a key column; Profile is one too.
type Entity struct {
	Range
	Name  string
	Table TableName
	Key   string
}

// Relationship is a declared `from -> to` join. Joins are inner.
type Relationship struct {
	Range
	From, To *Entity
	// Direct joins: From.Parent = To.Child for each pair (Through is nil).
	// Through a junction: From.Parent = Through.Child for each pair in On,
	// and Through.Parent = To.Child for each pair in ThroughOn.
	On        []JoinPair
	Through   *Junction
	ThroughOn []JoinPair
}

// JoinPair equates a column of the upper table with one of the lower.
type JoinPair struct {
	Upper, Lower string
}

// Junction is the table of a many-to-many relationship.
type Junction struct {
	Table TableName
	Alias string
}

// Memberships is the graph's table of audiences computed elsewhere.
type Memberships struct {
	Range
	Table          TableName
	ProfileColumn  string
	AudienceColumn string
}

// Events is the graph's event table used by `performed`.
type Events struct {
	Range
	Table         TableName
	ProfileColumn string
	NameColumn    string
	TimeColumn    string
}

// ScheduleKind says how an audience is scheduled.
type ScheduleKind int

const (
	ScheduleEvery ScheduleKind = iota // Every is set; the default, every 1h
	ScheduleDaily                     // DailyAt is "HH:MM" in Zone
	ScheduleCron                      // Cron is a five-field cron spec, in Zone
	ScheduleManual
)

// Schedule is when the worker runs an audience.
type Schedule struct {
	Kind    ScheduleKind
	Every   time.Duration
	DailyAt string
	Cron    string
	// Zone is the IANA time zone of a daily or cron schedule; "" is UTC.
	Zone string
}

// DefaultSchedule is Segment's hourly cadence.
var DefaultSchedule = Schedule{Kind: ScheduleEvery, Every: time.Hour}

// Audience is a checked audience definition.
type Audience struct {
	Range
	Name        string
	Description string
	Schedule    Schedule
	Match       Cond
	// Primary is the path whose matching chains are the audience's entity
	// rows: the first path in Match that is not under a `not`. Nil when the
	// audience has no such path (e.g. traits only).
	Primary *Path
	// Enrich are the enrichment columns: steps of Primary or traits.
	Enrich []*ColumnRef
	// Enabled is the file's `enabled true|false`, nil without one. When
	// set it decides the lifecycle: the state follows it, and `linkaud
	// audiences enable|disable` refuse.
	Enabled *bool
	// EnabledRange is where `enabled` is written.
	EnabledRange Range
	// Alerts are the drift alerts (check_alerts.go); they do not change
	// Version: they watch the membership, they do not define it.
	Alerts []*Alert
	// DependsOn are the DSL audiences that `in audience` refers to, directly.
	DependsOn []*Audience
	// Version identifies the definition: it changes when the audience, an
	// audience it depends on, or the graph changes.
	Version string
}

// Cond is an audience-level condition: *And, *Or, *Not, *Path, *Trait,
// *InAudience or *Performed.
type Cond interface {
	Node
	cond()
}

// Pred is a row-level predicate inside `where`: *PredAnd, *PredOr,
// *PredNot or *Compare.
type Pred interface {
	Node
	pred()
}

// Node is implemented by every IR node.
type Node interface {
	Span() Range
}

// Span implements Node.
func (r Range) Span() Range { return r }

// And holds when every term holds.
type And struct {
	Range
	Terms []Cond
}

// Or holds when any term holds.
type Or struct {
	Range
	Terms []Cond
}

// Not holds when X does not.
type Not struct {
	Range
	X Cond
}

// Path is `profile -> step (-> step)*`.
type Path struct {
	Range
	Steps []*Step
}

// Step is one `-> [QUANT] ENTITY [where …] [having …]` of a path.
type Step struct {
	Range
	Entity *Entity
	Rel    *Relationship // from the previous step's entity (profile for the first)
	Level  int           // 2 for the first step: profile is level 1
	// Quant applies when Having is nil; it defaults to at least 1.
	Quant  Quant
	Having *Having
	Where  Pred // nil when there is no where
}

// QuantKind is the kind of a quantifier.
type QuantKind int

const (
	AtLeast QuantKind = iota
	AtMost
	Exactly
)

func (k QuantKind) String() string {
	return [...]string{"at least", "at most", "exactly"}[k]
}

// Quant is `at least N`, `at most N` or `exactly N`, counting distinct
// entities by key.
type Quant struct {
	Kind QuantKind
	N    int64
}

// Holds reports whether count satisfies the quantifier.
func (q Quant) Holds(count int64) bool {
	switch q.Kind {
	case AtMost:
		return count <= q.N
	case Exactly:
		return count == q.N
	}
	return count >= q.N
}

// AggFunc is an aggregate of `having`.
type AggFunc int

const (
	AggCount AggFunc = iota
	AggSum
	AggMin
	AggMax
	AggAvg
)

func (f AggFunc) String() string {
	return [...]string{"count", "sum", "min", "max", "avg"}[f]
}

// Having is `having count OP N` or `having FUNC(COLUMN) OP VALUE` over a
// step's matching rows per parent row.
type Having struct {
	Range
	Func   AggFunc
	Column string // empty for count
	Op     Op     // one of = != < <= > >=
	Value  Literal
}

// Trait is `trait COLUMN …`, a comparison on the profile table.
type Trait struct {
	Range
	Compare *Compare
}

// InAudience is `in audience NAME`.
type InAudience struct {
	Range
	Name string
	// Audience is the DSL audience named Name, or nil when the name is
	// looked up in the graph's memberships table.
	Audience *Audience
}

// Performed is `performed "EVENT" [QUANT times] [within N days] [where …]`.
type Performed struct {
	Range
	Event  string
	Quant  Quant   // default at least 1
	Within *Window // nil: any time
	Where  Pred    // over the events table's columns; nil when absent
}

// PredAnd holds when every term holds.
type PredAnd struct {
	Range
	Terms []Pred
}

// PredOr holds when any term holds.
type PredOr struct {
	Range
	Terms []Pred
}

// PredNot holds when X does not.
type PredNot struct {
	Range
	X Pred
}

// Op is a comparison operator.
type Op int

const (
	OpEq Op = iota
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	OpIn
	OpNotIn
	OpContains
	OpNotContains
	OpStartsWith
	OpEndsWith
	OpIsNull
	OpIsNotNull
	OpIsTrue
	OpIsFalse
	OpWithin
	OpBefore
	OpAfter
)

var opText = [...]string{
	"=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "not contains",
	"starts with", "ends with", "is null", "is not null", "is true", "is false",
	"within", "before", "after",
}

func (o Op) String() string { return opText[o] }

// Compare is `COLUMN OP OPERAND`. Exactly one of Value, Values, Ref, Window
// is used, as Op requires; is null/is not null/is true/is false use none.
type Compare struct {
	Range
	Column *ColumnRef
	Op     Op
	Value  Literal    // = != < <= > >= contains … before after
	Values []Literal  // in, not in
	Ref    *ColumnRef // a dynamic reference instead of Value
	Window *Window    // within
}

// Source says which table a column belongs to.
type Source int

const (
	SourceStep   Source = iota // a step of the enclosing path: Step is set
	SourceTrait                // the profile table
	SourceEvents               // the graph's events table (performed … where)
)

// ColumnRef is a column of a step, of the profile (a trait), or of the
// events table.
type ColumnRef struct {
	Range
	Source Source
	// Step is the step the column belongs to when Source is SourceStep;
	// StepIndex is its index in the path (0 for the first step after profile).
	Step      *Step
	StepIndex int
	Entity    *Entity // the table: Step.Entity, the profile, or nil for events
	Column    string
}

// String is the reference as the language writes it, e.g. "account.id",
// "trait.email".
func (c *ColumnRef) String() string {
	switch c.Source {
	case SourceTrait:
		return "trait." + c.Column
	case SourceEvents:
		return c.Column
	}
	return c.Entity.Name + "." + c.Column
}

// LiteralKind is the type of a literal.
type LiteralKind int

const (
	LitString LiteralKind = iota
	LitNumber
	LitBool
	LitDate // a string that parsed as a date or timestamp (before/after)
)

// Literal is a constant operand. Number keeps its text so that no precision
// is lost between the DSL and SQL; Time is set for LitDate.
type Literal struct {
	Kind LiteralKind
	Text string // LitString's value; LitNumber's digits as written; LitDate's source; "true"/"false"
	Bool bool
	Time time.Time // LitDate, in UTC
}

// Window is `N days` or `N hours`: now - N <= t <= now.
type Window struct {
	N    int64
	Unit time.Duration // 24h or 1h
}

// Duration is the window's length.
func (w Window) Duration() time.Duration { return time.Duration(w.N) * w.Unit }

// EventKind is the event an activation sends.
type EventKind int

const (
	EntityAdded EventKind = iota
	EntityRemoved
	AudienceEntered
	AudienceExited
	AudienceMembershipChanged
	// EntityChanged is a pair that stays while a selected column of its
	// entity changed.
	EntityChanged
)

var eventKindText = [...]string{"entity_added", "entity_removed", "audience_entered", "audience_exited", "audience_membership_changed", "entity_changed"}

// String is the DSL spelling, e.g. "entity_added".
func (k EventKind) String() string { return eventKindText[k] }

// EventName is the Segment event name, e.g. "Entity Added".
func (k EventKind) EventName() string {
	return [...]string{"Entity Added", "Entity Removed", "Audience Entered", "Audience Exited", "Audience Membership Changed", "Entity Changed"}[k]
}

// IsEntity reports whether the event is about an entity of the path (it
// names one): entity_added, entity_removed, entity_changed.
func (k EventKind) IsEntity() bool {
	return k == EntityAdded || k == EntityRemoved || k == EntityChanged
}

// Destination is a checked destination block.
type Destination struct {
	Range
	Name string
	Type string // kafka, webhook, braze, iterable, customerio, file, stdout
	// Settings are the block's other settings by key.
	Settings map[string]Setting
}

// Setting is a destination or warehouse setting value: either literal text
// or a secret read from the environment.
type Setting struct {
	Range
	Text   string // the literal's text (strings decoded); empty for a secret
	Secret Secret // set when given as env("…")
	// FromTrait is the profile trait of `KEY VALUE from trait.COLUMN`
	// (a destination's identifier), "" without one; FromRange is where
	// it is written.
	FromTrait string
	FromRange Range
}

// Activation sends one kind of event of an audience to a destination.
type Activation struct {
	Range
	Name        string
	Audience    *Audience
	Destination *Destination
	Event       EventKind
	// Entity is the entity of entity_added/entity_removed; EntityStep its
	// index in Audience.Primary.Steps.
	Entity      *Entity
	EntityStep  int
	SendCurrent bool
	// Properties are the keys and enrichment columns to send; nil means all
	// of the audience's enrichment.
	Properties []*ColumnRef
}

func (*And) cond()        {}
func (*Or) cond()         {}
func (*Not) cond()        {}
func (*Path) cond()       {}
func (*Trait) cond()      {}
func (*InAudience) cond() {}
func (*Performed) cond()  {}
func (*PredAnd) pred()    {}
func (*PredOr) pred()     {}
func (*PredNot) pred()    {}
func (*Compare) pred()    {}
