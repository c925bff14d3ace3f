package sinks

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/linkaud/linkaud/diff"
)

// segmentEvent is the part of an outbox payload (a Segment-spec track or
// identify call) the marketing destinations map onto their APIs. Properties
// and traits stay raw so that numbers and nested entity context pass through
// unchanged.
type segmentEvent struct {
	Type       string          `json:"type"`
	Event      string          `json:"event"`
	UserID     string          `json:"userId"`
	MessageID  string          `json:"messageId"`
	Timestamp  string          `json:"timestamp"`
	Properties json.RawMessage `json:"properties"`
	Traits     json.RawMessage `json:"traits"`
	Context    struct {
		// Traits are the profile's traits the event carries (the
		// enriched trait.* columns), as Segment puts them.
		Traits map[string]json.RawMessage `json:"traits"`
	} `json:"context"`

	time time.Time
}

// trait returns the profile trait name of e: from context.traits, else
// from the properties (a track event's enriched traits) or the traits (an
// identify's). ok is false when e has none, or it is null.
func (e *segmentEvent) trait(name string) (string, bool) {
	raw, ok := e.Context.Traits[name]
	if !ok {
		var fields map[string]json.RawMessage
		src := e.Properties
		if e.Type == "identify" {
			src = e.Traits
		}
		if json.Unmarshal(src, &fields) == nil {
			raw, ok = fields[name]
		}
	}
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	// A number or boolean trait identifies by its JSON text.
	if raw[0] != '{' && raw[0] != '[' {
		return string(raw), true
	}
	return "", false
}

// identity is how a destination identifies a profile: the kind of
// identifier its API takes, and where the value comes from — the profile
// key (the event's userId) or a trait (`identifier email from trait.email`).
type identity struct {
	kind  string // user_id, email, user_alias
	trait string // "": the profile key
	// maxBytes is the vendor's documented length limit of the value (0:
	// none documented); doc names the page.
	maxBytes int
	doc      string
}

// readIdentity reads the identifier setting: one of kinds (the first is
// the default); `email` reads trait.email unless `from` names another
// trait.
func readIdentity(c *Config, kinds ...string) identity {
	id := identity{kind: c.OneOf("identifier", kinds[0], kinds...), trait: c.FromTrait("identifier")}
	if id.kind == "email" && id.trait == "" {
		id.trait = "email"
	}
	return id
}

// value returns the identifier of event e (message m), or a permanent
// failure naming why the event cannot be sent: no such trait, an empty
// value, one over the vendor's limit, an email without @.
func (id identity) value(vendor string, m diff.Message, e *segmentEvent) (string, error) {
	v := e.UserID
	source := "the profile key"
	if id.trait != "" {
		source = "trait." + id.trait
		var ok bool
		if v, ok = e.trait(id.trait); !ok {
			return "", Permanent(fmt.Errorf("%s: message %s carries no %s to identify the profile by (%s)", vendor, m.ID, source, id.kind))
		}
	}
	switch {
	case v == "":
		return "", Permanent(fmt.Errorf("%s: message %s: %s is empty", vendor, m.ID, source))
	case id.maxBytes > 0 && len(v) > id.maxBytes:
		return "", Permanent(fmt.Errorf("%s: message %s: %s is %d bytes, over the %s limit of %d for %s (%s)",
			vendor, m.ID, source, len(v), vendor, id.maxBytes, id.kind, id.doc))
	case id.kind == "email" && !strings.Contains(v, "@"):
		return "", Permanent(fmt.Errorf("%s: message %s: %s is not an email address", vendor, m.ID, source))
	}
	return v, nil
}

// parseEvent decodes a payload; a payload that cannot be mapped is a
// permanent failure of that message.
func parseEvent(vendor string, m diff.Message) (segmentEvent, error) {
	var e segmentEvent
	if err := json.Unmarshal(m.Payload, &e); err != nil {
		return e, Permanent(fmt.Errorf("%s: payload of %s is not valid JSON: %v", vendor, m.ID, err))
	}
	if e.UserID == "" {
		e.UserID = m.UserID
	}
	if e.UserID == "" {
		return e, Permanent(fmt.Errorf("%s: message %s has no userId", vendor, m.ID))
	}
	if e.Type != "track" && e.Type != "identify" {
		return e, Permanent(fmt.Errorf("%s: message %s has type %q, want track or identify", vendor, m.ID, e.Type))
	}
	if e.Type == "track" && e.Event == "" {
		return e, Permanent(fmt.Errorf("%s: track message %s has no event name", vendor, m.ID))
	}
	t, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return e, Permanent(fmt.Errorf("%s: message %s has timestamp %q, want RFC 3339", vendor, m.ID, e.Timestamp))
	}
	e.time = t
	if len(e.Properties) == 0 || string(e.Properties) == "null" {
		e.Properties = json.RawMessage("{}")
	}
	if len(e.Traits) == 0 || string(e.Traits) == "null" {
		e.Traits = json.RawMessage("{}")
	}
	return e, nil
}

// objectWith returns the JSON object obj with extra fields set first (they
// win over fields of the same name in obj).
func objectWith(obj json.RawMessage, extra map[string]any) (json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(obj, &fields); err != nil {
		return nil, err
	}
	for k, v := range extra {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		fields[k] = b
	}
	return json.Marshal(fields)
}

// baseURL returns the endpoint setting if given (it must be an http(s)
// URL), else the region's default.
func baseURL(c *Config, regions map[string]string, def string) string {
	names := make([]string, 0, len(regions))
	for n := range regions {
		names = append(names, n)
	}
	region := c.OneOf("region", def, sortedStrings(names)...)
	if !c.Has("endpoint") {
		return regions[region]
	}
	if c.Has("region") {
		c.Errorf("endpoint", "give region or endpoint, not both")
	}
	e := strings.TrimRight(c.String("endpoint", ""), "/")
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		c.Errorf("endpoint", "want an http or https URL")
	}
	return e
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}
