package diff

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/linkaud/linkaud/executor"
)

// jsonMode says how the cells of one Arrow column become JSON.
type jsonMode uint8

const (
	jsonNull  jsonMode = iota // the null type
	jsonRaw                   // booleans, integers, decimals: the canonical text is JSON
	jsonFloat                 // the canonical text, quoted when not finite (NaN, ±Infinity)
	jsonText                  // text, dates, times, binary: the canonical text, quoted
	jsonValue                 // nested and dictionary types: encoding/json of Cells.Value
)

// jsonCol writes the cells of one enrichment column as JSON values. The
// canonical forms are executor.Cells': whichever warehouse produced the
// rows, a value has one JSON form, so a value that did not change compares
// equal across cycles.
type jsonCol struct {
	cells executor.Cells
	mode  jsonMode
}

func newJSONCol(arr arrow.Array) (jsonCol, error) {
	c, err := executor.NewCells(arr)
	if err != nil {
		return jsonCol{}, err
	}
	mode := jsonValue
	switch arr.DataType().ID() {
	case arrow.NULL:
		mode = jsonNull
	case arrow.BOOL, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		mode = jsonRaw
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		mode = jsonFloat
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW,
		arrow.BINARY, arrow.LARGE_BINARY, arrow.BINARY_VIEW, arrow.FIXED_SIZE_BINARY,
		arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME32, arrow.TIME64,
		arrow.DURATION, arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO:
		mode = jsonText
	}
	return jsonCol{cells: c, mode: mode}, nil
}

// appendJSON appends cell i as JSON; scratch is a reusable buffer.
func (c *jsonCol) appendJSON(dst, scratch []byte, i int) ([]byte, []byte, error) {
	if c.mode == jsonNull || c.cells.IsNull(i) {
		return append(dst, "null"...), scratch, nil
	}
	switch c.mode {
	case jsonRaw:
		dst, _ = c.cells.AppendText(dst, i)
		return dst, scratch, nil
	case jsonFloat:
		scratch, _ = c.cells.AppendText(scratch[:0], i)
		if len(scratch) > 0 && (scratch[0] == 'N' || scratch[0] == 'I' || (scratch[0] == '-' && len(scratch) > 1 && scratch[1] == 'I')) {
			return appendJSONString(dst, scratch), scratch, nil
		}
		return append(dst, scratch...), scratch, nil
	case jsonText:
		scratch, _ = c.cells.AppendText(scratch[:0], i)
		return appendJSONString(dst, scratch), scratch, nil
	}
	b, err := json.Marshal(c.cells.Value(i))
	if err != nil {
		return dst, scratch, fmt.Errorf("diff: encoding an enrichment value: %w", err)
	}
	return append(dst, b...), scratch, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does; unlike it, <, > and & are not escaped: payloads
// are not embedded in HTML.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		var r rune
		var size int
		switch v := any(s).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, size = utf8.DecodeRune(v[i:])
		}
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Stored values are a sequence of JSON fragments, each preceded by its
// length as a uvarint: a row holds its step columns' values, a member its
// trait columns' values, each in Layout.Enrich order.

func appendFragment(dst, frag []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(frag)))
	return append(dst, frag...)
}

// splitFragments cuts a stored value into its n fragments.
func splitFragments(v []byte, n int, dst [][]byte) ([][]byte, error) {
	dst = dst[:0]
	for len(v) > 0 {
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			return nil, errBadValue
		}
		dst = append(dst, v[k:k+int(l)])
		v = v[k+int(l):]
	}
	if len(dst) != n {
		return nil, errBadValue
	}
	return dst, nil
}

var errBadValue = fmt.Errorf("diff: malformed value in the store")
