package diff

import "encoding/binary"

// A compact message's body: what varies between the events of one
// template (template.go), encoded with uvarint lengths.

// Forms of eventBody: the payload function that renders it.
const (
	formIdentify = 'I' // Audience Membership Changed
	formAudience = 'A' // Audience Entered, Exited
	formEntity   = 'E' // Entity Added, Removed, Changed
)

// eventBody is what varies between the events of a template. Byte slices
// point into the message they were decoded from.
type eventBody struct {
	form byte
	slot int  // the activation, in the template's Activations
	in   bool // in the new generation: Layouts[0]; else Layouts[1]
	// traits are the member's stored trait values.
	traits []byte
	reason string
	// Entity events: chain is the encoded keys (the profile, then the
	// chain down to the named entity), vals the row's stored step values,
	// overrides the looked-up current values that replace some of them.
	chain     []byte
	vals      []byte
	values    string
	changes   []change
	overrides []override
}

// override replaces fragment pos of an entity event's step values.
type override struct {
	pos  int
	frag []byte
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func (b *eventBody) append(dst []byte) []byte {
	in := byte(0)
	if b.in {
		in = 1
	}
	dst = append(dst, b.form, in)
	dst = binary.AppendUvarint(dst, uint64(b.slot))
	dst = appendBytes(dst, b.traits)
	dst = appendBytes(dst, []byte(b.reason))
	if b.form != formEntity {
		return dst
	}
	dst = appendBytes(dst, b.chain)
	dst = appendBytes(dst, b.vals)
	dst = appendBytes(dst, []byte(b.values))
	dst = binary.AppendUvarint(dst, uint64(len(b.changes)))
	for _, ch := range b.changes {
		dst = appendBytes(dst, []byte(ch.name))
		dst = appendBytes(dst, ch.from)
		dst = appendBytes(dst, ch.to)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.overrides)))
	for _, o := range b.overrides {
		dst = binary.AppendUvarint(dst, uint64(o.pos))
		dst = appendBytes(dst, o.frag)
	}
	return dst
}

// decode reads what append wrote; changes and overrides reuse their
// slices' storage.
func (b *eventBody) decode(v []byte) error {
	r := byteReader{b: v}
	if len(v) < 2 {
		return errBadValue
	}
	b.form, b.in = v[0], v[1] == 1
	r.b = v[2:]
	b.slot = int(r.uvarint())
	b.traits = r.bytes()
	b.reason = string(r.bytes())
	b.chain, b.vals, b.values = nil, nil, ""
	b.changes, b.overrides = b.changes[:0], b.overrides[:0]
	switch b.form {
	case formIdentify, formAudience:
	case formEntity:
		b.chain = r.bytes()
		b.vals = r.bytes()
		b.values = string(r.bytes())
		for n := r.uvarint(); n > 0 && r.err == nil; n-- {
			b.changes = append(b.changes, change{name: string(r.bytes()), from: r.bytes(), to: r.bytes()})
		}
		for n := r.uvarint(); n > 0 && r.err == nil; n-- {
			b.overrides = append(b.overrides, override{pos: int(r.uvarint()), frag: r.bytes()})
		}
	default:
		return errBadValue
	}
	if r.err != nil || len(r.b) != 0 {
		return errBadValue
	}
	return nil
}

// byteReader reads uvarints and length-prefixed bytes, keeping the first
// error.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadValue
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) bytes() []byte {
	l := r.uvarint()
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < l {
		r.err = errBadValue
		return nil
	}
	out := r.b[:l:l]
	r.b = r.b[l:]
	return out
}
