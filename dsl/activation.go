package dsl

import (
	"sort"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

// destinationCommon are the settings every destination type takes.
var destinationCommon = map[string]settingSpec{
	"type":            {kind: "ident"},
	"rate_limit":      {kind: "any"}, // events/s, or unlimited
	"max_event_bytes": {kind: "int"},
	"batch_size":      {kind: "int"},
	"max_retries":     {kind: "int"},
}

// destinationSpecs are the settings of each destination type, and which are
// required. Secrets (api keys, passwords, signing secrets) must be env().
var destinationSpecs = map[string]struct {
	settings map[string]settingSpec
	required []string
}{
	"kafka": {map[string]settingSpec{
		"timeout":            {kind: "duration"},
		"brokers":            {kind: "any"},
		"topic":              {kind: "string"},
		"transactional":      {kind: "bool"},
		"progress_topic":     {kind: "string"},
		"client_id":          {kind: "string"},
		"sasl_mechanism":     {kind: "string"},
		"sasl_user":          {kind: "any"},
		"sasl_password":      {secret: true},
		"tls":                {kind: "bool"},
		"tls_ca":             {kind: "string"},
		"tls_cert":           {kind: "string"},
		"tls_key":            {kind: "any"},
		"tls_server_name":    {kind: "string"},
		"transactional_id":   {kind: "string"},
		"compression":        {kind: "any"},
		"create_topic":       {kind: "bool"},
		"partitions":         {kind: "int"},
		"replication_factor": {kind: "int"},
	}, []string{"brokers", "topic"}},
	"webhook": {map[string]settingSpec{
		"timeout": {kind: "duration"},
		"url":     {kind: "any"},
		"secret":  {secret: true},
	}, []string{"url"}},
	"braze": {map[string]settingSpec{
		"timeout":              {kind: "duration"},
		"endpoint":             {kind: "any"},
		"api_key":              {secret: true},
		"request_rate":         {kind: "any"},
		"identifier":           {kind: "ident", fromTrait: true},
		"alias_label":          {kind: "string"},
		"update_existing_only": {kind: "bool"},
	}, []string{"endpoint", "api_key"}},
	"iterable": {map[string]settingSpec{
		"timeout":    {kind: "duration"},
		"endpoint":   {kind: "any"},
		"region":     {kind: "string"},
		"api_key":    {secret: true},
		"bulk":       {kind: "bool"},
		"identifier": {kind: "ident", fromTrait: true},
	}, []string{"api_key"}},
	"customerio": {map[string]settingSpec{
		"timeout":      {kind: "duration"},
		"endpoint":     {kind: "any"},
		"region":       {kind: "string"},
		"site_id":      {kind: "any"},
		"api_key":      {secret: true},
		"concurrency":  {kind: "int"},
		"request_rate": {kind: "any"},
		"identifier":   {kind: "ident", fromTrait: true},
		"api":          {kind: "ident"},
	}, []string{"site_id", "api_key"}},
	"file": {map[string]settingSpec{
		"path": {kind: "string"},
	}, []string{"path"}},
	"stdout": {map[string]settingSpec{}, nil},
}

// DestinationTypes lists the destination types the checker accepts.
func DestinationTypes() []string {
	var out []string
	for t := range destinationSpecs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (c *checker) destination(d *grammar.Destination) *Destination {
	ir := &Destination{Range: rng(d), Name: d.Name.Text, Settings: map[string]Setting{}}
	var typ *grammar.Setting
	for _, s := range d.Settings {
		if s.Key.Text == "type" {
			typ = s
			break
		}
	}
	if typ == nil {
		c.errorf(d.Name, "destination %s needs a type: one of %s", ir.Name, strings.Join(DestinationTypes(), ", "))
		return nil
	}
	if typ.Value.Ref == nil || len(typ.Value.Ref.Parts) != 1 {
		c.errorf(typ.Value, "destination type is one of %s", strings.Join(DestinationTypes(), ", "))
		return nil
	}
	ir.Type = typ.Value.Ref.String()
	spec, ok := destinationSpecs[ir.Type]
	if !ok {
		dg := c.errorf(typ.Value, "unknown destination type %q", ir.Type)
		dg.Suggestion = suggest(ir.Type, DestinationTypes())
		if dg.Suggestion == "" {
			dg.Detail = "types: " + strings.Join(DestinationTypes(), ", ")
		}
		return nil
	}
	all := map[string]settingSpec{}
	for k, v := range destinationCommon {
		all[k] = v
	}
	for k, v := range spec.settings {
		all[k] = v
	}
	n := len(c.diags)
	set := c.settings(ir.Type+" destination "+ir.Name, d.Settings, all)
	for key, ss := range set {
		if ss = valid(ss); key != "type" && len(ss) > 0 {
			ir.Settings[key] = toSetting(ss[0])
		}
	}
	for _, req := range spec.required {
		if _, ok := set[req]; !ok {
			c.errorf(d.Name, "%s destination %s needs %s", ir.Type, ir.Name, req)
		}
	}
	if ss := valid(set["path"]); ir.Type == "file" && len(ss) > 0 && ss[0].Value.Str != nil {
		c.localPath(ss[0].Value, "file path", ss[0].Value.Str.Value())
	}
	if len(c.diags) > n {
		return nil
	}
	return ir
}

// activationClauses are the clauses of an activation block.
var activationClauses = []string{"audience", "destination", "event", "send_current", "properties"}

var eventKinds = map[string]EventKind{
	"entity_added": EntityAdded, "entity_removed": EntityRemoved, "audience_entered": AudienceEntered,
	"audience_exited": AudienceExited, "audience_membership_changed": AudienceMembershipChanged,
	"entity_changed": EntityChanged,
}

func (c *checker) activation(a *grammar.Activation) *Activation {
	ir := &Activation{Range: rng(a), Name: a.Name.Text, EntityStep: -1}
	n := len(c.diags)
	seen := map[string]grammar.Node{}
	once := func(cl *grammar.ActivationClause, what string) bool {
		if prev, ok := seen[what]; ok {
			c.errorf(cl, "%s given twice in activation %s (first at %s)", what, ir.Name, posText(prev))
			return false
		}
		seen[what] = cl
		return true
	}
	var event *grammar.Event
	var props []*grammar.Ref
	propsGiven := false
	for _, cl := range a.Clauses {
		switch {
		case cl.Audience != nil:
			if !once(cl, "audience") {
				continue
			}
			ir.Audience = c.audByName[cl.Audience.Text]
			if ir.Audience == nil && !c.broken["audience"][cl.Audience.Text] {
				c.unknown(cl.Audience, "audience", c.audienceNames())
			}
		case cl.Destination != nil:
			if !once(cl, "destination") {
				continue
			}
			ir.Destination = c.ws.Destination(cl.Destination.Text)
			if ir.Destination == nil && !c.broken["destination"][cl.Destination.Text] && !c.destDeclared(cl.Destination.Text) {
				var names []string
				for _, d := range c.ws.Destinations {
					names = append(names, d.Name)
				}
				c.unknown(cl.Destination, "destination", names)
			}
		case cl.Event != nil:
			if once(cl, "event") {
				event = cl.Event
			}
		case cl.SendCurrent != nil:
			if !once(cl, "send_current") {
				continue
			}
			v := cl.SendCurrent
			if v.Literal == nil || v.Literal.Bool == "" {
				c.errorf(v, "send_current takes true or false")
				continue
			}
			ir.SendCurrent = v.Literal.Bool == "true"
		case cl.Properties != nil:
			if once(cl, "properties") {
				props, propsGiven = cl.Properties, true
			}
		case cl.Setting != nil:
			d := c.errorf(cl.Setting.Key, "unknown activation clause %q", cl.Setting.Key.Text)
			d.Suggestion = suggest(cl.Setting.Key.Text, activationClauses)
		}
	}
	for _, req := range []string{"audience", "destination", "event"} {
		if _, ok := seen[req]; !ok {
			c.errorf(a.Name, "activation %s needs %s", ir.Name, req)
		}
	}
	if event != nil {
		c.event(ir, event)
	}
	if ir.SendCurrent && (ir.Event == EntityRemoved || ir.Event == AudienceExited || ir.Event == EntityChanged) && event != nil {
		c.errorf(a.Name, "send_current applies to entity_added, audience_entered and audience_membership_changed, not %s", ir.Event)
	}
	if propsGiven && ir.Audience != nil && ir.Audience.Match != nil {
		ir.Properties = []*ColumnRef{}
		for _, p := range props {
			ref := c.enrichRef(ir.Audience, p, "properties")
			if ref == nil {
				continue
			}
			if !c.sendable(ir, ref) {
				c.errorf(p, "properties %s: send keys of the path or columns the audience enriches (%s)", p.String(), c.enrichText(ir.Audience))
				continue
			}
			ir.Properties = append(ir.Properties, ref)
		}
	}
	c.identifierTrait(ir, a.Name)
	c.entityChanged(ir, a.Name)
	if len(c.diags) > n {
		return nil
	}
	return ir
}

// IdentifierTrait is the profile trait a destination block identifies
// profiles by: the `from trait.COLUMN` of its identifier setting, "email"
// for `identifier email` without one, "" when it identifies them by the
// profile key.
func IdentifierTrait(d *Destination) string {
	s, ok := d.Settings["identifier"]
	switch {
	case !ok:
		return ""
	case s.FromTrait != "":
		return s.FromTrait
	case s.Text == "email":
		return "email"
	}
	return ""
}

// identifierTrait checks that an activation sends the trait its
// destination identifies profiles by: the audience must enrich it and the
// activation's properties, if listed, must include it — else every event
// would be a dead letter at delivery.
func (c *checker) identifierTrait(ir *Activation, at grammar.Node) {
	if ir.Destination == nil || ir.Audience == nil || ir.Audience.Match == nil {
		return
	}
	trait := IdentifierTrait(ir.Destination)
	if trait == "" {
		return
	}
	enriched := false
	for _, e := range ir.Audience.Enrich {
		if e.Source == SourceTrait && e.Column == trait {
			enriched = true
		}
	}
	if !enriched {
		c.errorf(at, "activation %s: destination %s identifies profiles by trait.%s, which audience %s does not enrich: add trait.%s to its enrich list",
			ir.Name, ir.Destination.Name, trait, ir.Audience.Name, trait)
		return
	}
	if ir.Properties == nil {
		return
	}
	for _, p := range ir.Properties {
		if p.Source == SourceTrait && p.Column == trait {
			return
		}
	}
	c.errorf(at, "activation %s: destination %s identifies profiles by trait.%s: add trait.%s to the activation's properties",
		ir.Name, ir.Destination.Name, trait, trait)
}

func (c *checker) destDeclared(name string) bool {
	for _, f := range c.ws.Files {
		for _, d := range f.Decls {
			if d.Destination != nil && d.Destination.Name.Text == name {
				return true // declared but invalid: already reported
			}
		}
	}
	return false
}

func (c *checker) audienceNames() []string {
	var names []string
	for _, a := range c.ws.Audiences {
		names = append(names, a.Name)
	}
	return names
}

func (c *checker) event(ir *Activation, e *grammar.Event) {
	kind, ok := eventKinds[e.Kind.Text]
	if !ok {
		var names []string
		for k := range eventKinds {
			names = append(names, k)
		}
		sort.Strings(names)
		d := c.errorf(e.Kind, "unknown event %q", e.Kind.Text)
		d.Suggestion = suggest(e.Kind.Text, names)
		if d.Suggestion == "" {
			d.Detail = "events: " + strings.Join(names, ", ")
		}
		return
	}
	ir.Event = kind
	entityEvent := kind.IsEntity()
	switch {
	case entityEvent && e.Entity == nil:
		c.errorf(e.Kind, "%s names the entity it is about, e.g. %s credit_card", kind, kind)
		return
	case !entityEvent && e.Entity != nil:
		c.errorf(e.Entity, "%s is about the profile and takes no entity", kind)
		return
	case !entityEvent:
		return
	}
	a := ir.Audience
	if a == nil || a.Match == nil {
		return // reported elsewhere
	}
	if a.Primary == nil {
		c.errorf(e.Entity, "%s %s: audience %s has no entity path", kind, e.Entity.Text, a.Name)
		return
	}
	var names []string
	for i := len(a.Primary.Steps) - 1; i >= 0; i-- {
		st := a.Primary.Steps[i]
		if st.Entity.Name == e.Entity.Text {
			ir.Entity, ir.EntityStep = st.Entity, i
			return
		}
		names = append(names, st.Entity.Name)
	}
	d := c.errorf(e.Entity, "%s %s: %s is not on audience %s's path %s", kind, e.Entity.Text, e.Entity.Text, a.Name, pathText(a.Primary))
	d.Suggestion = suggest(e.Entity.Text, names)
}

// sendable reports whether an activation may send ref: a key of a step of
// the path down to the activation's entity, or an enriched column.
func (c *checker) sendable(act *Activation, ref *ColumnRef) bool {
	if ref.Source == SourceStep && ref.Column == ref.Entity.Key {
		return true
	}
	for _, e := range act.Audience.Enrich {
		if e.Source == ref.Source && e.Column == ref.Column && e.StepIndex == ref.StepIndex {
			return true
		}
	}
	return false
}

func (c *checker) enrichText(a *Audience) string {
	if len(a.Enrich) == 0 {
		return "it enriches none"
	}
	var parts []string
	for _, e := range a.Enrich {
		parts = append(parts, e.String())
	}
	return strings.Join(parts, ", ")
}

// DestinationSetting describes a setting the checker accepts for a
// destination type.
type DestinationSetting struct {
	Name     string
	Secret   bool // only as env("…")
	Required bool
}

// DestinationSettings lists the settings the checker accepts for a
// destination type (the common ones included), sorted by name; nil for an
// unknown type. The sinks package's registry must agree with it.
func DestinationSettings(typ string) []DestinationSetting {
	spec, ok := destinationSpecs[typ]
	if !ok {
		return nil
	}
	req := map[string]bool{}
	for _, r := range spec.required {
		req[r] = true
	}
	var out []DestinationSetting
	add := func(m map[string]settingSpec) {
		for name, s := range m {
			if name != "type" {
				out = append(out, DestinationSetting{Name: name, Secret: s.secret, Required: req[name]})
			}
		}
	}
	add(destinationCommon)
	add(spec.settings)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// activationKey is what makes two activations send the same events.
type activationKey struct {
	aud   *Audience
	dest  *Destination
	event EventKind
	ent   *Entity
}

// duplicateActivation reports ir when an earlier activation already sends
// the same events (audience, destination, event and entity): each event
// would reach the destination twice, under two messageIds, which no
// receiver can deduplicate.
func (c *checker) duplicateActivation(seen map[activationKey]*grammar.Activation, a *grammar.Activation, ir *Activation) bool {
	if ir.Audience == nil || ir.Destination == nil {
		return false // already reported: an unknown audience or destination
	}
	k := activationKey{ir.Audience, ir.Destination, ir.Event, ir.Entity}
	prev, ok := seen[k]
	if !ok {
		seen[k] = a
		return false
	}
	what := ir.Event.String()
	if ir.Entity != nil {
		what += " " + ir.Entity.Name
	}
	c.errorf(a.Name, "activation %s sends what activation %s (%s) sends: audience %s, destination %s, event %s; each event would be sent twice, with different messageIds: remove one, or merge their properties",
		a.Name.Text, prev.Name.Text, posText(prev.Name), ir.Audience.Name, ir.Destination.Name, what)
	return true
}
