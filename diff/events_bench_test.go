package diff

import (
	"strconv"
	"testing"
)

// benchTemplate is the template of an Entity Added activation with the
// seed's enrichments, and a stored row and member of it.
func benchTemplate() (t *eventTemplate, a *actSpec, traits, vals []byte) {
	l := Layout{
		Steps: []Step{{Entity: "account", Key: "id"}, {Entity: "credit_card", Key: "id"}},
		Enrich: []Enrich{
			{Name: "balance", Step: 1}, {Name: "due_date", Step: 1}, {Name: "type", Step: 0}, {Name: "email", Step: Trait},
		},
	}
	a = &actSpec{name: "card_reminders", dest: "events", step: 1}
	t = newEventTemplate("outstanding_balance", "2026-03-01T12:00:00Z", a.dest, l, l, []*actSpec{a})
	traits = appendFragment(nil, []byte(`"ann.o'neil@example.com"`))
	for _, v := range []string{`"Outstanding"`, `"2026-04-01"`, `"checking"`} {
		vals = appendFragment(vals, []byte(v))
	}
	return t, a, traits, vals
}

// BenchmarkEventEncoding measures what the differ does per event besides
// storing it: the messageId (SHA-256 over activation, event, keys and
// generation) and the compact outbox encoding of an Entity Added event.
//
//	go test -tags duckdb_arrow ./diff -run XXX -bench 'Event(Encoding|Rendering)'
func BenchmarkEventEncoding(b *testing.B) {
	_, a, traits, vals := benchTemplate()
	var body, msg []byte
	var bytes int
	for i := 0; b.Loop(); i++ {
		profile := "profile-" + strconv.Itoa(i)
		chain := appendString(appendString(appendString(nil, profile), "acct-"+strconv.Itoa(i)), "card-"+strconv.Itoa(i))
		id := messageID(a.name, EventEntityAdded, chain, 7)
		eb := eventBody{form: formEntity, in: true, traits: traits, chain: chain, vals: vals}
		body = eb.append(body[:0])
		m := Message{ID: id, Activation: a.name, Destination: a.dest, Audience: "outstanding_balance",
			Event: EventEntityAdded, Type: TypeTrack, UserID: profile}
		msg = encodeCompact(msg[:0], &m, body)
		bytes += len(msg)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "stored-B/event")
}

// BenchmarkEventRendering measures what a reader of the outbox does per
// compact message: decode it and render its Segment JSON.
func BenchmarkEventRendering(b *testing.B) {
	t, a, traits, vals := benchTemplate()
	const n = 1024
	stored := make([][]byte, n)
	for i := range stored {
		profile := "profile-" + strconv.Itoa(i)
		chain := appendString(appendString(appendString(nil, profile), "acct-"+strconv.Itoa(i)), "card-"+strconv.Itoa(i))
		eb := eventBody{form: formEntity, in: true, traits: traits, chain: chain, vals: vals}
		m := Message{ID: messageID(a.name, EventEntityAdded, chain, 7), Activation: a.name, Audience: "outstanding_balance",
			Event: EventEntityAdded, Type: TypeTrack, UserID: profile}
		stored[i] = encodeCompact(nil, &m, eb.append(nil))
	}
	ts := &templates{s: &Store{}}
	ts.s.tmplCache.m = map[templateRef]*eventTemplate{{1, a.dest}: t}
	render, err := ts.renderer(1, a.dest)
	if err != nil {
		b.Fatal(err)
	}
	var arena payloadArena
	names := interner{}
	var bytes int
	for i := 0; b.Loop(); i++ {
		var m Message
		if _, err := decodeMessageWith(stored[i%n], &m, names, &arena, render); err != nil {
			b.Fatal(err)
		}
		bytes += len(m.Payload)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "payload-B/event")
}
