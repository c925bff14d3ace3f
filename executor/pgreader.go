package executor

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linkaud/linkaud/dsl"
)

// pgBatchRows is the rows of one Arrow batch read from PostgreSQL.
const pgBatchRows = 4096

// Type OIDs (pg_type.dat) the reader decodes.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidUnknown     = 705
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidInterval    = 1186
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// pgEpoch is PostgreSQL's zero time, 2000-01-01 UTC, in Unix microseconds
// and days.
const (
	pgEpochMicros = 946684800 * 1_000_000
	pgEpochDays   = 10957
)

// pgReader streams one statement's rows as Arrow batches. A goroutine of
// its own reads the rows off the connection and builds the batches, up to
// pgAhead ahead of the consumer, so that decoding overlaps the consumer's
// work (the differ's merge) and the network's.
type pgReader struct {
	pg   *Postgres
	ctx  context.Context
	end  func()
	conn *pgxpool.Conn
	rr   *pgconn.ResultReader
	cols []pgColumn

	batches chan pgBatch  // from produce; closed when it returns
	stop    chan struct{} // closed by finish: produce gives up
	clean   bool          // produce read the result to its end without error
	once    sync.Once
	// restore is the statement that puts back a session setting the
	// query changed (QueryOptions.Selective), run before the connection
	// goes back to the pool; if it fails the connection is closed.
	restore string

	schema *arrow.Schema
	readerState
}

// pgAhead is the batches the producer may build ahead of the consumer.
const pgAhead = 2

type pgBatch struct {
	rec arrow.RecordBatch
	err error
}

var _ array.RecordReader = (*pgReader)(nil)

// pgColumn decodes one result column into its Arrow builder.
type pgColumn struct {
	name   string
	format int16 // 0 text, 1 binary
	typ    arrow.DataType
	decode func(b array.Builder, v []byte) error // v is never nil
}

func (r *pgReader) start(query string) error {
	pc := r.conn.Conn().PgConn()
	sd, err := pc.Prepare(r.ctx, "", query, nil)
	if err != nil {
		// The server refused the statement: the connection is fine.
		var pe *pgconn.PgError
		r.clean = errors.As(err, &pe) && r.ctx.Err() == nil
		return err
	}
	binaryOK := r.pg.dialect != "redshift"
	fields := make([]arrow.Field, len(sd.Fields))
	formats := make([]int16, len(sd.Fields))
	r.cols = make([]pgColumn, len(sd.Fields))
	for i, f := range sd.Fields {
		c := pgColumnFor(f, binaryOK)
		r.cols[i] = c
		formats[i] = c.format
		fields[i] = arrow.Field{Name: f.Name, Type: c.typ, Nullable: true}
	}
	r.schema = arrow.NewSchema(fields, nil)
	r.rr = pc.ExecPrepared(r.ctx, "", nil, nil, formats)
	r.batches = make(chan pgBatch, pgAhead)
	r.stop = make(chan struct{})
	go r.produce()
	return nil
}

// produce reads the result into batches until it ends, fails, or finish
// stops it; it owns the result reader.
func (r *pgReader) produce() {
	defer close(r.batches)
	bld := array.NewRecordBuilder(memory.DefaultAllocator, r.schema)
	defer bld.Release()
	send := func(b pgBatch) bool {
		select {
		case r.batches <- b:
			return true
		case <-r.stop:
			if b.rec != nil {
				b.rec.Release()
			}
			return false
		}
	}
	for {
		n := 0
		for n < pgBatchRows && r.rr.NextRow() {
			for i, v := range r.rr.Values() {
				b := bld.Field(i)
				if v == nil {
					b.AppendNull()
					continue
				}
				if err := r.cols[i].decode(b, v); err != nil {
					r.rr.Close()
					send(pgBatch{err: r.pg.error(r.ctx, fmt.Errorf("column %s: %w", r.cols[i].name, err))})
					return
				}
			}
			n++
		}
		if n == pgBatchRows {
			if !send(pgBatch{rec: bld.NewRecordBatch()}) {
				r.rr.Close()
				return
			}
			continue
		}
		// The result ended, or failed: Close reports which.
		_, err := r.rr.Close()
		if err != nil {
			bld.NewRecordBatch().Release()
			send(pgBatch{err: r.pg.error(r.ctx, err)})
			return
		}
		if n > 0 && !send(pgBatch{rec: bld.NewRecordBatch()}) {
			return
		}
		r.clean = true
		return
	}
}

func (r *pgReader) Schema() *arrow.Schema { return r.schema }

func (r *pgReader) Next() bool {
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	if r.done {
		return false
	}
	b, ok := <-r.batches
	switch {
	case !ok:
		r.done = true
		r.finish()
		return false
	case b.err != nil:
		r.readerState.fail(b.err)
		r.finish()
		return false
	}
	r.current = b.rec
	return true
}

func (r *pgReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	r.finish()
}

// finish stops the producer, cancelling the statement if it still streams
// (the context watcher sends the server a cancel request), waits for it,
// and gives the connection back, or closes it when the protocol may be
// mid-message; it runs once.
func (r *pgReader) finish() {
	r.once.Do(func() {
		if r.batches != nil {
			close(r.stop)
			// Whatever it blocks in — a send, or a read the
			// cancellation ends — the producer returns.
			r.end()
			for b := range r.batches {
				if b.rec != nil {
					b.rec.Release()
				}
			}
		}
		r.end()
		if r.clean && r.restore != "" {
			if _, err := r.conn.Exec(context.Background(), r.restore); err != nil {
				r.clean = false
			}
		}
		if r.clean {
			r.conn.Release()
		} else {
			r.conn.Hijack().Close(context.Background())
		}
		r.conn = nil
	})
}

// pgColumnFor chooses the Arrow type and decoder of a result column; with
// binaryOK false every value comes as text.
func pgColumnFor(f pgconn.FieldDescription, binaryOK bool) pgColumn {
	c := pgColumn{name: f.Name}
	bin := func(typ arrow.DataType, text, binary func(array.Builder, []byte) error) pgColumn {
		c.typ = typ
		if binaryOK && binary != nil {
			c.format, c.decode = 1, binary
		} else {
			c.format, c.decode = 0, text
		}
		return c
	}
	switch f.DataTypeOID {
	case oidBool:
		return bin(arrow.FixedWidthTypes.Boolean, textBool, func(b array.Builder, v []byte) error {
			if len(v) != 1 {
				return errBinary("boolean", v)
			}
			b.(*array.BooleanBuilder).Append(v[0] != 0)
			return nil
		})
	case oidInt2:
		return bin(arrow.PrimitiveTypes.Int16, textInt(16, func(b array.Builder, n int64) { b.(*array.Int16Builder).Append(int16(n)) }),
			func(b array.Builder, v []byte) error {
				if len(v) != 2 {
					return errBinary("smallint", v)
				}
				b.(*array.Int16Builder).Append(int16(binary.BigEndian.Uint16(v)))
				return nil
			})
	case oidInt4:
		return bin(arrow.PrimitiveTypes.Int32, textInt(32, func(b array.Builder, n int64) { b.(*array.Int32Builder).Append(int32(n)) }),
			func(b array.Builder, v []byte) error {
				if len(v) != 4 {
					return errBinary("integer", v)
				}
				b.(*array.Int32Builder).Append(int32(binary.BigEndian.Uint32(v)))
				return nil
			})
	case oidInt8, oidOID:
		return bin(arrow.PrimitiveTypes.Int64, textInt(64, func(b array.Builder, n int64) { b.(*array.Int64Builder).Append(n) }),
			func(b array.Builder, v []byte) error {
				switch len(v) {
				case 8:
					b.(*array.Int64Builder).Append(int64(binary.BigEndian.Uint64(v)))
				case 4:
					b.(*array.Int64Builder).Append(int64(binary.BigEndian.Uint32(v)))
				default:
					return errBinary("bigint", v)
				}
				return nil
			})
	case oidFloat4:
		return bin(arrow.PrimitiveTypes.Float32, func(b array.Builder, v []byte) error {
			f, err := strconv.ParseFloat(string(v), 32)
			if err != nil {
				return err
			}
			b.(*array.Float32Builder).Append(float32(f))
			return nil
		}, func(b array.Builder, v []byte) error {
			if len(v) != 4 {
				return errBinary("real", v)
			}
			b.(*array.Float32Builder).Append(math.Float32frombits(binary.BigEndian.Uint32(v)))
			return nil
		})
	case oidFloat8:
		return bin(arrow.PrimitiveTypes.Float64, func(b array.Builder, v []byte) error {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return err
			}
			b.(*array.Float64Builder).Append(f)
			return nil
		}, func(b array.Builder, v []byte) error {
			if len(v) != 8 {
				return errBinary("double precision", v)
			}
			b.(*array.Float64Builder).Append(math.Float64frombits(binary.BigEndian.Uint64(v)))
			return nil
		})
	case oidNumeric:
		return numericColumn(c, f.TypeModifier)
	case oidText, oidVarchar, oidBPChar, oidName, oidUnknown:
		return bin(arrow.BinaryTypes.String, textString, textString)
	case oidBytea:
		return bin(arrow.BinaryTypes.Binary, func(b array.Builder, v []byte) error {
			// The hex format, \x0102…, since PostgreSQL 9.0.
			s, ok := strings.CutPrefix(string(v), `\x`)
			if !ok {
				return fmt.Errorf("bytea text %.20q is not in hex format", v)
			}
			d, err := hex.DecodeString(s)
			if err != nil {
				return err
			}
			b.(*array.BinaryBuilder).Append(d)
			return nil
		}, func(b array.Builder, v []byte) error {
			b.(*array.BinaryBuilder).Append(v)
			return nil
		})
	case oidUUID:
		return bin(arrow.BinaryTypes.String, textString, func(b array.Builder, v []byte) error {
			if len(v) != 16 {
				return errBinary("uuid", v)
			}
			h := hex.EncodeToString(v)
			b.(*array.StringBuilder).Append(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
			return nil
		})
	case oidDate:
		return bin(arrow.FixedWidthTypes.Date32, func(b array.Builder, v []byte) error {
			t, err := time.Parse("2006-01-02", string(v))
			if err != nil {
				return fmt.Errorf("date %q: %w", v, err)
			}
			b.(*array.Date32Builder).Append(arrow.Date32FromTime(t))
			return nil
		}, func(b array.Builder, v []byte) error {
			if len(v) != 4 {
				return errBinary("date", v)
			}
			d := int32(binary.BigEndian.Uint32(v))
			if d == math.MaxInt32 || d == math.MinInt32 {
				return errors.New("an infinite date has no calendar value: cast or filter it")
			}
			b.(*array.Date32Builder).Append(arrow.Date32(d + pgEpochDays))
			return nil
		})
	case oidTimestamp, oidTimestampTZ:
		typ := &arrow.TimestampType{Unit: arrow.Microsecond}
		layout := "2006-01-02 15:04:05.999999"
		if f.DataTypeOID == oidTimestampTZ {
			typ.TimeZone = "UTC"
			layout = "2006-01-02 15:04:05.999999-07"
		}
		return bin(typ, func(b array.Builder, v []byte) error {
			t, err := time.Parse(layout, string(v))
			if err != nil {
				return fmt.Errorf("timestamp %q: %w", v, err)
			}
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMicro()))
			return nil
		}, func(b array.Builder, v []byte) error {
			if len(v) != 8 {
				return errBinary("timestamp", v)
			}
			us := int64(binary.BigEndian.Uint64(v))
			if us == math.MaxInt64 || us == math.MinInt64 {
				return errors.New("an infinite timestamp has no calendar value: cast or filter it")
			}
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(us + pgEpochMicros))
			return nil
		})
	case oidTime:
		return bin(arrow.FixedWidthTypes.Time64us, func(b array.Builder, v []byte) error {
			t, err := time.Parse("15:04:05.999999", string(v))
			if err != nil {
				return fmt.Errorf("time %q: %w", v, err)
			}
			us := int64(t.Hour())*3600e6 + int64(t.Minute())*60e6 + int64(t.Second())*1e6 + int64(t.Nanosecond()/1000)
			b.(*array.Time64Builder).Append(arrow.Time64(us))
			return nil
		}, func(b array.Builder, v []byte) error {
			if len(v) != 8 {
				return errBinary("time", v)
			}
			b.(*array.Time64Builder).Append(arrow.Time64(int64(binary.BigEndian.Uint64(v))))
			return nil
		})
	case oidInterval:
		if binaryOK {
			return bin(arrow.FixedWidthTypes.MonthDayNanoInterval, nil, func(b array.Builder, v []byte) error {
				if len(v) != 16 {
					return errBinary("interval", v)
				}
				us := int64(binary.BigEndian.Uint64(v[0:8]))
				days := int32(binary.BigEndian.Uint32(v[8:12]))
				months := int32(binary.BigEndian.Uint32(v[12:16]))
				b.(*array.MonthDayNanoIntervalBuilder).Append(arrow.MonthDayNanoInterval{Months: months, Days: days, Nanoseconds: us * 1000})
				return nil
			})
		}
	case oidJSONB:
		// Text: jsonb's binary form is a version byte before the text.
		return bin(arrow.BinaryTypes.String, textString, nil)
	}
	// Any other type (json, enums, arrays, inet, …): its text form.
	c.typ, c.format, c.decode = arrow.BinaryTypes.String, 0, textString
	return c
}

func errBinary(typ string, v []byte) error {
	return fmt.Errorf("%s value of %d bytes", typ, len(v))
}

func textString(b array.Builder, v []byte) error {
	b.(*array.StringBuilder).BinaryBuilder.Append(v)
	return nil
}

func textBool(b array.Builder, v []byte) error {
	switch string(v) {
	case "t", "true":
		b.(*array.BooleanBuilder).Append(true)
	case "f", "false":
		b.(*array.BooleanBuilder).Append(false)
	default:
		return fmt.Errorf("boolean %q", v)
	}
	return nil
}

func textInt(bits int, add func(array.Builder, int64)) func(array.Builder, []byte) error {
	return func(b array.Builder, v []byte) error {
		n, err := strconv.ParseInt(string(v), 10, bits)
		if err != nil {
			return err
		}
		add(b, n)
		return nil
	}
}

// numericColumn reads numeric(p, s) exactly, from its text form, as a
// decimal of that precision and scale; a numeric without precision (SUM's,
// or a column declared numeric) has no fixed scale, so its exact text is
// kept.
func numericColumn(c pgColumn, typmod int32) pgColumn {
	c.format = 0
	if typmod < 4 {
		c.typ, c.decode = arrow.BinaryTypes.String, textString
		return c
	}
	p, s := int32((typmod-4)>>16)&0xffff, int32(typmod-4)&0xffff
	switch {
	case p <= 38:
		c.typ = &arrow.Decimal128Type{Precision: p, Scale: s}
		c.decode = func(b array.Builder, v []byte) error {
			n, err := decimal128.FromString(string(v), p, s)
			if err != nil {
				return fmt.Errorf("numeric %q: %w", v, err)
			}
			b.(*array.Decimal128Builder).Append(n)
			return nil
		}
	case p <= 76:
		c.typ = &arrow.Decimal256Type{Precision: p, Scale: s}
		c.decode = func(b array.Builder, v []byte) error {
			n, err := decimal256.FromString(string(v), p, s)
			if err != nil {
				return fmt.Errorf("numeric %q: %w", v, err)
			}
			b.(*array.Decimal256Builder).Append(n)
			return nil
		}
	default:
		c.typ, c.decode = arrow.BinaryTypes.String, textString
	}
	return c
}

// pgClass is what the checks may do with a column of type oid.
func pgClass(oid uint32) dsl.TypeClass {
	switch oid {
	case oidBool:
		return dsl.ClassBool
	case oidInt2, oidInt4, oidInt8, oidOID, oidFloat4, oidFloat8, oidNumeric:
		return dsl.ClassNumber
	case oidText, oidVarchar, oidBPChar, oidName, oidUnknown:
		return dsl.ClassText
	case oidDate, oidTimestamp, oidTimestampTZ:
		return dsl.ClassTime
	case oidUUID, oidJSON, oidJSONB, oidBytea, oidTime, oidInterval:
		return dsl.ClassOther
	}
	return dsl.ClassUnknown
}

func pgTypeName(oid uint32) string {
	if n, ok := map[uint32]string{
		oidBool: "boolean", oidBytea: "bytea", oidName: "name", oidInt8: "bigint", oidInt2: "smallint",
		oidInt4: "integer", oidText: "text", oidOID: "oid", oidJSON: "json", oidFloat4: "real",
		oidFloat8: "double precision", oidBPChar: "character", oidVarchar: "character varying",
		oidDate: "date", oidTime: "time", oidTimestamp: "timestamp", oidTimestampTZ: "timestamptz",
		oidInterval: "interval", oidNumeric: "numeric", oidUUID: "uuid", oidJSONB: "jsonb",
	}[oid]; ok {
		return n
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10)
}
