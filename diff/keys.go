package diff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Tuple encoding. A tuple of nullable texts is encoded so that comparing
// encodings byte-wise orders tuples element by element, each element in
// byte order of its text, NULL before any text, a shorter tuple before a
// longer one it prefixes — the order of the result rows (contracts.md).
//
//	NULL   0x00
//	text   0x01, the bytes with 0x00 written as 0x00 0xFF, then 0x00 0x01
//
// The terminator 0x00 0x01 sorts below every continuation of the text (an
// escaped 0x00 is 0x00 0xFF, any other byte is ≥ 0x01 and not 0x00), so "a"
// < "a\x00" < "ab". Every element is self-delimiting, so a key can be cut
// into elements without knowing its arity.
const (
	tagNull = 0x00
	tagText = 0x01
	escByte = 0xFF
	termEnd = 0x01
)

// appendText appends the encoding of the text s.
func appendText(dst, s []byte) []byte {
	dst = append(dst, tagText)
	for {
		i := bytes.IndexByte(s, 0)
		if i < 0 {
			dst = append(dst, s...)
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, escByte)
		s = s[i+1:]
	}
	return append(dst, 0x00, termEnd)
}

// appendString is appendText for a string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, tagText)
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			dst = append(dst, 0x00, escByte)
		} else {
			dst = append(dst, s[i])
		}
	}
	return append(dst, 0x00, termEnd)
}

var errBadKey = errors.New("diff: malformed key in the store")

// elemEnd returns the length of the element at the start of b.
func elemEnd(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errBadKey
	}
	if b[0] == tagNull {
		return 1, nil
	}
	if b[0] != tagText {
		return 0, errBadKey
	}
	for i := 1; ; {
		j := bytes.IndexByte(b[i:], 0)
		if j < 0 || i+j+1 >= len(b) {
			return 0, errBadKey
		}
		i += j
		switch b[i+1] {
		case termEnd:
			return i + 2, nil
		case escByte:
			i += 2
		default:
			return 0, errBadKey
		}
	}
}

// decodeElem decodes the element at the start of b: its text (nil, false
// for NULL) and its length.
func decodeElem(b []byte) (text []byte, ok bool, n int, err error) {
	n, err = elemEnd(b)
	if err != nil || b[0] == tagNull {
		return nil, false, n, err
	}
	body := b[1 : n-2]
	if bytes.IndexByte(body, 0) < 0 {
		return body, true, n, nil
	}
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		out = append(out, body[i])
		if body[i] == 0 {
			i++ // skip the escape byte
		}
	}
	return out, true, n, nil
}

// decodeTuple decodes every element of an encoded tuple; NULLs are nil.
func decodeTuple(b []byte) ([][]byte, error) {
	return decodeTupleInto(b, nil)
}

// decodeTupleInto is decodeTuple, appending to out[:0].
func decodeTupleInto(b []byte, out [][]byte) ([][]byte, error) {
	out = out[:0]
	for len(b) > 0 {
		t, ok, n, err := decodeElem(b)
		if err != nil {
			return nil, err
		}
		if ok && t == nil {
			t = []byte{}
		}
		out = append(out, t)
		b = b[n:]
	}
	return out, nil
}

// elemEnds appends to ends the end offset of each element of b, and to nulls
// whether it is NULL.
func elemEnds(b []byte, ends []int, nulls []bool) ([]int, []bool, error) {
	off := 0
	for off < len(b) {
		n, err := elemEnd(b[off:])
		if err != nil {
			return ends, nulls, err
		}
		nulls = append(nulls, b[off] == tagNull)
		off += n
		ends = append(ends, off)
	}
	return ends, nulls, nil
}

// Key spaces: the first byte of every key names its table; doc.go lists them.
const (
	tGlobal     = 0x01 // tGlobal name → uint64 counter
	tMeta       = 0x02 // tMeta aud → audience meta (JSON)
	tData       = 0x03 // tData aud profile [key_0 … key_n-1] → values
	tDelta      = 0x04 // tDelta cycle(8) profile [keys…] → op, values
	tActivation = 0x05 // tActivation aud activation → signature
	tRun        = 0x06 // tRun aud run(8) → RunRecord (JSON)
	tCycle      = 0x07 // tCycle cycle(8) → in-progress cycle (JSON)
	tIndex      = 0x08 // tIndex dest commit(8) → cycle(8), remaining, first, total (uvarints)
	tEvent      = 0x09 // tEvent cycle(8) dest idx(4) → message
	tDead       = 0x0a // tDead dest seq(8) → dead letter
	tHistory    = 0x0b // tHistory aud → size history (history.go)
	tTemplate   = 0x0c // tTemplate cycle(8) dest → event template (template.go)
)

// Global counters.
var (
	keyCycleCounter  = globalKey("cycle")
	keyCommitCounter = globalKey("commit")
	keyDeadCounter   = globalKey("dead")
)

func globalKey(name string) []byte { return appendString([]byte{tGlobal}, name) }

func metaKey(aud string) []byte { return appendString([]byte{tMeta}, aud) }

// dataPrefix is the prefix of an audience's members and rows.
func dataPrefix(aud string) []byte { return appendString([]byte{tData}, aud) }

func deltaPrefix(cycle uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tDelta}, cycle)
}

func activationPrefix(aud string) []byte { return appendString([]byte{tActivation}, aud) }

func runPrefix(aud string) []byte { return appendString([]byte{tRun}, aud) }

func runKey(aud string, run uint64) []byte {
	return binary.BigEndian.AppendUint64(runPrefix(aud), run)
}

func cycleKey(cycle uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tCycle}, cycle)
}

func indexPrefix(dest string) []byte { return appendString([]byte{tIndex}, dest) }

func indexKey(dest string, commit uint64) []byte {
	return binary.BigEndian.AppendUint64(indexPrefix(dest), commit)
}

func eventCyclePrefix(cycle uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tEvent}, cycle)
}

func eventPrefix(cycle uint64, dest string) []byte {
	return appendString(eventCyclePrefix(cycle), dest)
}

func eventKey(cycle uint64, dest string, idx uint32) []byte {
	return binary.BigEndian.AppendUint32(eventPrefix(cycle, dest), idx)
}

func templateCyclePrefix(cycle uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tTemplate}, cycle)
}

func templateKey(cycle uint64, dest string) []byte {
	return appendString(templateCyclePrefix(cycle), dest)
}

func deadPrefix(dest string) []byte { return appendString([]byte{tDead}, dest) }

func deadKey(dest string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(deadPrefix(dest), seq)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xFF: no upper bound
}

// Seq packs a commit number (high 32 bits) and the message's index within
// that commit's messages for the destination (low 32 bits). Commit numbers
// are assigned when a cycle becomes current, so Seqs grow in the order
// messages become visible, whichever cycle staged them first.
func makeSeq(commit uint64, idx uint32) uint64 { return commit<<32 | uint64(idx) }

func splitSeq(seq uint64) (commit uint64, idx uint32) { return seq >> 32, uint32(seq) }

// maxCommit is the largest commit number a Seq can carry.
const maxCommit = 1<<32 - 1

func checkCommit(c uint64) error {
	if c > maxCommit {
		return fmt.Errorf("diff: outbox commit number %d exceeds %d", c, uint64(maxCommit))
	}
	return nil
}
