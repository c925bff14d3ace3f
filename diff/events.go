package diff

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"

	"github.com/linkaud/linkaud/dsl"
)

// Segment event names and call types.
const (
	EventEntityAdded       = "Entity Added"
	EventEntityRemoved     = "Entity Removed"
	EventEntityChanged     = "Entity Changed"
	EventAudienceEntered   = "Audience Entered"
	EventAudienceExited    = "Audience Exited"
	EventMembershipChanged = "Audience Membership Changed"
	TypeTrack              = "track"
	TypeIdentify           = "identify"
)

// actSpec is what a cycle needs of one activation.
type actSpec struct {
	name, dest  string
	kind        dsl.EventKind
	step        int // the named entity's step; -1 for audience events
	sendCurrent bool
	first       bool   // the activation's first cycle
	sig         string // identity across cycles (see signature)
	props       map[string]bool
	events      int64
	// slot is the activation's index in its destination's event template.
	slot int
	// changes are the columns an Entity Changed activation compares.
	changes []changeCol
}

// signature identifies what an activation sends and where: when it changes
// (another event, entity or destination) the activation starts afresh, as
// a new one would — nothing unless send_current.
func signature(a *dsl.Activation, l Layout) string {
	var b strings.Builder
	b.WriteString(a.Event.String())
	b.WriteByte('|')
	b.WriteString(a.Destination.Name)
	if a.Event.IsEntity() {
		for _, s := range l.Steps[:a.EntityStep+1] {
			b.WriteByte('|')
			b.WriteString(s.Entity)
		}
	}
	return b.String()
}

func newActSpec(a *dsl.Activation, aud *dsl.Audience, l Layout) (*actSpec, error) {
	switch {
	case a == nil:
		return nil, fmt.Errorf("diff: nil activation")
	case a.Audience != nil && a.Audience.Name != aud.Name:
		return nil, fmt.Errorf("diff: activation %s belongs to audience %s, not %s", a.Name, a.Audience.Name, aud.Name)
	case a.Destination == nil || a.Destination.Name == "":
		return nil, fmt.Errorf("diff: activation %s has no destination", a.Name)
	case a.Event < dsl.EntityAdded || a.Event > dsl.EntityChanged:
		return nil, fmt.Errorf("diff: activation %s: unknown event %d", a.Name, a.Event)
	}
	sp := &actSpec{name: a.Name, dest: a.Destination.Name, kind: a.Event, step: -1, sendCurrent: a.SendCurrent}
	if a.Event.IsEntity() {
		if a.EntityStep < 0 || a.EntityStep >= len(l.Steps) {
			return nil, fmt.Errorf("diff: activation %s names step %d of a %d-step path", a.Name, a.EntityStep, len(l.Steps))
		}
		if a.Entity != nil && a.Entity.Name != l.Steps[a.EntityStep].Entity {
			return nil, fmt.Errorf("diff: activation %s names %s, but step %d is %s", a.Name, a.Entity.Name, a.EntityStep, l.Steps[a.EntityStep].Entity)
		}
		sp.step = a.EntityStep
	}
	if a.Properties != nil {
		sp.props = map[string]bool{}
		for _, p := range a.Properties {
			sp.props[p.String()] = true
		}
	}
	sp.sig = signature(a, l)
	return sp, nil
}

// includes reports whether enrichment column e of layout l goes into the
// activation's events.
func (a *actSpec) includes(l Layout, e Enrich) bool {
	if a.props == nil {
		return true
	}
	if e.Step == Trait {
		return a.props["trait."+e.Name]
	}
	return a.props[l.Steps[e.Step].Entity+"."+e.Name]
}

// MessageID derives an event's messageId from (activation, event, profile,
// entity, generation): the same event of the same generation always has
// the same id, so a redelivery can be deduplicated. entity is the key of
// the named entity (nil for audience events): an entity event is about
// the (profile, entity) pair, whichever chains reach it.
func MessageID(activation, event, profile string, entity []string, generation uint64) string {
	var key []byte
	key = appendString(key, profile)
	for _, e := range entity {
		key = appendString(key, e)
	}
	return messageID(activation, event, key, generation)
}

// messageID is MessageID over the encoded key (profile and entity keys).
func messageID(activation, event string, key []byte, generation uint64) string {
	h := sha256.New()
	var buf []byte
	buf = appendString(buf, activation)
	buf = appendString(buf, event)
	h.Write(buf)
	h.Write(key)
	h.Write(binary.BigEndian.AppendUint64(nil, generation))
	var sum [sha256.Size]byte
	return "la-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// emitter writes a cycle's events into staged outbox entries (tEvent under
// the cycle's id) that become visible when the cycle commits.
type emitter struct {
	s        *Store
	aud      string
	gen      uint64
	cycle    uint64
	ts       string
	maxBytes int

	batch *pebble.Batch
	// staged, once the cycle's events outgrow stageAt bytes, holds one
	// stager per destination (each destination's keys are a run of
	// increasing idx), and events go there instead of into batch.
	staged  map[string]*stager
	stageAt int
	next    map[string]uint32
	dests   []string // in first-use order
	events  int64
	over    int64
	buf     []byte
	msgBuf  []byte
	// templates are the cycle's event templates, by destination of its
	// activations; the final batch writes those of the destinations with
	// events.
	templates map[string]*eventTemplate
	rendered  []byte
	scratch   renderScratch
}

// emit appends one event to the destination's outbox: its header and
// body, rendered only when it might be over the size cap.
func (e *emitter) emit(a *actSpec, event, typ string, key []byte, body *eventBody) error {
	id := messageID(a.name, event, key, e.gen)
	profile, _, _, err := decodeElem(key)
	if err != nil {
		return err
	}
	m := Message{
		ID: id, Activation: a.name, Destination: a.dest, Audience: e.aud,
		Event: event, Type: typ, UserID: string(profile),
	}
	body.slot = a.slot
	e.buf = body.append(e.buf[:0])
	t := e.templates[a.dest]
	if e.maxBytes != NoCap && t.sizeBound(len(e.buf)+len(id)+len(profile)+len(event)) > e.maxBytes {
		if e.rendered, err = t.render(e.rendered[:0], &m, body, &e.scratch); err != nil {
			return err
		}
		if len(e.rendered) > e.maxBytes {
			e.over++
			e.s.log.Warn("event over the size cap not sent", "message_id", id, "audience", e.aud,
				"activation", a.name, "event", event, "bytes", len(e.rendered), "max_bytes", e.maxBytes)
			return nil
		}
	}
	idx, seen := e.next[a.dest]
	if !seen {
		e.dests = append(e.dests, a.dest)
	}
	if idx == 1<<32-1 {
		return fmt.Errorf("diff: more than %d events for destination %s in one cycle", uint64(1<<32-1), a.dest)
	}
	e.next[a.dest] = idx + 1
	e.msgBuf = encodeCompact(e.msgBuf[:0], &m, e.buf)
	a.events++
	e.events++
	if e.staged != nil {
		return e.stager(a.dest).set(eventKey(e.cycle, a.dest, idx), e.msgBuf)
	}
	if err := e.batch.Set(eventKey(e.cycle, a.dest, idx), e.msgBuf, nil); err != nil {
		return err
	}
	if e.batch.Len() >= e.stageAt {
		return e.stage()
	}
	return nil
}

// prepareTemplates gives each activation its slot in its destination's
// template, and makes the templates.
func (e *emitter) prepareTemplates(ts string, newL, oldL Layout, acts []*actSpec) {
	byDest := map[string][]*actSpec{}
	var order []string
	for _, a := range acts {
		if _, ok := byDest[a.dest]; !ok {
			order = append(order, a.dest)
		}
		a.slot = len(byDest[a.dest])
		byDest[a.dest] = append(byDest[a.dest], a)
	}
	e.templates = map[string]*eventTemplate{}
	for _, d := range order {
		e.templates[d] = newEventTemplate(e.aud, ts, d, newL, oldL, byDest[d])
	}
}

// putTemplates writes into b the templates of the destinations that have
// events (a destination only alerts go to has none).
func (e *emitter) putTemplates(b *pebble.Batch) error {
	for _, d := range e.dests {
		t := e.templates[d]
		if t == nil {
			continue
		}
		if err := b.Set(templateKey(e.cycle, d), t.encode(), nil); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter) stager(dest string) *stager {
	st := e.staged[dest]
	if st == nil {
		st = &stager{s: e.s}
		e.staged[dest] = st
	}
	return st
}

// stage moves the events gathered in batch to the destinations' stagers;
// later events go straight there.
func (e *emitter) stage() error {
	e.staged = map[string]*stager{}
	r := e.batch.Reader()
	cp := eventCyclePrefix(e.cycle)
	for {
		_, key, val, ok, err := r.Next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		dest, _, _, err := decodeElem(key[len(cp):])
		if err != nil {
			return err
		}
		if err := e.stager(string(dest)).set(key, val); err != nil {
			return err
		}
	}
	e.batch.Reset()
	return nil
}

// stagers are the emitter's stagers, in no particular order.
func (e *emitter) stagers() []*stager {
	if e == nil {
		return nil
	}
	out := make([]*stager, 0, len(e.staged))
	for _, st := range e.staged {
		out = append(out, st)
	}
	return out
}

// ComputationID is context.personas.computation_id of an audience's
// events: "aud_" and 12 bytes, hex, of the SHA-256 of its key — stable
// across runs and versions, as Segment's audience id is.
func ComputationID(audience string) string {
	sum := sha256.Sum256([]byte(audience))
	return "aud_" + hex.EncodeToString(sum[:12])
}

// entityExtra are the properties particular to one kind of entity event.
type entityExtra struct {
	reason  string   // Entity Removed: why (Reason*)
	values  string   // Entity Removed: where the entity's values come from (Values*)
	changes []change // Entity Changed: the compared columns that changed
	// current replaces, at positions oldStep of the step values, the
	// removed entity's values by the ones the lookup read.
	current [][]byte
	oldStep []int
}

// change is one changed column of an Entity Changed event: JSON values.
type change struct {
	name     string
	from, to []byte
}

// Message encoding in the outbox and dead-letter store: a version byte,
// then ID, Activation, Audience, Event, Type, UserID, Payload, each a
// uvarint length and the bytes. Seq and Destination come from the key.
const messageV1 = 1

func encodeMessage(dst []byte, m *Message) []byte {
	return encodeMessageAs(dst, messageV1, m, m.Payload)
}

// encodeCompact encodes m's header and the body of a compact message
// (template.go); m.Payload is not used.
func encodeCompact(dst []byte, m *Message, body []byte) []byte {
	return encodeMessageAs(dst, messageV2, m, body)
}

func encodeMessageAs(dst []byte, version byte, m *Message, last []byte) []byte {
	dst = append(dst, version)
	for _, f := range []string{m.ID, m.Activation, m.Audience, m.Event, m.Type, m.UserID} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(last)))
	return append(dst, last...)
}

// decodeMessageID decodes only the ID of what encodeMessage or
// encodeCompact wrote.
func decodeMessageID(b []byte) (string, error) {
	if len(b) == 0 || (b[0] != messageV1 && b[0] != messageV2) {
		return "", errBadValue
	}
	l, n := binary.Uvarint(b[1:])
	if n <= 0 || uint64(len(b)-1-n) < l {
		return "", errBadValue
	}
	return string(b[1+n : 1+n+int(l)]), nil
}

// decodeMessage decodes what encodeMessage wrote; it returns the bytes that
// follow the message. A compact message, which needs its template, is an
// error (errNoTemplate).
func decodeMessage(b []byte, m *Message) ([]byte, error) {
	return decodeMessageWith(b, m, nil, nil, nil)
}

// decodeHeader decodes only the header of a message, either version (the
// Payload stays nil).
func decodeHeader(b []byte, m *Message) error {
	_, err := decodeMessageWith(b, m, nil, nil, func(*Message, []byte) ([]byte, error) { return nil, nil })
	m.Payload = nil
	return err
}

// interner shares the strings that repeat across an outbox's messages
// (activation, audience, event and type names).
type interner map[string]string

func (in interner) str(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	in[s] = s
	return s
}

// payloadArena holds the payloads of one Pending call in a few large
// allocations rather than one per message: Pending copies every payload
// out of Pebble's blocks, and delivery holds a batch's until it is sent.
// Its allocations double from arenaFirst to arenaChunk, so that a small
// batch (500 messages by default) does not take a whole chunk.
type payloadArena struct {
	chunk []byte
	next  int
}

// arenaFirst and arenaChunk are the sizes of a payloadArena's first and
// largest allocations.
const (
	arenaFirst = 32 << 10
	arenaChunk = 1 << 20
)

// copy returns a copy of p carved from the arena.
func (a *payloadArena) copy(p []byte) []byte {
	if cap(a.chunk)-len(a.chunk) < len(p) {
		a.next = min(max(2*a.next, arenaFirst), arenaChunk)
		a.chunk = make([]byte, 0, max(a.next, len(p)))
	}
	start := len(a.chunk)
	a.chunk = append(a.chunk, p...)
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}

// str returns b as a string carved from the arena: the arena's bytes are
// never written again once carved, so the string may share them, and a
// message's ID and UserID cost no allocation of their own.
func (a *payloadArena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	c := a.copy(b)
	return unsafe.String(&c[0], len(c))
}

// decodeMessageWith is decodeMessage, taking the repeated names from in
// and copying the payload into arena when they are not nil, and rendering
// the payload of a compact message with render.
func decodeMessageWith(b []byte, m *Message, in interner, arena *payloadArena, render renderFunc) ([]byte, error) {
	if len(b) == 0 || (b[0] != messageV1 && b[0] != messageV2) {
		return nil, errBadValue
	}
	compact := b[0] == messageV2
	b = b[1:]
	field := func() ([]byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return nil, errBadValue
		}
		f := b[n : n+int(l)]
		b = b[n+int(l):]
		return f, nil
	}
	for i, dst := range [...]*string{&m.ID, &m.Activation, &m.Audience, &m.Event, &m.Type, &m.UserID} {
		f, err := field()
		if err != nil {
			return nil, err
		}
		switch {
		case in != nil && i >= 1 && i <= 4:
			*dst = in.str(f)
		case arena != nil:
			*dst = arena.str(f)
		default:
			*dst = string(f)
		}
	}
	p, err := field()
	if err != nil {
		return nil, err
	}
	if compact {
		if render == nil {
			return nil, errNoTemplate
		}
		if p, err = render(m, p); err != nil {
			return nil, err
		}
	}
	if arena != nil {
		m.Payload = arena.copy(p)
	} else {
		m.Payload = append([]byte(nil), p...)
	}
	return b, nil
}
