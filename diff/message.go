package diff

// Message is one event in the outbox, ready to send: the contract between
// the differ, which writes messages in the same Pebble batch that makes a
// generation current, and the sinks, which deliver them and acknowledge.
type Message struct {
	// Seq orders the messages of one destination; it increases with every
	// message appended to that destination's outbox and is never reused.
	Seq uint64
	// ID is the Segment messageId, derived from (activation, event, profile,
	// entity, generation): a redelivery carries the same ID.
	ID          string
	Activation  string
	Destination string
	Audience    string
	// Event is the Segment event name: "Entity Added", "Entity Removed",
	// "Audience Entered", "Audience Exited" or "Audience Membership Changed".
	Event string
	// Type is the Segment call type: "track", or "identify" for
	// Audience Membership Changed.
	Type string
	// UserID is the profile key; Kafka uses it as the record key.
	UserID string
	// Payload is the complete Segment-spec JSON object of the event.
	Payload []byte
}
