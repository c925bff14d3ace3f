package diff

import (
	"strconv"
	"testing"
)

// BenchmarkEventEncoding measures what the differ does per event besides
// storing it: the messageId (SHA-256 over activation, event, keys and
// generation), the Segment JSON payload of an Entity Added event with the
// seed's enrichments, and the outbox encoding.
//
//	go test -tags duckdb_arrow ./diff -run XXX -bench EventEncoding
func BenchmarkEventEncoding(b *testing.B) {
	l := Layout{
		Steps: []Step{{Entity: "account", Key: "id"}, {Entity: "credit_card", Key: "id"}},
		Enrich: []Enrich{
			{Name: "balance", Step: 1}, {Name: "due_date", Step: 1}, {Name: "type", Step: 0}, {Name: "email", Step: Trait},
		},
	}
	a := &actSpec{name: "card_reminders", dest: "events", step: 1}
	p := &payload{aud: "outstanding_balance", ts: "2026-03-01T12:00:00Z", compID: ComputationID("outstanding_balance")}
	traits := [][]byte{[]byte(`"ann.o'neil@example.com"`)}
	steps := [][]byte{[]byte(`"checking"`), []byte(`"Outstanding"`), []byte(`"2026-04-01"`)}
	var buf, msg []byte
	var bytes int
	for i := 0; b.Loop(); i++ {
		profile := "profile-" + strconv.Itoa(i)
		keys := [][]byte{[]byte(profile), []byte("acct-" + strconv.Itoa(i)), []byte("card-" + strconv.Itoa(i))}
		var key []byte
		for _, k := range keys {
			key = appendString(key, string(k))
		}
		id := messageID(a.name, EventEntityAdded, key, 7)
		buf = p.entity(buf[:0], a, EventEntityAdded, id, keys, true, l, traits, steps, &entityExtra{})
		m := Message{ID: id, Activation: a.name, Destination: a.dest, Audience: p.aud,
			Event: EventEntityAdded, Type: TypeTrack, UserID: profile, Payload: buf}
		msg = encodeMessage(msg[:0], &m)
		bytes += len(msg)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "stored-B/event")
}
