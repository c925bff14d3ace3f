package diff

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"
)

// tuple is a row's keys: nil is NULL.
type tuple []*string

func encodeTuple(t tuple) []byte {
	var b []byte
	for _, e := range t {
		if e == nil {
			b = append(b, tagNull)
		} else {
			b = appendString(b, *e)
		}
	}
	return b
}

// compareTuples is the result-row order of contracts.md: element by
// element, NULL first, texts in byte order, a prefix first.
func compareTuples(a, b tuple) int {
	for i := range min(len(a), len(b)) {
		switch {
		case a[i] == nil && b[i] == nil:
		case a[i] == nil:
			return -1
		case b[i] == nil:
			return 1
		default:
			if c := cmp.Compare(*a[i], *b[i]); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(len(a), len(b))
}

func randomTuple(r *rand.Rand) tuple {
	alphabet := []string{"", "\x00", "\x01", "\xff", "a", "b", "\x00\xff", "é", "A"}
	t := make(tuple, 1+r.IntN(4))
	for i := range t {
		if r.IntN(5) == 0 {
			continue // NULL
		}
		var s string
		for range r.IntN(4) {
			s += alphabet[r.IntN(len(alphabet))]
		}
		t[i] = &s
	}
	return t
}

func TestTupleEncodingOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var ts []tuple
	for range 2000 {
		ts = append(ts, randomTuple(r))
	}
	for i := 0; i+1 < len(ts); i++ {
		a, b := ts[i], ts[i+1]
		want := compareTuples(a, b)
		if got := bytes.Compare(encodeTuple(a), encodeTuple(b)); got != want {
			t.Fatalf("compare(%s, %s) = %d over encodings, %d over tuples", fmtKey(encodeTuple(a)), fmtKey(encodeTuple(b)), got, want)
		}
	}
	for _, tu := range ts {
		enc := encodeTuple(tu)
		dec, err := decodeTuple(enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(dec) != len(tu) {
			t.Fatalf("decoded %d elements of %d", len(dec), len(tu))
		}
		for i := range tu {
			if (tu[i] == nil) != (dec[i] == nil) || (tu[i] != nil && *tu[i] != string(dec[i])) {
				t.Fatalf("element %d of %s decoded as %q", i, fmtKey(enc), dec[i])
			}
		}
		ends, nulls, err := elemEnds(enc, nil, nil)
		if err != nil || len(ends) != len(tu) || ends[len(ends)-1] != len(enc) {
			t.Fatalf("elemEnds(%s) = %v, %v", fmtKey(enc), ends, err)
		}
		for i := range tu {
			if nulls[i] != (tu[i] == nil) {
				t.Fatalf("elemEnds(%s): null %d = %t", fmtKey(enc), i, nulls[i])
			}
		}
	}
	// appendText and appendString agree.
	for _, s := range []string{"", "a", "\x00", "a\x00b\x00"} {
		if !bytes.Equal(appendText(nil, []byte(s)), appendString(nil, s)) {
			t.Errorf("appendText and appendString differ on %q", s)
		}
	}
}

func TestMalformedKeys(t *testing.T) {
	for _, k := range [][]byte{{}, {0x02}, {tagText}, {tagText, 'a'}, {tagText, 'a', 0x00}, {tagText, 0x00, 0x07}} {
		if _, err := elemEnd(k); err == nil {
			t.Errorf("elemEnd(%q) accepted", k)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte{1}, []byte{2}},
		{[]byte{1, 0xFF}, []byte{2}},
		{[]byte{0xFF, 0xFF}, nil},
		{[]byte{3, 1, 'a', 0, 1}, []byte{3, 1, 'a', 0, 2}},
	} {
		if got := prefixEnd(c.in); !bytes.Equal(got, c.want) {
			t.Errorf("prefixEnd(%x) = %x, want %x", c.in, got, c.want)
		}
	}
}

func TestMessageID(t *testing.T) {
	base := MessageID("card_reminders", "Entity Added", "u_123", []string{"a_7", "cc_9"}, 42)
	for _, c := range []struct {
		name string
		id   string
		same bool
	}{
		{"same inputs", MessageID("card_reminders", "Entity Added", "u_123", []string{"a_7", "cc_9"}, 42), true},
		{"activation", MessageID("card_reminder", "Entity Added", "u_123", []string{"a_7", "cc_9"}, 42), false},
		{"event", MessageID("card_reminders", "Entity Removed", "u_123", []string{"a_7", "cc_9"}, 42), false},
		{"profile", MessageID("card_reminders", "Entity Added", "u_124", []string{"a_7", "cc_9"}, 42), false},
		{"entity", MessageID("card_reminders", "Entity Added", "u_123", []string{"a_7", "cc_8"}, 42), false},
		{"generation", MessageID("card_reminders", "Entity Added", "u_123", []string{"a_7", "cc_9"}, 43), false},
		// Keys are delimited: moving text between them is another entity.
		{"boundaries", MessageID("card_reminders", "Entity Added", "u_123", []string{"a_7c", "c_9"}, 42), false},
		{"profile boundary", MessageID("card_reminders", "Entity Added", "u_123a_7", []string{"cc_9"}, 42), false},
	} {
		if (c.id == base) != c.same {
			t.Errorf("%s: id %s vs %s, same=%t", c.name, c.id, base, c.same)
		}
	}
	if len(base) != len("la-")+32 || base[:3] != "la-" {
		t.Errorf("id %q: want la- and 32 hex digits", base)
	}
}

func TestAppendJSONString(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	inputs := []string{"", "plain", `quo"te`, `back\slash`, "new\nline\ttab\r", "\x00\x01\x1f", "é€😀", "\u2028\u2029", "bad\xffutf8\xc3", "<&>"}
	for range 500 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		enc := appendJSONString(nil, s)
		if !json.Valid(enc) {
			t.Fatalf("%q: invalid JSON %s", s, enc)
		}
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatal(err)
		}
		want := s
		if !utf8.ValidString(s) {
			// As encoding/json: each invalid byte becomes U+FFFD.
			std, _ := json.Marshal(s)
			if err := json.Unmarshal(std, &want); err != nil {
				t.Fatal(err)
			}
		}
		if back != want {
			t.Fatalf("%q round-trips as %q, want %q", s, back, want)
		}
		if !bytes.Equal(enc, appendJSONString(nil, []byte(s))) {
			t.Fatalf("%q: string and []byte forms differ", s)
		}
	}
}

func TestFragments(t *testing.T) {
	var v []byte
	frags := [][]byte{[]byte(`"a"`), []byte(`null`), []byte(`12.50`), make([]byte, 300)}
	for _, f := range frags {
		v = appendFragment(v, f)
	}
	got, err := splitFragments(v, len(frags), nil)
	if err != nil || !slices.EqualFunc(got, frags, bytes.Equal) {
		t.Fatalf("splitFragments = %q, %v", got, err)
	}
	if _, err := splitFragments(v, 3, nil); err == nil {
		t.Error("wrong count accepted")
	}
	if _, err := splitFragments(v[:len(v)-1], 4, nil); err == nil {
		t.Error("truncated value accepted")
	}
}

func TestMessageEncoding(t *testing.T) {
	m := Message{ID: "la-1", Activation: "act", Audience: "aud", Event: "Entity Added", Type: "track", UserID: "u\x001", Payload: []byte(`{"a":1}`)}
	var got Message
	rest, err := decodeMessage(append(encodeMessage(nil, &m), "tail"...), &got)
	if err != nil || string(rest) != "tail" {
		t.Fatalf("decode: %v, rest %q", err, rest)
	}
	if got.ID != m.ID || got.Activation != m.Activation || got.Audience != m.Audience || got.Event != m.Event ||
		got.Type != m.Type || got.UserID != m.UserID || !bytes.Equal(got.Payload, m.Payload) {
		t.Fatalf("round trip: %+v", got)
	}
}
