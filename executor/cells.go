package executor

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
)

// ErrUnsupportedType is returned by NewCells for an Arrow type it cannot read.
var ErrUnsupportedType = errors.New("executor: unsupported Arrow type")

// Cells reads the cells of one Arrow array (one column of one record batch)
// as Go values. Both warehouses hand over their results through it, so the
// differ's keys and the payloads' enrichment values have one textual form
// whichever warehouse produced them.
//
// Make one per array: the type switch happens once, not per cell. A Cells is
// valid while its array is; Text and Value copy what they return, so their
// results outlive the batch. It is not safe for concurrent use only in the
// sense that the array isn't: reading from several goroutines is fine.
//
// Canonical text and JSON-ready values, by Arrow type:
//
//	bool                      "true" / "false"                  bool
//	int8…int64, uint8…uint64  decimal digits                    int64 / uint64
//	float16/32/64             shortest round-trip, like JSON    float64 ("NaN", "Infinity", "-Infinity" as text)
//	decimal32…256 (p, s)      exact, s fraction digits: "12.50" json.Number
//	string, large, view       the string                        string
//	binary, fixed-size        standard base64                   string
//	date32/64                 "2006-01-02"                      string
//	timestamp (any unit, tz)  RFC 3339 in UTC, "…T15:04:05.5Z"  string
//	time32/64                 "15:04:05.123"                    string
//	interval, duration        ISO 8601 duration, "P1M2DT3S"     string
//	dictionary                the dictionary value's form
//	list, struct, map         JSON text of the value            []any / map[string]any
//	null                      always NULL                       nil
//
// A timestamp without a time zone is taken as UTC wall-clock time, the
// meaning DESIGN.md gives it.
type Cells struct {
	arr  arrow.Array
	kind cellKind

	// typed views, set per kind
	boolean *array.Boolean
	i64     func(int) int64
	u64     func(int) uint64
	f64     func(int) float64
	f32bits bool // float32/16: format with 32-bit precision
	str     func(int) string
	bin     func(int) []byte
	dec     func(int) (small int64, big *big.Int, fits bool)
	scale   int32
	unit    arrow.TimeUnit
	date64  bool
	mdn     *array.MonthDayNanoInterval
	dayTime *array.DayTimeInterval
	months  *array.MonthInterval
	dict    *array.Dictionary
	child   []Cells // dictionary values; list elements; struct fields; map keys, items
	names   []string
	offsets func(int) (int64, int64)
	uuid    bool
}

type cellKind uint8

const (
	kindNull cellKind = iota
	kindBool
	kindInt
	kindUint
	kindFloat
	kindDecimal
	kindString
	kindBinary
	kindDate
	kindTimestamp
	kindTime
	kindDuration
	kindInterval
	kindDictionary
	kindList
	kindStruct
	kindMap
)

// NewCells returns a reader of arr's cells, or an error wrapping
// ErrUnsupportedType.
func NewCells(arr arrow.Array) (Cells, error) {
	c := Cells{arr: arr}
	switch a := arr.(type) {
	case *array.Null:
		c.kind = kindNull
	case *array.Boolean:
		c.kind, c.boolean = kindBool, a
	case *array.Int8:
		c.kind, c.i64 = kindInt, func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int16:
		c.kind, c.i64 = kindInt, func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int32:
		c.kind, c.i64 = kindInt, func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int64:
		c.kind, c.i64 = kindInt, a.Value
	case *array.Uint8:
		c.kind, c.u64 = kindUint, func(i int) uint64 { return uint64(a.Value(i)) }
	case *array.Uint16:
		c.kind, c.u64 = kindUint, func(i int) uint64 { return uint64(a.Value(i)) }
	case *array.Uint32:
		c.kind, c.u64 = kindUint, func(i int) uint64 { return uint64(a.Value(i)) }
	case *array.Uint64:
		c.kind, c.u64 = kindUint, a.Value
	case *array.Float16:
		c.kind, c.f32bits = kindFloat, true
		c.f64 = func(i int) float64 { return float64(a.Value(i).Float32()) }
	case *array.Float32:
		c.kind, c.f32bits = kindFloat, true
		c.f64 = func(i int) float64 { return float64(a.Value(i)) }
	case *array.Float64:
		c.kind, c.f64 = kindFloat, a.Value
	case *array.Decimal32:
		c.kind, c.scale = kindDecimal, a.DataType().(*arrow.Decimal32Type).Scale
		c.dec = func(i int) (int64, *big.Int, bool) { return int64(a.Value(i)), nil, true }
	case *array.Decimal64:
		c.kind, c.scale = kindDecimal, a.DataType().(*arrow.Decimal64Type).Scale
		c.dec = func(i int) (int64, *big.Int, bool) { return int64(a.Value(i)), nil, true }
	case *array.Decimal128:
		c.kind, c.scale = kindDecimal, a.DataType().(*arrow.Decimal128Type).Scale
		c.dec = func(i int) (int64, *big.Int, bool) { return dec128(a.Value(i)) }
	case *array.Decimal256:
		c.kind, c.scale = kindDecimal, a.DataType().(*arrow.Decimal256Type).Scale
		c.dec = func(i int) (int64, *big.Int, bool) { return dec256(a.Value(i)) }
	case *array.String:
		c.kind, c.str = kindString, a.Value
	case *array.LargeString:
		c.kind, c.str = kindString, a.Value
	case *array.StringView:
		c.kind, c.str = kindString, a.Value
	case *array.Binary:
		c.kind, c.bin = kindBinary, a.Value
	case *array.LargeBinary:
		c.kind, c.bin = kindBinary, a.Value
	case *array.BinaryView:
		c.kind, c.bin = kindBinary, a.Value
	case *array.FixedSizeBinary:
		c.kind, c.bin = kindBinary, a.Value
	case *array.Date32:
		c.kind, c.i64 = kindDate, func(i int) int64 { return int64(a.Value(i)) }
	case *array.Date64:
		c.kind, c.date64 = kindDate, true
		c.i64 = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Timestamp:
		c.kind, c.unit = kindTimestamp, a.DataType().(*arrow.TimestampType).Unit
		c.i64 = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Time32:
		c.kind, c.unit = kindTime, a.DataType().(*arrow.Time32Type).Unit
		c.i64 = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Time64:
		c.kind, c.unit = kindTime, a.DataType().(*arrow.Time64Type).Unit
		c.i64 = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Duration:
		c.kind, c.unit = kindDuration, a.DataType().(*arrow.DurationType).Unit
		c.i64 = func(i int) int64 { return int64(a.Value(i)) }
	case *array.MonthDayNanoInterval:
		c.kind, c.mdn = kindInterval, a
	case *array.DayTimeInterval:
		c.kind, c.dayTime = kindInterval, a
	case *array.MonthInterval:
		c.kind, c.months = kindInterval, a
	case *array.Dictionary:
		values, err := NewCells(a.Dictionary())
		if err != nil {
			return Cells{}, err
		}
		c.kind, c.dict, c.child = kindDictionary, a, []Cells{values}
	case *array.List:
		return listCells(c, a.ListValues(), a.ValueOffsets)
	case *array.LargeList:
		return listCells(c, a.ListValues(), a.ValueOffsets)
	case *array.FixedSizeList:
		n := int64(a.DataType().(*arrow.FixedSizeListType).Len())
		off := int64(a.Offset())
		return listCells(c, a.ListValues(), func(i int) (int64, int64) {
			start := (off + int64(i)) * n
			return start, start + n
		})
	case *array.Map:
		keys, err := NewCells(a.Keys())
		if err != nil {
			return Cells{}, err
		}
		items, err := NewCells(a.Items())
		if err != nil {
			return Cells{}, err
		}
		c.kind, c.child, c.offsets = kindMap, []Cells{keys, items}, a.ValueOffsets
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		c.kind = kindStruct
		for f := 0; f < a.NumField(); f++ {
			fc, err := NewCells(a.Field(f))
			if err != nil {
				return Cells{}, err
			}
			c.child = append(c.child, fc)
			c.names = append(c.names, st.Field(f).Name)
		}
	case array.ExtensionArray:
		storage, err := NewCells(a.Storage())
		if err != nil {
			return Cells{}, err
		}
		storage.arr = arr // nulls are the extension array's
		storage.uuid = a.ExtensionType().ExtensionName() == "arrow.uuid"
		return storage, nil
	default:
		return Cells{}, fmt.Errorf("%w %s", ErrUnsupportedType, arr.DataType())
	}
	return c, nil
}

func listCells(c Cells, values arrow.Array, offsets func(int) (int64, int64)) (Cells, error) {
	elems, err := NewCells(values)
	if err != nil {
		return Cells{}, err
	}
	c.kind, c.child, c.offsets = kindList, []Cells{elems}, offsets
	return c, nil
}

// Len is the number of cells.
func (c Cells) Len() int { return c.arr.Len() }

// IsNull reports whether cell i is NULL.
func (c Cells) IsNull(i int) bool { return c.kind == kindNull || c.arr.IsNull(i) }

// Text returns the canonical text of cell i (see Cells), and false when it
// is NULL.
func (c Cells) Text(i int) (string, bool) {
	if c.IsNull(i) {
		return "", false
	}
	if c.kind == kindString {
		return strings.Clone(c.str(i)), true
	}
	b, _ := c.AppendText(nil, i)
	return string(b), true
}

// AppendText appends the canonical text of cell i to dst, and reports false
// (appending nothing) when the cell is NULL. It does not allocate beyond
// growing dst for the common types, so the differ can build keys in a
// reused buffer.
func (c Cells) AppendText(dst []byte, i int) ([]byte, bool) {
	if c.IsNull(i) {
		return dst, false
	}
	switch c.kind {
	case kindBool:
		return strconv.AppendBool(dst, c.boolean.Value(i)), true
	case kindInt:
		return strconv.AppendInt(dst, c.i64(i), 10), true
	case kindUint:
		return strconv.AppendUint(dst, c.u64(i), 10), true
	case kindFloat:
		return c.appendFloat(dst, c.f64(i)), true
	case kindDecimal:
		return c.appendDecimal(dst, i), true
	case kindString:
		return append(dst, c.str(i)...), true
	case kindBinary:
		if c.uuid {
			return appendUUID(dst, c.bin(i)), true
		}
		return base64.StdEncoding.AppendEncode(dst, c.bin(i)), true
	case kindDate:
		return c.date(i).AppendFormat(dst, time.DateOnly), true
	case kindTimestamp:
		return c.timestamp(i).AppendFormat(dst, time.RFC3339Nano), true
	case kindTime:
		return c.appendTime(dst, i), true
	case kindDuration:
		return appendISODuration(dst, 0, 0, toNanos(c.i64(i), c.unit)), true
	case kindInterval:
		return c.appendInterval(dst, i), true
	case kindDictionary:
		return c.child[0].AppendText(dst, c.dict.GetValueIndex(i))
	}
	// Nested values: their text is their JSON.
	b, err := json.Marshal(c.Value(i))
	if err != nil {
		// Value returns only JSON-encodable values; this is a bug.
		panic(fmt.Sprintf("executor: encoding %s: %v", c.arr.DataType(), err))
	}
	return append(dst, b...), true
}

// Value returns cell i as a value encoding/json can marshal (see Cells):
// nil for NULL.
func (c Cells) Value(i int) any {
	if c.IsNull(i) {
		return nil
	}
	switch c.kind {
	case kindBool:
		return c.boolean.Value(i)
	case kindInt:
		return c.i64(i)
	case kindUint:
		return c.u64(i)
	case kindFloat:
		f := c.f64(i)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return string(c.appendFloat(nil, f))
		}
		if c.f32bits {
			// Keep the float32's shortest form (0.1, not 0.10000000149011612).
			f, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
		}
		return f
	case kindDecimal:
		return json.Number(c.appendDecimal(nil, i))
	case kindString:
		return strings.Clone(c.str(i))
	case kindDictionary:
		return c.child[0].Value(c.dict.GetValueIndex(i))
	case kindList:
		start, end := c.offsets(i)
		out := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			out = append(out, c.child[0].Value(int(j)))
		}
		return out
	case kindStruct:
		out := make(map[string]any, len(c.names))
		for f, name := range c.names {
			out[name] = c.child[f].Value(i)
		}
		return out
	case kindMap:
		start, end := c.offsets(i)
		out := make(map[string]any, end-start)
		for j := start; j < end; j++ {
			k, _ := c.child[0].Text(int(j))
			out[k] = c.child[1].Value(int(j))
		}
		return out
	}
	s, _ := c.Text(i)
	return s
}

func (c Cells) appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	bits := 64
	if c.f32bits {
		bits = 32
	}
	// encoding/json's choice: plain notation for 1e-6 <= |f| < 1e21.
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, bits)
}

func (c Cells) appendDecimal(dst []byte, i int) []byte {
	small, bigv, fits := c.dec(i)
	var digits []byte
	neg := false
	if fits {
		if small < 0 {
			neg = true
			// -MinInt64 overflows; the unsigned negation does not.
			digits = strconv.AppendUint(nil, uint64(-small), 10)
		} else {
			digits = strconv.AppendUint(nil, uint64(small), 10)
		}
	} else {
		neg = bigv.Sign() < 0
		digits = new(big.Int).Abs(bigv).Append(nil, 10)
	}
	return appendScaled(dst, neg, digits, c.scale)
}

// appendScaled writes the unscaled integer digits with a decimal point
// scale digits from the right: every fraction digit is kept, as SQL's cast
// of a DECIMAL to text does.
func appendScaled(dst []byte, neg bool, digits []byte, scale int32) []byte {
	if neg {
		dst = append(dst, '-')
	}
	if scale <= 0 {
		dst = append(dst, digits...)
		if len(digits) == 1 && digits[0] == '0' {
			return dst
		}
		for ; scale < 0; scale++ {
			dst = append(dst, '0')
		}
		return dst
	}
	s := int(scale)
	if len(digits) <= s {
		dst = append(dst, '0', '.')
		for k := len(digits); k < s; k++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	at := len(digits) - s
	dst = append(dst, digits[:at]...)
	dst = append(dst, '.')
	return append(dst, digits[at:]...)
}

func dec128(n decimal128.Num) (int64, *big.Int, bool) {
	hi, lo := n.HighBits(), n.LowBits()
	if (hi == 0 && lo <= math.MaxInt64) || (hi == -1 && lo > math.MaxInt64) {
		return int64(lo), nil, true
	}
	return 0, n.BigInt(), false
}

func dec256(n decimal256.Num) (int64, *big.Int, bool) {
	a := n.Array() // little-endian 64-bit words
	top := a[3]
	if (top == 0 && a[2] == 0 && a[1] == 0 && a[0] <= math.MaxInt64) ||
		(top == math.MaxUint64 && a[2] == math.MaxUint64 && a[1] == math.MaxUint64 && a[0] > math.MaxInt64) {
		return int64(a[0]), nil, true
	}
	return 0, n.BigInt(), false
}

func (c Cells) date(i int) time.Time {
	v := c.i64(i)
	if c.date64 {
		return time.UnixMilli(v).UTC()
	}
	return time.Unix(v*86400, 0).UTC()
}

func (c Cells) timestamp(i int) time.Time {
	v := c.i64(i)
	switch c.unit {
	case arrow.Second:
		return time.Unix(v, 0).UTC()
	case arrow.Millisecond:
		return time.UnixMilli(v).UTC()
	case arrow.Microsecond:
		return time.UnixMicro(v).UTC()
	}
	return time.Unix(0, v).UTC()
}

func toNanos(v int64, unit arrow.TimeUnit) int64 {
	return v * int64(unit.Multiplier())
}

func (c Cells) appendTime(dst []byte, i int) []byte {
	ns := toNanos(c.i64(i), c.unit)
	t := time.Unix(0, ns).UTC()
	return t.AppendFormat(dst, "15:04:05.999999999")
}

func (c Cells) appendInterval(dst []byte, i int) []byte {
	switch {
	case c.mdn != nil:
		v := c.mdn.Value(i)
		return appendISODuration(dst, int64(v.Months), int64(v.Days), v.Nanoseconds)
	case c.dayTime != nil:
		v := c.dayTime.Value(i)
		return appendISODuration(dst, 0, int64(v.Days), int64(v.Milliseconds)*int64(time.Millisecond))
	}
	return appendISODuration(dst, int64(c.months.Value(i)), 0, 0)
}

// appendISODuration writes an ISO 8601 duration, e.g. P1Y2M3DT4H5M6.5S;
// a negative component carries its own sign, as PostgreSQL's iso_8601
// interval style does.
func appendISODuration(dst []byte, months, days, nanos int64) []byte {
	dst = append(dst, 'P')
	if months == 0 && days == 0 && nanos == 0 {
		return append(dst, "T0S"...)
	}
	if y := months / 12; y != 0 {
		dst = append(strconv.AppendInt(dst, y, 10), 'Y')
	}
	if m := months % 12; m != 0 {
		dst = append(strconv.AppendInt(dst, m, 10), 'M')
	}
	if days != 0 {
		dst = append(strconv.AppendInt(dst, days, 10), 'D')
	}
	if nanos == 0 {
		return dst
	}
	dst = append(dst, 'T')
	neg := nanos < 0
	u := uint64(nanos)
	if neg {
		u = -u
	}
	h, rest := u/uint64(time.Hour), u%uint64(time.Hour)
	m, rest := rest/uint64(time.Minute), rest%uint64(time.Minute)
	s, frac := rest/uint64(time.Second), rest%uint64(time.Second)
	part := func(v uint64, unit byte) {
		if neg {
			dst = append(dst, '-')
		}
		dst = append(strconv.AppendUint(dst, v, 10), unit)
	}
	if h != 0 {
		part(h, 'H')
	}
	if m != 0 {
		part(m, 'M')
	}
	if s != 0 || frac != 0 {
		if neg {
			dst = append(dst, '-')
		}
		dst = strconv.AppendUint(dst, s, 10)
		if frac != 0 {
			f := strconv.AppendUint(nil, frac+uint64(time.Second), 10)[1:] // 9 digits, zero-padded
			for len(f) > 0 && f[len(f)-1] == '0' {
				f = f[:len(f)-1]
			}
			dst = append(append(dst, '.'), f...)
		}
		dst = append(dst, 'S')
	}
	return dst
}

func appendUUID(dst, b []byte) []byte {
	if len(b) != 16 {
		return base64.StdEncoding.AppendEncode(dst, b)
	}
	const hex = "0123456789abcdef"
	for k, x := range b {
		if k == 4 || k == 6 || k == 8 || k == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[x>>4], hex[x&15])
	}
	return dst
}
