package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// FiredAlert is a drift alert a run crossed (dsl.Alert).
type FiredAlert struct {
	// Alert is the condition as written, e.g. "size_change > 20%".
	Alert string `json:"alert"`
	// Value is what it compared: the change (in percent for a
	// percentage) or the size.
	Value  float64 `json:"value"`
	Before int64   `json:"members_before"`
	After  int64   `json:"members_after"`
	// Notify is the destination that got an alert event, "" for none.
	Notify string `json:"notify,omitempty"`
}

// AlertEvent is the event name of the alert events sent to a notify
// destination.
const AlertEvent = "Audience Size Alert"

// alertPayload is the JSON an alert destination receives, keys in this
// order.
type alertPayload struct {
	Type        string          `json:"type"`
	Event       string          `json:"event"`
	AnonymousID string          `json:"anonymousId"`
	MessageID   string          `json:"messageId"`
	Timestamp   string          `json:"timestamp"`
	Properties  alertProperties `json:"properties"`
	Context     alertContext    `json:"context"`
}

type alertProperties struct {
	AudienceKey string  `json:"audience_key"`
	Alert       string  `json:"alert"`
	Value       float64 `json:"value"`
	Before      int64   `json:"members_before"`
	After       int64   `json:"members_after"`
	Run         uint64  `json:"run"`
	Generation  uint64  `json:"generation"`
}

type alertContext struct {
	Personas struct {
		Key   string `json:"computation_key"`
		ID    string `json:"computation_id"`
		Class string `json:"computation_class"`
	} `json:"personas"`
}

// alerts evaluates the audience's drift alerts against the run's sizes and
// writes an alert event for each fired alert that notifies a destination,
// into the outbox of the cycle (so it becomes visible with generation N,
// or never). It runs before the staged events are finished.
func (c *cycle) alerts() error {
	before := c.old.Members
	if c.old.Generation == 0 {
		before = 0
	}
	after := c.counts.Members
	for _, a := range c.in.Audience.Alerts {
		v, crossed := a.Crossed(before, after)
		if !crossed {
			continue
		}
		f := FiredAlert{Alert: a.String(), Value: v, Before: before, After: after}
		if a.Notify != nil {
			f.Notify = a.Notify.Name
			if err := c.em.alert(c, f); err != nil {
				return err
			}
		}
		c.s.log.Warn("drift alert", "audience", c.aud, "alert", f.Alert, "value", v,
			"members_before", before, "members_after", after, "notify", f.Notify)
		c.fired = append(c.fired, f)
	}
	return nil
}

// alert appends the alert event of f to the outbox of f.Notify.
func (e *emitter) alert(c *cycle, f FiredAlert) error {
	key := appendString(nil, e.aud)
	id := messageID("alert:"+f.Alert, AlertEvent, key, e.gen)
	p := alertPayload{
		Type: "track", Event: AlertEvent, AnonymousID: "linkaud", MessageID: id,
		Timestamp: c.in.Start.UTC().Format(time.RFC3339Nano),
		Properties: alertProperties{
			AudienceKey: e.aud, Alert: f.Alert, Value: f.Value, Before: f.Before, After: f.After,
			Run: c.runNo, Generation: e.gen,
		},
	}
	p.Context.Personas.Key, p.Context.Personas.ID, p.Context.Personas.Class = e.aud, ComputationID(e.aud), "audience"
	// Not HTML-escaped: "size_change > 20%" reads as written.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return err
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	dest := f.Notify
	idx, seen := e.next[dest]
	if !seen {
		e.dests = append(e.dests, dest)
	}
	if idx == 1<<32-1 {
		return fmt.Errorf("diff: more than %d events for destination %s in one cycle", uint64(1<<32-1), dest)
	}
	e.next[dest] = idx + 1
	m := Message{ID: id, Activation: "alert", Destination: dest, Audience: e.aud, Event: AlertEvent, Type: "track", Payload: body}
	e.msgBuf = encodeMessage(e.msgBuf[:0], &m)
	e.events++
	if e.staged != nil {
		return e.stager(dest).set(eventKey(e.cycle, dest, idx), e.msgBuf)
	}
	return e.batch.Set(eventKey(e.cycle, dest, idx), e.msgBuf, nil)
}
