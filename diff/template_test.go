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
func randTemplate(r *rand.Rand) *eventTemplate {
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
			for _, e := range ls[0].Enrich {
				if r.IntN(2) == 0 {
					a.props["trait."+e.Name] = true
				}
			}
		}
		specs = append(specs, a)
	}
	pl := payload{aud: "aud" + randText(r, 12), ts: "2026-12-02T10:00:00Z"}
	pl.compID = ComputationID(pl.aud)
	return newEventTemplate(pl, dest, ls[0], ls[1], specs)
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
	b := &eventBody{form: []byte{formIdentify, formAudience, formEntity}[r.IntN(3)], slot: r.IntN(len(t.specs)), in: r.IntN(2) == 0}
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
		tm := randTemplate(r)
		b, m := randBody(r, tm)
		body := b.append(nil)
		p, err := tm.render(nil, m, b)
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
		tm := randTemplate(r)
		b, m := randBody(r, tm)
		want, err := tm.render(nil, m, b)
		if err != nil {
			t.Fatal(err)
		}
		v := tm.encode()
		back, err := decodeTemplate(v, tm.dest)
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, v)
		}
		for j, a := range tm.specs {
			if (a.props == nil) != (back.specs[j].props == nil) || len(a.props) != len(back.specs[j].props) {
				t.Fatalf("case %d: activation %d's properties %v read back as %v", i, j, a.props, back.specs[j].props)
			}
		}
		m.Activation, m.Audience, m.Type = "act", tm.Audience, TypeTrack
		stored := encodeCompact(nil, m, b.append(nil))
		ts := &templates{m: map[templateRef]*eventTemplate{{1, tm.dest}: back}}
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
