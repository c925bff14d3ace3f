package diff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Events are stored compactly. A cycle's events to one destination share
// most of their JSON: the audience, the cycle's timestamp, the layouts
// that name the entities and columns, the activations and the columns
// each sends. That goes once into the cycle's event template (tTemplate
// cycle dest, written with the index entries that make the events
// pending); each message (version 2) stores only what varies: its kind,
// the profile and chain of keys, the stored values (already JSON
// fragments), the reason and changes. Delivery renders the Segment JSON
// from the two with the payload code a cycle used to run itself, so a
// consumer receives the same bytes (internal/crashtest's
// TestPayloadsUnchanged holds every kind of event to the bytes recorded
// before), and a cycle builds no JSON and writes a fraction of the bytes.
//
// Whole messages (version 1) stay what the alerts, the dead-letter store,
// retried dead letters and moved outboxes hold: a move renders the
// messages it carries, since its new (cycle, destination) has no template.

// messageV2 is the version byte of a compact message: the same header as
// messageV1 (ID, Activation, Audience, Event, Type, UserID), then its
// eventBody where messageV1 has the payload.
const messageV2 = 2

// eventTemplate is what the compact messages of one (cycle, destination)
// share.
type eventTemplate struct {
	Audience  string
	Timestamp string
	// Layouts are the cycle's layouts: [0] the new generation's, shown by
	// events of what is in; [1] the previous generation's, shown by events
	// of what left.
	Layouts [2]Layout
	// Activations are the cycle's activations of the destination; a
	// message names its own by index.
	Activations []templateActivation

	dest string
	pl   payload
	// shapes are, per side (layout), each activation's shape.
	shapes [2][]shape
	// traitN and stepN are the stored values' fragment counts per layout.
	traitN, stepN [2]int
	fixedBound    int // see sizeBound
}

// renderScratch is what one reader reuses from render to render: a
// template is shared by the readers of its outbox, and never written once
// made.
type renderScratch struct {
	frags [3][][]byte
	body  eventBody
	buf   []byte
}

// templateActivation is one activation of a template.
type templateActivation struct {
	Name string
	// Properties are the columns the activation sends ("trait.email",
	// "credit_card.balance"); null for all of them.
	Properties []string
}

// newEventTemplate is the template of the cycle's messages to dest; specs
// are the cycle's activations of dest, in slot order.
func newEventTemplate(aud, ts, dest string, newL, oldL Layout, specs []*actSpec) *eventTemplate {
	t := &eventTemplate{Audience: aud, Timestamp: ts, Layouts: [2]Layout{newL, oldL}}
	for _, a := range specs {
		ta := templateActivation{Name: a.name}
		if a.props != nil {
			ta.Properties = slices.Sorted(maps.Keys(a.props))
			if ta.Properties == nil {
				ta.Properties = []string{}
			}
		}
		t.Activations = append(t.Activations, ta)
	}
	t.prepare(dest, specs)
	return t
}

// prepare works out what rendering needs: the quoted texts and each
// activation's shapes. specs are nil for a template read from the store
// (they are rebuilt from Activations).
func (t *eventTemplate) prepare(dest string, specs []*actSpec) {
	t.dest = dest
	t.pl = newPayload(t.Audience, t.Timestamp)
	t.fixedBound = t.boundFixed()
	for i := range t.Layouts {
		t.traitN[i], t.stepN[i] = len(t.Layouts[i].traitCols()), len(t.Layouts[i].stepCols())
	}
	if specs == nil {
		for _, ta := range t.Activations {
			a := &actSpec{name: ta.Name, dest: dest}
			if ta.Properties != nil {
				a.props = map[string]bool{}
				for _, p := range ta.Properties {
					a.props[p] = true
				}
			}
			specs = append(specs, a)
		}
	}
	for i, l := range t.Layouts {
		for _, a := range specs {
			t.shapes[i] = append(t.shapes[i], newShape(a, dest, l))
		}
	}
}

// A template is stored as a version byte and its texts, each a uvarint
// length and the bytes (so that any bytes read back as they were): the
// audience, the timestamp; per layout its steps (entity, key) and columns
// (name, step as a varint); the activations (name, whether it lists its
// properties, the properties).
const templateV1 = 1

func (t *eventTemplate) encode() []byte {
	v := []byte{templateV1}
	v = appendBytes(v, []byte(t.Audience))
	v = appendBytes(v, []byte(t.Timestamp))
	for _, l := range t.Layouts {
		v = binary.AppendUvarint(v, uint64(len(l.Steps)))
		for _, st := range l.Steps {
			v = appendBytes(appendBytes(v, []byte(st.Entity)), []byte(st.Key))
		}
		v = binary.AppendUvarint(v, uint64(len(l.Enrich)))
		for _, e := range l.Enrich {
			v = binary.AppendVarint(appendBytes(v, []byte(e.Name)), int64(e.Step))
		}
	}
	v = binary.AppendUvarint(v, uint64(len(t.Activations)))
	for _, a := range t.Activations {
		v = appendBytes(v, []byte(a.Name))
		if a.Properties == nil {
			v = append(v, 0)
			continue
		}
		v = binary.AppendUvarint(append(v, 1), uint64(len(a.Properties)))
		for _, p := range a.Properties {
			v = appendBytes(v, []byte(p))
		}
	}
	return v
}

func decodeTemplate(v []byte, dest string) (*eventTemplate, error) {
	if len(v) == 0 || v[0] != templateV1 {
		return nil, fmt.Errorf("%w: event template", errBadValue)
	}
	r := byteReader{b: v[1:]}
	t := &eventTemplate{Audience: string(r.bytes()), Timestamp: string(r.bytes())}
	// count bounds a count read by what is left to read.
	count := func() int {
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			r.err = errBadValue
			return 0
		}
		return int(n)
	}
	for i := range t.Layouts {
		l := &t.Layouts[i]
		for range count() {
			l.Steps = append(l.Steps, Step{Entity: string(r.bytes()), Key: string(r.bytes())})
		}
		for range count() {
			name := string(r.bytes())
			step, n := binary.Varint(r.b)
			if n <= 0 {
				r.err = errBadValue
				break
			}
			r.b = r.b[n:]
			l.Enrich = append(l.Enrich, Enrich{Name: name, Step: int(step)})
		}
	}
	for range count() {
		a := templateActivation{Name: string(r.bytes())}
		if len(r.b) == 0 {
			r.err = errBadValue
			break
		}
		listed := r.b[0]
		r.b = r.b[1:]
		if listed == 1 {
			a.Properties = []string{}
			for range count() {
				a.Properties = append(a.Properties, string(r.bytes()))
			}
		}
		t.Activations = append(t.Activations, a)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: event template", errBadValue)
	}
	for i := range t.Layouts {
		if err := t.Layouts[i].Validate(); err != nil {
			return nil, fmt.Errorf("%w: event template: %v", errBadValue, err)
		}
	}
	t.prepare(dest, nil)
	return t, nil
}

// sizeBound is more than the length of any payload the template renders
// from a message of n encoded bytes: the template's part (fixedBound) and
// the message's bytes escaped (6 bytes for one at worst). Below the size
// cap, a cycle need not render an event to know it fits.
func (t *eventTemplate) sizeBound(n int) int { return t.fixedBound + 6*n }

// boundFixed is the template's part of sizeBound: the literal JSON around
// the values (at most 64 bytes per step, column and change, 1 KiB
// besides) and the template's texts escaped.
func (t *eventTemplate) boundFixed() int {
	names := len(t.pl.aud)*2 + len(t.pl.ts) + len(t.pl.compID) + len(t.dest)
	cols := 0
	for _, l := range t.Layouts {
		for _, s := range l.Steps {
			names += len(s.Entity) + len(s.Key)
		}
		for _, e := range l.Enrich {
			names += len(e.Name)
		}
		cols += len(l.Steps) + 2*len(l.Enrich)
	}
	return 1024 + 64*cols + 6*names
}

var errNoTemplate = errors.New("diff: a compact outbox message without its event template")

// render appends the Segment JSON of the message whose header is m and
// whose body is b.
func (t *eventTemplate) render(dst []byte, m *Message, b *eventBody, sc *renderScratch) ([]byte, error) {
	if b.slot >= len(t.shapes[0]) {
		return nil, fmt.Errorf("%w: activation %d of a template of %d", errBadValue, b.slot, len(t.shapes[0]))
	}
	side := 1
	if b.in {
		side = 0
	}
	sh := &t.shapes[side][b.slot]
	l := &t.Layouts[side]
	tf, err := splitFragments(b.traits, t.traitN[side], sc.frags[0])
	if err != nil {
		return nil, err
	}
	sc.frags[0] = tf
	switch b.form {
	case formIdentify:
		return t.pl.identify(dst, sh, m.ID, []byte(m.UserID), b.in, tf), nil
	case formAudience:
		return t.pl.audience(dst, sh, m.Event, m.ID, []byte(m.UserID), b.in, tf, b.reason), nil
	}
	keys, err := decodeTupleInto(b.chain, sc.frags[1])
	if err != nil {
		return nil, err
	}
	sc.frags[1] = keys
	if len(keys) < 2 || len(keys)-1 > len(l.Steps) {
		return nil, fmt.Errorf("%w: an entity event of %d keys", errBadValue, len(keys))
	}
	sf, err := splitFragments(b.vals, t.stepN[side], sc.frags[2])
	if err != nil {
		return nil, err
	}
	sc.frags[2] = sf
	for _, o := range b.overrides {
		if o.pos >= len(sf) {
			return nil, errBadValue
		}
		sf[o.pos] = o.frag
	}
	x := entityExtra{reason: b.reason, values: b.values, changes: b.changes}
	return t.pl.entity(dst, sh, m.Event, m.ID, keys, b.in, tf, sf, &x), nil
}

// templates reads the event templates of a store for one reader of the
// outbox: through the store's cache (templateCache), with the reader's
// scratch.
type templates struct {
	s  *Store
	sc renderScratch
}

type templateRef struct {
	cycle uint64
	dest  string
}

func (s *Store) templates() *templates { return &templates{s: s} }

// templateCache keeps the templates read from the store: a template never
// changes once written and a cycle id is never reused, so an entry can
// only go stale by its template's deletion, after which nobody asks for
// it. It is emptied when it reaches templateCacheMax entries.
type templateCache struct {
	mu sync.Mutex
	m  map[templateRef]*eventTemplate
}

const templateCacheMax = 4096

// get returns the template of (cycle, dest), nil if it has none.
func (ts *templates) get(cycle uint64, dest string) (*eventTemplate, error) {
	ref := templateRef{cycle, dest}
	c := &ts.s.tmplCache
	c.mu.Lock()
	t, ok := c.m[ref]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	v, found, err := ts.s.get(templateKey(cycle, dest))
	if err != nil || !found {
		// Not cached: the cycle may not have committed yet.
		return nil, err
	}
	if t, err = decodeTemplate(v, dest); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= templateCacheMax {
		c.m = map[templateRef]*eventTemplate{}
	}
	c.m[ref] = t
	c.mu.Unlock()
	return t, nil
}

// renderer returns the function that renders the body of a compact
// message of (cycle, dest) into a buffer the next call reuses.
func (ts *templates) renderer(cycle uint64, dest string) (renderFunc, error) {
	t, err := ts.get(cycle, dest)
	if err != nil {
		return nil, err
	}
	return func(m *Message, body []byte) ([]byte, error) {
		if t == nil {
			return nil, errNoTemplate
		}
		if err := ts.sc.body.decode(body); err != nil {
			return nil, err
		}
		ts.sc.buf, err = t.render(ts.sc.buf[:0], m, &ts.sc.body, &ts.sc)
		return ts.sc.buf, err
	}, nil
}

// renderFunc renders a compact message's body (its header decoded into m)
// as its payload.
type renderFunc func(m *Message, body []byte) ([]byte, error)

// wholeMessage returns v, a stored message, as a whole (version-1)
// message, rendering a compact one with render (its (cycle,
// destination)'s): what a move to another (cycle, destination) carries.
func wholeMessage(v []byte, render renderFunc) ([]byte, error) {
	if len(v) > 0 && v[0] == messageV1 {
		return v, nil
	}
	var m Message
	if _, err := decodeMessageWith(v, &m, nil, nil, render); err != nil {
		return nil, err
	}
	return encodeMessage(nil, &m), nil
}
