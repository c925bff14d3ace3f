package diff

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// randText is a text of up to n bytes, often with bytes JSON escapes as
// six (control characters), quotes and invalid UTF-8.
func randText(r *rand.Rand, n int) string {
	var b strings.Builder
	for range r.IntN(n + 1) {
		switch r.IntN(6) {
		case 0:
			b.WriteByte(byte(r.IntN(0x20)))
		case 1:
			b.WriteByte('"')
		case 2:
			b.WriteByte(0xff)
		default:
			b.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	return b.String()
}

// randTemplate is a template of random layouts (1–4 steps, 0–6 columns)
// and activations sending all, none or some columns.
func randTemplate(r *rand.Rand) (*eventTemplate, []*actSpec) {
	var ls [2]Layout
	for i := range ls {
		for range 1 + r.IntN(4) {
			ls[i].Steps = append(ls[i].Steps, Step{Entity: "e" + randText(r, 8), Key: "k" + randText(r, 6)})
		}
		for range r.IntN(7) {
			step := Trait
			if r.IntN(2) == 0 {
				step = r.IntN(len(ls[i].Steps))
			}
			ls[i].Enrich = append(ls[i].Enrich, Enrich{Name: "c" + randText(r, 10), Step: step})
		}
	}
	dest := "dest" + randText(r, 4)
	var specs []*actSpec
	for range 1 + r.IntN(3) {
		a := &actSpec{name: "act" + randText(r, 5), dest: dest}
		switch r.IntN(3) {
		case 0:
			a.props = map[string]bool{}
		case 1:
			a.props = map[string]bool{}
			for _, l := range ls {
				for _, e := range l.Enrich {
					if r.IntN(2) == 0 {
						if e.Step == Trait {
							a.props["trait."+e.Name] = true
						} else {
							a.props[l.Steps[e.Step].Entity+"."+e.Name] = true
						}
					}
				}
			}
		}
		specs = append(specs, a)
	}
	return newEventTemplate("aud"+randText(r, 12), "2026-12-02T10:00:00Z", dest, ls[0], ls[1], specs), specs
}

// randFragments is a stored value of n JSON fragments.
func randFragments(r *rand.Rand, n int) []byte {
	var v []byte
	for range n {
		v = appendFragment(v, appendJSONString(nil, randText(r, 20)))
	}
	return v
}

// randBody is a random body for t: any form, side and activation, with
// keys, values, changes and overrides.
func randBody(r *rand.Rand, t *eventTemplate) (*eventBody, *Message) {
	b := &eventBody{form: []byte{formIdentify, formAudience, formEntity}[r.IntN(3)], slot: r.IntN(len(t.Activations)), in: r.IntN(2) == 0}
	side := 1
	if b.in {
		side = 0
	}
	l := t.Layouts[side]
	b.traits = randFragments(r, t.traitN[side])
	m := &Message{ID: "la-0123456789abcdef0123456789abcdef", UserID: randText(r, 16), Event: EventEntityAdded}
	if b.form != formIdentify && r.IntN(2) == 0 {
		b.reason = randText(r, 12)
	}
	if b.form == formEntity {
		b.chain = appendString(nil, m.UserID)
		for range 1 + r.IntN(len(l.Steps)) {
			b.chain = appendString(b.chain, randText(r, 10))
		}
		b.vals = randFragments(r, t.stepN[side])
		if r.IntN(2) == 0 {
			b.values = ValuesCurrent
		}
		for _, e := range l.Enrich {
			if r.IntN(3) == 0 {
				b.changes = append(b.changes, change{name: e.Name, from: []byte(`"x"`), to: []byte("null")})
			}
		}
		for pos := range t.stepN[side] {
			if r.IntN(3) == 0 {
				b.overrides = append(b.overrides, override{pos: pos, frag: []byte(`"current"`)})
			}
		}
	}
	return b, m
}

// TestSizeBound holds sizeBound above every rendered payload, over random
// templates and bodies full of bytes that escape long: a cycle skips
// rendering an event whose bound is under the size cap.
func TestSizeBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		tm, _ := randTemplate(r)
		b, m := randBody(r, tm)
		body := b.append(nil)
		p, err := tm.render(nil, m, b, &renderScratch{})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		n := len(body) + len(m.ID) + len(m.UserID) + len(m.Event)
		if bound := tm.sizeBound(n); len(p) > bound {
			t.Fatalf("case %d: a payload of %d bytes over its bound %d:\n%s", i, len(p), bound, p)
		}
	}
}

// TestCompactRoundTrip renders a message the same from its body as
// decoded from the store, with the template as read back, and refuses
// every cut-short body and template.
func TestCompactRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		tm, specs := randTemplate(r)
		b, m := randBody(r, tm)
		want, err := tm.render(nil, m, b, &renderScratch{})
		if err != nil {
			t.Fatal(err)
		}
		v := tm.encode()
		back, err := decodeTemplate(v, tm.dest)
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, v)
		}
		for j, a := range specs {
			got := back.Activations[j].Properties
			if (a.props == nil) != (got == nil) || len(a.props) != len(got) {
				t.Fatalf("case %d: activation %d's properties %v read back as %v", i, j, a.props, got)
			}
		}
		m.Activation, m.Audience, m.Type = "act", tm.Audience, TypeTrack
		stored := encodeCompact(nil, m, b.append(nil))
		ts := &templates{s: &Store{}}
		ts.s.tmplCache.m = map[templateRef]*eventTemplate{{1, tm.dest}: back}
		render, err := ts.renderer(1, tm.dest)
		if err != nil {
			t.Fatal(err)
		}
		var got Message
		if _, err := decodeMessageWith(stored, &got, nil, nil, render); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !bytes.Equal(got.Payload, want) || got.ID != m.ID || got.UserID != m.UserID {
			t.Fatalf("case %d: rendered from the store\n%s\nwant\n%s", i, got.Payload, want)
		}
		if i%50 == 0 {
			body := b.append(nil)
			for cut := range len(body) {
				var d eventBody
				if d.decode(body[:cut]) == nil {
					t.Fatalf("case %d: a body cut at %d of %d bytes read", i, cut, len(body))
				}
			}
			for cut := range len(v) {
				if _, err := decodeTemplate(v[:cut], tm.dest); err == nil {
					t.Fatalf("case %d: a template cut at %d of %d bytes read", i, cut, len(v))
				}
			}
		}
	}
	if _, err := decodeMessage(encodeCompact(nil, &Message{ID: "la-x"}, []byte{formIdentify, 1, 0, 0, 0}), &Message{}); err != errNoTemplate {
		t.Errorf("a compact message decoded without its template: %v", err)
	}
}

// TestRenderAsBefore renders random events with the templates' shapes and
// with refPayload, the code that rendered them before templates, from the
// activation and layout: the same bytes, whatever the columns, the
// properties lists, and keys among the columns.
func TestRenderAsBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20000 {
		tm, specs := randTemplate(r)
		if r.IntN(4) == 0 {
			// A step's key among its enrichment columns, as an
			// activation's properties may name it: never sent twice.
			l := &tm.Layouts[0]
			l.Enrich = append(l.Enrich, Enrich{Name: l.Steps[0].Key, Step: 0})
			tm = newEventTemplate(tm.Audience, tm.Timestamp, tm.dest, tm.Layouts[0], tm.Layouts[1], specs)
		}
		b, m := randBody(r, tm)
		got, err := tm.render(nil, m, b, &renderScratch{})
		if err != nil {
			t.Fatal(err)
		}
		side := 1
		if b.in {
			side = 0
		}
		l := tm.Layouts[side]
		a := specs[b.slot]
		ref := &refPayload{aud: tm.Audience, ts: tm.Timestamp, compID: ComputationID(tm.Audience)}
		tf, _ := splitFragments(b.traits, len(l.traitCols()), nil)
		var want []byte
		switch b.form {
		case formIdentify:
			want = ref.identify(nil, a, m.ID, []byte(m.UserID), b.in, l, tf)
		case formAudience:
			want = ref.audience(nil, a, m.Event, m.ID, []byte(m.UserID), b.in, l, tf, b.reason)
		default:
			keys, _ := decodeTuple(b.chain)
			sf, _ := splitFragments(b.vals, len(l.stepCols()), nil)
			for _, o := range b.overrides {
				sf[o.pos] = o.frag
			}
			want = ref.entity(nil, a, m.Event, m.ID, keys, b.in, l, tf, sf, &entityExtra{reason: b.reason, values: b.values, changes: b.changes})
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n%s\nbefore templates:\n%s", i, got, want)
		}
	}
}
