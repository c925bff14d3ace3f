package executor

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// cellCase builds one array; texts and values list what every cell must
// read as ("" with a nil value is NULL, checked through the ok result).
type cellCase struct {
	name   string
	build  func(mem memory.Allocator) arrow.Array
	texts  []string
	nulls  []bool
	values []any
}

func TestCellsEveryType(t *testing.T) {
	ts := func(s string) int64 {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UnixNano()
	}
	big38 := func(s string) decimal128.Num {
		b, ok := new(big.Int).SetString(s, 10)
		if !ok {
			t.Fatalf("bad number %s", s)
		}
		return decimal128.FromBigInt(b)
	}
	cases := []cellCase{
		{
			name: "bool",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewBooleanBuilder(mem)
				b.AppendValues([]bool{true, false, false}, []bool{true, true, false})
				return b.NewArray()
			},
			texts:  []string{"true", "false", ""},
			nulls:  []bool{false, false, true},
			values: []any{true, false, nil},
		},
		{
			name: "int8",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewInt8Builder(mem)
				b.AppendValues([]int8{-128, 127, 0}, []bool{true, true, false})
				return b.NewArray()
			},
			texts:  []string{"-128", "127", ""},
			nulls:  []bool{false, false, true},
			values: []any{int64(-128), int64(127), nil},
		},
		{
			name: "int16",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewInt16Builder(mem)
				b.AppendValues([]int16{-32768, 32767}, nil)
				return b.NewArray()
			},
			texts:  []string{"-32768", "32767"},
			values: []any{int64(-32768), int64(32767)},
		},
		{
			name: "int32",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewInt32Builder(mem)
				b.AppendValues([]int32{math.MinInt32, 42}, nil)
				return b.NewArray()
			},
			texts:  []string{"-2147483648", "42"},
			values: []any{int64(math.MinInt32), int64(42)},
		},
		{
			name: "int64",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewInt64Builder(mem)
				b.AppendValues([]int64{math.MinInt64, math.MaxInt64, 0}, []bool{true, true, false})
				return b.NewArray()
			},
			texts:  []string{"-9223372036854775808", "9223372036854775807", ""},
			nulls:  []bool{false, false, true},
			values: []any{int64(math.MinInt64), int64(math.MaxInt64), nil},
		},
		{
			name: "uint8..64",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewUint64Builder(mem)
				b.AppendValues([]uint64{math.MaxUint64, 7}, nil)
				return b.NewArray()
			},
			texts:  []string{"18446744073709551615", "7"},
			values: []any{uint64(math.MaxUint64), uint64(7)},
		},
		{
			name: "uint8",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewUint8Builder(mem)
				b.AppendValues([]uint8{255}, nil)
				return b.NewArray()
			},
			texts:  []string{"255"},
			values: []any{uint64(255)},
		},
		{
			name: "float64",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewFloat64Builder(mem)
				b.AppendValues([]float64{0.1, -2.5, 1e21, 1e-7, 100, math.NaN(), math.Inf(1), math.Inf(-1), 0}, nil)
				return b.NewArray()
			},
			texts:  []string{"0.1", "-2.5", "1e+21", "1e-07", "100", "NaN", "Infinity", "-Infinity", "0"},
			values: []any{0.1, -2.5, 1e21, 1e-7, 100.0, "NaN", "Infinity", "-Infinity", 0.0},
		},
		{
			name: "float32",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewFloat32Builder(mem)
				b.AppendValues([]float32{0.1, 3.25}, nil)
				return b.NewArray()
			},
			texts:  []string{"0.1", "3.25"},
			values: []any{0.1, 3.25},
		},
		{
			name: "float16",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewFloat16Builder(mem)
				b.AppendValues([]float16.Num{float16.New(1.5), float16.New(-2)}, nil)
				return b.NewArray()
			},
			texts:  []string{"1.5", "-2"},
			values: []any{1.5, -2.0},
		},
		{
			// DuckDB's SUM(BIGINT) is decimal(38,0); values beyond int64 must
			// stay exact.
			name: "decimal128(38,0)",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 38, Scale: 0})
				b.Append(decimal128.FromI64(12345))
				b.Append(big38("99999999999999999999999999999999999999"))
				b.Append(big38("-170141183460469231731687303715884105"))
				b.Append(decimal128.FromI64(math.MinInt64))
				b.AppendNull()
				b.Append(decimal128.FromI64(0))
				return b.NewArray()
			},
			texts: []string{"12345", "99999999999999999999999999999999999999",
				"-170141183460469231731687303715884105", "-9223372036854775808", "", "0"},
			nulls: []bool{false, false, false, false, true, false},
			values: []any{json.Number("12345"), json.Number("99999999999999999999999999999999999999"),
				json.Number("-170141183460469231731687303715884105"), json.Number("-9223372036854775808"), nil, json.Number("0")},
		},
		{
			name: "decimal128(10,2)",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 10, Scale: 2})
				for _, v := range []int64{1250, -5, 0, 100000} {
					b.Append(decimal128.FromI64(v))
				}
				return b.NewArray()
			},
			texts:  []string{"12.50", "-0.05", "0.00", "1000.00"},
			values: []any{json.Number("12.50"), json.Number("-0.05"), json.Number("0.00"), json.Number("1000.00")},
		},
		{
			name: "decimal128 negative scale",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 5, Scale: -2})
				b.Append(decimal128.FromI64(12))
				b.Append(decimal128.FromI64(0))
				return b.NewArray()
			},
			texts:  []string{"1200", "0"},
			values: []any{json.Number("1200"), json.Number("0")},
		},
		{
			name: "decimal32(9,3)",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDecimal32Builder(mem, &arrow.Decimal32Type{Precision: 9, Scale: 3})
				b.Append(decimal.Decimal32(-1234567))
				return b.NewArray()
			},
			texts:  []string{"-1234.567"},
			values: []any{json.Number("-1234.567")},
		},
		{
			name: "decimal64(18,4)",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDecimal64Builder(mem, &arrow.Decimal64Type{Precision: 18, Scale: 4})
				b.Append(decimal.Decimal64(10001))
				return b.NewArray()
			},
			texts:  []string{"1.0001"},
			values: []any{json.Number("1.0001")},
		},
		{
			name: "decimal256(76,10)",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDecimal256Builder(mem, &arrow.Decimal256Type{Precision: 76, Scale: 10})
				n, _ := new(big.Int).SetString("-123456789012345678901234567890123456789012345", 10)
				b.Append(decimal256.FromBigInt(n))
				b.Append(decimal256.FromI64(-1))
				return b.NewArray()
			},
			texts:  []string{"-12345678901234567890123456789012345.6789012345", "-0.0000000001"},
			values: []any{json.Number("-12345678901234567890123456789012345.6789012345"), json.Number("-0.0000000001")},
		},
		{
			name: "string",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewStringBuilder(mem)
				b.AppendValues([]string{"Zoë 🐈", "", "x"}, []bool{true, true, false})
				return b.NewArray()
			},
			texts:  []string{"Zoë 🐈", "", ""},
			nulls:  []bool{false, false, true},
			values: []any{"Zoë 🐈", "", nil},
		},
		{
			name: "large string",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewLargeStringBuilder(mem)
				b.Append(`quote " and \ backslash`)
				return b.NewArray()
			},
			texts:  []string{`quote " and \ backslash`},
			values: []any{`quote " and \ backslash`},
		},
		{
			name: "string view",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewStringViewBuilder(mem)
				b.AppendValues([]string{"short", "a string longer than twelve bytes"}, nil)
				return b.NewArray()
			},
			texts:  []string{"short", "a string longer than twelve bytes"},
			values: []any{"short", "a string longer than twelve bytes"},
		},
		{
			name: "binary",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
				b.AppendValues([][]byte{{0, 1, 0xff}, {}}, nil)
				return b.NewArray()
			},
			texts:  []string{"AAH/", ""},
			values: []any{"AAH/", ""},
		},
		{
			name: "fixed size binary",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewFixedSizeBinaryBuilder(mem, &arrow.FixedSizeBinaryType{ByteWidth: 2})
				b.Append([]byte("hi"))
				return b.NewArray()
			},
			texts:  []string{"aGk="},
			values: []any{"aGk="},
		},
		{
			name: "uuid extension",
			build: func(mem memory.Allocator) arrow.Array {
				b := extensions.NewUUIDBuilder(mem)
				b.AppendBytes([16]byte{0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00})
				b.AppendNull()
				return b.NewArray()
			},
			texts:  []string{"123e4567-e89b-12d3-a456-426614174000", ""},
			nulls:  []bool{false, true},
			values: []any{"123e4567-e89b-12d3-a456-426614174000", nil},
		},
		{
			name: "date32",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDate32Builder(mem)
				b.AppendValues([]arrow.Date32{0, 19753, -1}, nil)
				return b.NewArray()
			},
			texts:  []string{"1970-01-01", "2024-01-31", "1969-12-31"},
			values: []any{"1970-01-01", "2024-01-31", "1969-12-31"},
		},
		{
			name: "date64",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDate64Builder(mem)
				b.Append(arrow.Date64(19753 * 86400000))
				return b.NewArray()
			},
			texts:  []string{"2024-01-31"},
			values: []any{"2024-01-31"},
		},
		{
			name: "timestamp us no zone",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond})
				b.Append(arrow.Timestamp(ts("2026-11-28T10:00:00Z") / 1000))
				b.Append(arrow.Timestamp(ts("2026-11-28T10:00:00.5Z") / 1000))
				b.Append(arrow.Timestamp(-1))
				return b.NewArray()
			},
			texts:  []string{"2026-11-28T10:00:00Z", "2026-11-28T10:00:00.5Z", "1969-12-31T23:59:59.999999Z"},
			values: []any{"2026-11-28T10:00:00Z", "2026-11-28T10:00:00.5Z", "1969-12-31T23:59:59.999999Z"},
		},
		{
			// A zone only changes how the instant is shown; we show UTC.
			name: "timestamp ms with zone",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "Europe/Paris"})
				b.Append(arrow.Timestamp(ts("2026-07-01T12:30:00.123Z") / 1e6))
				return b.NewArray()
			},
			texts:  []string{"2026-07-01T12:30:00.123Z"},
			values: []any{"2026-07-01T12:30:00.123Z"},
		},
		{
			name: "timestamp s and ns",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"})
				b.Append(arrow.Timestamp(ts("2001-02-03T04:05:06.000000007Z")))
				return b.NewArray()
			},
			texts:  []string{"2001-02-03T04:05:06.000000007Z"},
			values: []any{"2001-02-03T04:05:06.000000007Z"},
		},
		{
			name: "timestamp s",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Second})
				b.Append(arrow.Timestamp(ts("2001-02-03T04:05:06Z") / 1e9))
				return b.NewArray()
			},
			texts:  []string{"2001-02-03T04:05:06Z"},
			values: []any{"2001-02-03T04:05:06Z"},
		},
		{
			name: "time64 us and time32 ms",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewTime64Builder(mem, &arrow.Time64Type{Unit: arrow.Microsecond})
				b.Append(arrow.Time64((13*3600 + 5*60 + 9) * 1e6))
				b.Append(arrow.Time64((13*3600+5*60+9)*1e6 + 250000))
				return b.NewArray()
			},
			texts:  []string{"13:05:09", "13:05:09.25"},
			values: []any{"13:05:09", "13:05:09.25"},
		},
		{
			name: "time32",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewTime32Builder(mem, &arrow.Time32Type{Unit: arrow.Millisecond})
				b.Append(arrow.Time32(1))
				return b.NewArray()
			},
			texts:  []string{"00:00:00.001"},
			values: []any{"00:00:00.001"},
		},
		{
			name: "interval month day nano",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewMonthDayNanoIntervalBuilder(mem)
				b.Append(arrow.MonthDayNanoInterval{Months: 14, Days: 3, Nanoseconds: int64(4*time.Hour + 5*time.Minute + 6500*time.Millisecond)})
				b.Append(arrow.MonthDayNanoInterval{})
				b.Append(arrow.MonthDayNanoInterval{Days: -2, Nanoseconds: -int64(90 * time.Minute)})
				return b.NewArray()
			},
			texts:  []string{"P1Y2M3DT4H5M6.5S", "PT0S", "P-2DT-1H-30M"},
			values: []any{"P1Y2M3DT4H5M6.5S", "PT0S", "P-2DT-1H-30M"},
		},
		{
			name: "duration",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDurationBuilder(mem, &arrow.DurationType{Unit: arrow.Millisecond})
				b.Append(arrow.Duration(61500))
				return b.NewArray()
			},
			texts:  []string{"PT1M1.5S"},
			values: []any{"PT1M1.5S"},
		},
		{
			// DuckDB exports ENUM columns as dictionaries.
			name: "dictionary",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewDictionaryBuilder(mem, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint8, ValueType: arrow.BinaryTypes.String})
				defer b.Release()
				db := b.(*array.BinaryDictionaryBuilder)
				_ = db.AppendString("cat")
				_ = db.AppendString("dog")
				db.AppendNull()
				_ = db.AppendString("cat")
				return b.NewArray()
			},
			texts:  []string{"cat", "dog", "", "cat"},
			nulls:  []bool{false, false, true, false},
			values: []any{"cat", "dog", nil, "cat"},
		},
		{
			name: "list",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int64)
				vb := b.ValueBuilder().(*array.Int64Builder)
				b.Append(true)
				vb.AppendValues([]int64{1, 2}, nil)
				vb.AppendNull()
				b.AppendNull()
				b.Append(true)
				return b.NewArray()
			},
			texts:  []string{"[1,2,null]", "", "[]"},
			nulls:  []bool{false, true, false},
			values: []any{[]any{int64(1), int64(2), nil}, nil, []any{}},
		},
		{
			name: "struct",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewStructBuilder(mem, arrow.StructOf(
					arrow.Field{Name: "id", Type: arrow.BinaryTypes.String},
					arrow.Field{Name: "n", Type: arrow.PrimitiveTypes.Int32, Nullable: true}))
				b.Append(true)
				b.FieldBuilder(0).(*array.StringBuilder).Append("a_7")
				b.FieldBuilder(1).(*array.Int32Builder).AppendNull()
				return b.NewArray()
			},
			texts:  []string{`{"id":"a_7","n":null}`},
			values: []any{map[string]any{"id": "a_7", "n": nil}},
		},
		{
			name: "map",
			build: func(mem memory.Allocator) arrow.Array {
				b := array.NewMapBuilder(mem, arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64, false)
				b.Append(true)
				b.KeyBuilder().(*array.StringBuilder).AppendValues([]string{"b", "a"}, nil)
				b.ItemBuilder().(*array.Float64Builder).AppendValues([]float64{2, 0.5}, nil)
				return b.NewArray()
			},
			texts:  []string{`{"a":0.5,"b":2}`},
			values: []any{map[string]any{"a": 0.5, "b": 2.0}},
		},
		{
			name: "null",
			build: func(mem memory.Allocator) arrow.Array {
				return array.NewNull(2)
			},
			texts:  []string{"", ""},
			nulls:  []bool{true, true},
			values: []any{nil, nil},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			arr := tc.build(mem)
			defer arr.Release()
			checkCells(t, arr, tc.texts, tc.nulls, tc.values)
		})
	}
}

func checkCells(t *testing.T, arr arrow.Array, texts []string, nulls []bool, values []any) {
	t.Helper()
	c, err := NewCells(arr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != len(texts) {
		t.Fatalf("Len = %d, want %d", c.Len(), len(texts))
	}
	var buf []byte
	for i := range texts {
		wantNull := nulls != nil && nulls[i]
		if got := c.IsNull(i); got != wantNull {
			t.Errorf("cell %d: IsNull = %v, want %v", i, got, wantNull)
		}
		text, ok := c.Text(i)
		if ok == wantNull || text != texts[i] {
			t.Errorf("cell %d: Text = %q, %v; want %q, %v", i, text, ok, texts[i], !wantNull)
		}
		buf = append(buf[:0], "prefix|"...)
		buf, ok = c.AppendText(buf, i)
		if ok == wantNull || string(buf) != "prefix|"+texts[i] {
			t.Errorf("cell %d: AppendText = %q, %v", i, buf, ok)
		}
		v := c.Value(i)
		if !reflect.DeepEqual(v, values[i]) {
			t.Errorf("cell %d: Value = %#v, want %#v", i, v, values[i])
		}
		if _, err := json.Marshal(v); err != nil {
			t.Errorf("cell %d: Value %#v does not marshal: %v", i, v, err)
		}
	}
}

// Text and Value must not alias the batch: the differ keeps them after the
// batch is released.
func TestCellsCopyOutOfTheBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	b := array.NewStringBuilder(mem)
	b.Append("profile-1")
	arr := b.NewArray()
	b.Release()
	c, err := NewCells(arr)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := c.Text(0)
	value := c.Value(0).(string)
	// Scribble over the Arrow buffer as a released-and-reused one would be.
	data := arr.Data().Buffers()[2].Bytes()
	for i := range data {
		data[i] = 'x'
	}
	if text != "profile-1" || value != "profile-1" {
		t.Fatalf("Text = %q, Value = %q after the buffer changed", text, value)
	}
	arr.Release()
	mem.AssertSize(t, 0)
}

func TestCellsSlicedArrays(t *testing.T) {
	mem := memory.NewGoAllocator()
	b := array.NewListBuilder(mem, arrow.BinaryTypes.String)
	vb := b.ValueBuilder().(*array.StringBuilder)
	for _, l := range [][]string{{"a"}, {"b", "c"}, {"d"}} {
		b.Append(true)
		vb.AppendValues(l, nil)
	}
	arr := b.NewArray()
	defer arr.Release()
	sl := array.NewSlice(arr, 1, 3)
	defer sl.Release()
	checkCells(t, sl, []string{`["b","c"]`, `["d"]`}, nil, []any{[]any{"b", "c"}, []any{"d"}})

	fb := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Int64)
	fvb := fb.ValueBuilder().(*array.Int64Builder)
	for k := int64(0); k < 3; k++ {
		fb.Append(true)
		fvb.AppendValues([]int64{k, k * 10}, nil)
	}
	farr := fb.NewArray()
	defer farr.Release()
	fsl := array.NewSlice(farr, 1, 3)
	defer fsl.Release()
	checkCells(t, fsl, []string{"[1,10]", "[2,20]"}, nil, []any{[]any{int64(1), int64(10)}, []any{int64(2), int64(20)}})
}

func TestCellsUnsupported(t *testing.T) {
	mem := memory.NewGoAllocator()
	b := array.NewRunEndEncodedBuilder(mem, arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String)
	defer b.Release()
	arr := b.NewArray()
	defer arr.Release()
	if _, err := NewCells(arr); !errors.Is(err, ErrUnsupportedType) {
		t.Fatalf("err = %v, want ErrUnsupportedType", err)
	}
}
