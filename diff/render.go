package diff

import "strconv"

// Rendering the Segment-spec JSON of an event. Keys are written in a fixed
// order so that payloads are byte-for-byte reproducible:
//
//	{"type", "event" (track only), "userId", "messageId", "timestamp",
//	 "properties": {"audience_key", <audience>: in, <traits>, "reason",
//	   "entity_values", "changes", "_entity_context"}   (track)
//	 "traits": {<audience>: in}                         (identify)
//	 "context": {"personas": {"computation_key", "computation_id",
//	   "computation_class"}, "traits": {<traits>}},
//	 "integrations": {"All": false, <destination>: true}}
//
// What does not vary within a template — the names, each activation's
// choice of columns — is worked out once per template (a shape per
// activation and side) and quoted once, so that rendering appends the
// values between ready-made pieces.

// quoted is s as a JSON string.
func quoted(s string) string { return string(appendJSONString(nil, s)) }

// payload is what a template's events share: the audience, the cycle's
// timestamp and the audience's computation id, quoted.
type payload struct {
	aud, ts, compID string
}

func newPayload(aud, ts string) payload {
	return payload{aud: quoted(aud), ts: quoted(ts), compID: quoted(ComputationID(aud))}
}

// shape is what one activation's events on one side (the layout of the
// new or of the previous generation) show: the destination, the trait
// columns the activation sends, and per step of the path its entity, key
// and the step columns it sends. Names are quoted.
type shape struct {
	dest   string
	traits []shapeCol
	steps  []shapeStep
}

// shapeCol is a column an event shows: its quoted name and the index of
// its value among the stored fragments (trait columns among the member's,
// step columns among the row's).
type shapeCol struct {
	name string
	frag int
}

type shapeStep struct {
	entity, key string
	cols        []shapeCol
}

// newShape works out what a's events show under layout l.
func newShape(a *actSpec, dest string, l Layout) shape {
	sh := shape{dest: quoted(dest)}
	sh.steps = make([]shapeStep, len(l.Steps))
	for j, st := range l.Steps {
		sh.steps[j] = shapeStep{entity: quoted(st.Entity), key: quoted(st.Key)}
	}
	t, s := 0, 0
	for _, e := range l.Enrich {
		if e.Step == Trait {
			if a.includes(l, e) {
				sh.traits = append(sh.traits, shapeCol{quoted(e.Name), t})
			}
			t++
			continue
		}
		if e.Step >= 0 && e.Step < len(l.Steps) && e.Name != l.Steps[e.Step].Key && a.includes(l, e) {
			sh.steps[e.Step].cols = append(sh.steps[e.Step].cols, shapeCol{quoted(e.Name), s})
		}
		s++
	}
	return sh
}

func (p *payload) head(dst []byte, typ, event, id string, userID []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, typ)
	if typ == TypeTrack {
		dst = append(dst, `,"event":`...)
		dst = appendJSONString(dst, event)
	}
	dst = append(dst, `,"userId":`...)
	dst = appendJSONString(dst, userID)
	dst = append(dst, `,"messageId":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"timestamp":`...)
	return append(dst, p.ts...)
}

// tail closes an event with Segment's context and integrations, as
// Segment's Linked Audiences events carry them: context.personas
// (computation_key, computation_id, computation_class), context.traits (the
// enriched trait.* columns the activation sends — where the marketing
// destinations read an identifier such as email from) and integrations
// (All false, the activation's destination true).
func (p *payload) tail(dst []byte, sh *shape, traits [][]byte) []byte {
	dst = append(dst, `,"context":{"personas":{"computation_key":`...)
	dst = append(dst, p.aud...)
	dst = append(dst, `,"computation_id":`...)
	dst = append(dst, p.compID...)
	dst = append(dst, `,"computation_class":"audience"},"traits":{`...)
	dst = appendTraits(dst, sh, traits, false)
	dst = append(dst, `}},"integrations":{"All":false,`...)
	dst = append(dst, sh.dest...)
	return append(dst, `:true}}`...)
}

// appendTraits writes the trait columns the shape shows as JSON members
// (each preceded by a comma when comma is set, else separated).
func appendTraits(dst []byte, sh *shape, traits [][]byte, comma bool) []byte {
	for _, c := range sh.traits {
		if comma {
			dst = append(dst, ',')
		}
		comma = true
		dst = append(dst, c.name...)
		dst = append(dst, ':')
		dst = append(dst, traits[c.frag]...)
	}
	return dst
}

// identify is an Audience Membership Changed event.
func (p *payload) identify(dst []byte, sh *shape, id string, userID []byte, in bool, traits [][]byte) []byte {
	dst = p.head(dst, TypeIdentify, EventMembershipChanged, id, userID)
	dst = append(dst, `,"traits":{`...)
	dst = append(dst, p.aud...)
	dst = append(dst, ':')
	dst = strconv.AppendBool(dst, in)
	dst = append(dst, '}')
	return p.tail(dst, sh, traits)
}

// properties opens the properties of a track event: audience_key, the
// audience boolean and the trait columns the shape shows.
func (p *payload) properties(dst []byte, sh *shape, in bool, traits [][]byte) []byte {
	dst = append(dst, `,"properties":{"audience_key":`...)
	dst = append(dst, p.aud...)
	dst = append(dst, ',')
	dst = append(dst, p.aud...)
	dst = append(dst, ':')
	dst = strconv.AppendBool(dst, in)
	return appendTraits(dst, sh, traits, true)
}

// audience is an Audience Entered or Exited event; reason, when set, is
// the Exited event's properties.reason.
func (p *payload) audience(dst []byte, sh *shape, event, id string, userID []byte, in bool, traits [][]byte, reason string) []byte {
	dst = p.head(dst, TypeTrack, event, id, userID)
	dst = p.properties(dst, sh, in, traits)
	if reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendJSONString(dst, reason)
	}
	dst = append(dst, '}')
	return p.tail(dst, sh, traits)
}

// entity is an entity event: keys[0] is the profile, keys[1..k+1] the
// chain down to the named entity, steps the values of the row's step
// columns (Layout.stepCols order).
func (p *payload) entity(dst []byte, sh *shape, event, id string, keys [][]byte, in bool, traits, steps [][]byte, x *entityExtra) []byte {
	dst = p.head(dst, TypeTrack, event, id, keys[0])
	dst = p.properties(dst, sh, in, traits)
	if x.reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendJSONString(dst, x.reason)
	}
	if x.values != "" {
		dst = append(dst, `,"entity_values":`...)
		dst = appendJSONString(dst, x.values)
	}
	if len(x.changes) > 0 {
		dst = append(dst, `,"changes":{`...)
		for i, ch := range x.changes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, ch.name)
			dst = append(dst, `:{"from":`...)
			dst = append(dst, ch.from...)
			dst = append(dst, `,"to":`...)
			dst = append(dst, ch.to...)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"_entity_context":{`...)
	k := len(keys) - 2
	for j := 0; j <= k; j++ {
		st := &sh.steps[j]
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, st.entity...)
		dst = append(dst, `:{`...)
		dst = append(dst, st.key...)
		dst = append(dst, ':')
		dst = appendJSONString(dst, keys[j+1])
		for _, c := range st.cols {
			dst = append(dst, ',')
			dst = append(dst, c.name...)
			dst = append(dst, ':')
			dst = append(dst, steps[c.frag]...)
		}
	}
	for j := 0; j <= k; j++ {
		dst = append(dst, '}')
	}
	dst = append(dst, `}}`...)
	return p.tail(dst, sh, traits)
}
