package diff

import "strconv"

// refPayload is how events were rendered before templates (3c3ad7d), from
// the activation and the layout at each event: the reference the
// templates' shapes must render the same as.
type refPayload struct {
	aud string
	ts  string
	// compID is ComputationID(aud), computed once per cycle.
	compID string
}

func (p *refPayload) head(dst []byte, typ, event, id string, userID []byte) []byte {
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
	dst = appendJSONString(dst, p.ts)
	return dst
}

// tail closes an event with Segment's context and integrations, as
// Segment's Linked Audiences events carry them: context.personas
// (computation_key, computation_id, computation_class), context.traits (the
// enriched trait.* columns the activation sends — where the marketing
// destinations read an identifier such as email from) and integrations
// (All false, the activation's destination true).
func (p *refPayload) tail(dst []byte, a *actSpec, l Layout, traits [][]byte) []byte {
	dst = append(dst, `,"context":{"personas":{"computation_key":`...)
	dst = appendJSONString(dst, p.aud)
	dst = append(dst, `,"computation_id":`...)
	dst = appendJSONString(dst, p.compID)
	dst = append(dst, `,"computation_class":"audience"},"traits":{`...)
	dst = p.traits(dst, a, l, traits, false)
	dst = append(dst, `}},"integrations":{"All":false,`...)
	dst = appendJSONString(dst, a.dest)
	return append(dst, `:true}}`...)
}

// traits writes the enriched traits the activation includes as JSON
// members (each preceded by a comma when comma is set, else separated).
func (p *refPayload) traits(dst []byte, a *actSpec, l Layout, traits [][]byte, comma bool) []byte {
	t := 0
	for _, e := range l.Enrich {
		if e.Step != Trait {
			continue
		}
		if a.includes(l, e) {
			if comma {
				dst = append(dst, ',')
			}
			comma = true
			dst = appendJSONString(dst, e.Name)
			dst = append(dst, ':')
			dst = append(dst, traits[t]...)
		}
		t++
	}
	return dst
}

// identify is an Audience Membership Changed event.
func (p *refPayload) identify(dst []byte, a *actSpec, id string, userID []byte, in bool, l Layout, traits [][]byte) []byte {
	dst = p.head(dst, TypeIdentify, EventMembershipChanged, id, userID)
	dst = append(dst, `,"traits":{`...)
	dst = appendJSONString(dst, p.aud)
	dst = append(dst, ':')
	dst = strconv.AppendBool(dst, in)
	dst = append(dst, '}')
	return p.tail(dst, a, l, traits)
}

// properties opens the properties of a track event: audience_key, the
// audience boolean and the enriched traits the activation includes.
func (p *refPayload) properties(dst []byte, a *actSpec, l Layout, in bool, traits [][]byte) []byte {
	dst = append(dst, `,"properties":{"audience_key":`...)
	dst = appendJSONString(dst, p.aud)
	dst = append(dst, ',')
	dst = appendJSONString(dst, p.aud)
	dst = append(dst, ':')
	dst = strconv.AppendBool(dst, in)
	return p.traits(dst, a, l, traits, true)
}

// audience is an Audience Entered or Exited event; reason, when set, is
// the Exited event's properties.reason.
func (p *refPayload) audience(dst []byte, a *actSpec, event, id string, userID []byte, in bool, l Layout, traits [][]byte, reason string) []byte {
	dst = p.head(dst, TypeTrack, event, id, userID)
	dst = p.properties(dst, a, l, in, traits)
	if reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendJSONString(dst, reason)
	}
	dst = append(dst, '}')
	return p.tail(dst, a, l, traits)
}

// entity is an entity event: keys[0] is the profile, keys[1..k+1] the
// chain down to the named entity, steps the values of the row's step
// columns (Layout.stepCols order).
func (p *refPayload) entity(dst []byte, a *actSpec, event, id string, keys [][]byte, in bool, l Layout, traits, steps [][]byte, x *entityExtra) []byte {
	dst = p.head(dst, TypeTrack, event, id, keys[0])
	dst = p.properties(dst, a, l, in, traits)
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
		st := l.Steps[j]
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, st.Entity)
		dst = append(dst, `:{`...)
		dst = appendJSONString(dst, st.Key)
		dst = append(dst, ':')
		dst = appendJSONString(dst, keys[j+1])
		s := 0
		for _, e := range l.Enrich {
			if e.Step == Trait {
				continue
			}
			if e.Step == j && e.Name != st.Key && a.includes(l, e) {
				dst = append(dst, ',')
				dst = appendJSONString(dst, e.Name)
				dst = append(dst, ':')
				dst = append(dst, steps[s]...)
			}
			s++
		}
	}
	for j := 0; j <= k; j++ {
		dst = append(dst, '}')
	}
	dst = append(dst, `}}`...)
	return p.tail(dst, a, l, traits)
}
