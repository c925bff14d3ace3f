package executor

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	sf "github.com/snowflakedb/gosnowflake"

	"github.com/linkaud/linkaud/dsl"
)

// Snowflake is the Snowflake warehouse, through gosnowflake's Arrow batches.
//
// Results arrive as the chunks Snowflake's result set is stored in: the
// first inline, the rest downloaded one at a time as the reader advances
// (the next one is fetched while the current one is read). gosnowflake's
// batches change type from chunk to chunk (a NUMBER column is int8 in one
// chunk and int64 in the next) and scale numbers by a factor kept in the
// column metadata; the reader normalises them to one schema fixed by the
// result's column types:
//
//	NUMBER(p, 0), p <= 18            int64
//	NUMBER(p, s) otherwise           decimal128(p, s), exact
//	FLOAT                            float64
//	TEXT                             utf8
//	BOOLEAN                          bool
//	DATE                             date32
//	TIME                             time64[ns]
//	TIMESTAMP_NTZ                    timestamp[us] (wall clock, read as UTC)
//	TIMESTAMP_LTZ, TIMESTAMP_TZ      timestamp[us, UTC]
//	BINARY                           binary
//	VARIANT, OBJECT, ARRAY, others   utf8 (JSON text)
type Snowflake struct {
	db        *sql.DB
	tagPrefix string
	timeout   time.Duration
	log       *slog.Logger
	secrets   []string // redacted from every error

	closing     context.Context
	closeCancel context.CancelCauseFunc
}

var _ Warehouse = (*Snowflake)(nil)

// Snowflake warehouse settings (dsl checks their names and kinds).
const (
	sfSettingPrivateKeyPath = "private_key_path"
	sfSettingRole           = "role"
	sfSettingWarehouse      = "warehouse"
	sfSettingDatabase       = "database"
	sfSettingSchema         = "schema"
	sfSettingQueryTag       = "query_tag"
	sfSettingTimeout        = "timeout"
)

// gosnowflakeLog sends gosnowflake's own log lines (it logs through a
// package-level logrus logger, to stderr by default) to slog at debug
// level: its failures reach the user as our errors, and its text format
// would break a daemon's JSON logs.
var gosnowflakeLog sync.Once

type debugLines struct{ log *slog.Logger }

func (w debugLines) Write(p []byte) (int, error) {
	w.log.Debug("gosnowflake", "line", strings.TrimSpace(string(p)))
	return len(p), nil
}

func openSnowflake(ctx context.Context, w *dsl.Warehouse, opts Options) (*Snowflake, error) {
	gosnowflakeLog.Do(func() { sf.GetLogger().SetOutput(debugLines{opts.Logger}) })
	if !w.DSN.IsSet() {
		return nil, errors.New(`snowflake: the warehouse needs dsn env("NAME")`)
	}
	dsn, ok := opts.LookupEnv(w.DSN.Env)
	if !ok || strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("snowflake: %s is not set", w.DSN)
	}
	secrets := []string{dsn}
	if u, err := url.Parse("snowflake://" + dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p)
		}
	}
	// Errors from here on may quote the DSN: redact them.
	fail := func(format string, args ...any) (*Snowflake, error) {
		err := fmt.Errorf(format, args...)
		return nil, &redactedError{redact(err.Error(), secrets), err}
	}

	var key *rsa.PrivateKey
	if p := w.Settings[sfSettingPrivateKeyPath]; p != "" {
		path, err := settingValue(p, opts.LookupEnv)
		if err != nil {
			return nil, fmt.Errorf("snowflake: %s: %w", sfSettingPrivateKeyPath, err)
		}
		if key, err = readPrivateKey(path); err != nil {
			return nil, fmt.Errorf("snowflake: %s: %w", sfSettingPrivateKeyPath, err)
		}
		// Before parsing: without a password, the default authenticator
		// makes ParseDSN fail.
		dsn = withDSNParam(dsn, "authenticator", "SNOWFLAKE_JWT")
		secrets = append(secrets, dsn)
	}
	cfg, err := sf.ParseDSN(dsn)
	if err != nil {
		return fail("snowflake: the DSN in %s does not parse: %v", w.DSN, err)
	}
	if cfg.PrivateKey != nil {
		// privateKey=… in the DSN is the key itself.
		if v := cfg.Params["privateKey"]; v != nil {
			secrets = append(secrets, *v)
		}
	}
	if key != nil {
		cfg.PrivateKey = key
		cfg.Authenticator = sf.AuthTypeJwt
	}
	for setting, field := range map[string]*string{
		sfSettingRole: &cfg.Role, sfSettingWarehouse: &cfg.Warehouse,
		sfSettingDatabase: &cfg.Database, sfSettingSchema: &cfg.Schema,
	} {
		if v := w.Settings[setting]; v != "" {
			if *field, err = settingValue(v, opts.LookupEnv); err != nil {
				return nil, fmt.Errorf("snowflake: %s: %w", setting, err)
			}
		}
	}
	// The planner compares timestamps as UTC (DESIGN.md: a timestamp
	// without a zone is UTC; `within` is relative to the cycle start).
	if cfg.Params == nil {
		cfg.Params = map[string]*string{}
	}
	utc := "UTC"
	cfg.Params["timezone"] = &utc
	if cfg.Application == "" {
		cfg.Application = "linkaud"
	}
	s := &Snowflake{tagPrefix: w.Settings[sfSettingQueryTag], log: opts.Logger, secrets: secrets}
	if v := w.Settings[sfSettingTimeout]; v != "" {
		if s.timeout, err = parseTimeout(v); err != nil {
			return nil, fmt.Errorf("snowflake: %s: %w", sfSettingTimeout, err)
		}
	}
	// max_connections bounds the sessions as for DuckDB (the checker
	// accepts it for both); it wins over the caller's MaxConns.
	if v := w.Settings[settingMaxConns]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("snowflake: %s must be a positive integer, not %q", settingMaxConns, v)
		}
		opts.MaxConns = n
	}
	s.db = sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *cfg))
	s.db.SetMaxOpenConns(opts.MaxConns)
	s.db.SetMaxIdleConns(opts.MaxConns)
	s.closing, s.closeCancel = context.WithCancelCause(context.Background())
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return fail("snowflake: connecting with %s: %v", w.DSN, err)
	}
	s.log.Debug("snowflake: connected", "account", cfg.Account, "user", cfg.User, "role", cfg.Role, "warehouse", cfg.Warehouse)
	return s, nil
}

// redact replaces every secret in msg.
func redact(msg string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			msg = strings.ReplaceAll(msg, sec, "<redacted>")
		}
	}
	return msg
}

// redactedError is err with the secrets taken out of its text; errors.Is
// and errors.As still see err.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// settingValue reads a setting given as text or, written env("NAME"), as
// "env:NAME" (dsl's form), from the environment.
func settingValue(v string, lookup func(string) (string, bool)) (string, error) {
	name, ok := strings.CutPrefix(v, "env:")
	if !ok {
		return v, nil
	}
	val, ok := lookup(name)
	if !ok || val == "" {
		return "", fmt.Errorf("env(%s) is not set", name)
	}
	return val, nil
}

func withDSNParam(dsn, key, value string) string {
	base, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return dsn // ParseDSN reports it
	}
	q.Set(key, value)
	return base + "?" + q.Encode()
}

// readPrivateKey reads an unencrypted RSA key in PEM, PKCS #8 ("BEGIN
// PRIVATE KEY", what Snowflake's key-pair guide makes) or PKCS #1.
func readPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s is not a PEM file", path)
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: Snowflake key-pair authentication needs an RSA key, not %T", path, k)
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return k, nil
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%s is encrypted; decrypt it (openssl pkcs8 -topk8 -nocrypt) and protect the file instead", path)
	}
	return nil, fmt.Errorf("%s holds a %q, not a private key", path, block.Type)
}

// parseTimeout accepts Go durations and the language's days, "30d".
func parseTimeout(v string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("bad duration %q", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad duration %q", v)
	}
	return d, nil
}

// Dialect implements Warehouse.
func (s *Snowflake) Dialect() string { return "snowflake" }

// statement derives a statement's context: the timeout setting, and done
// with cause ErrClosed when the warehouse closes.
func (s *Snowflake) statement(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if s.closing.Err() != nil {
		cancel(ErrClosed)
	}
	stop := context.AfterFunc(s.closing, func() { cancel(ErrClosed) })
	end := func() { stop(); cancel(nil) }
	if s.timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, s.timeout)
		end0 := end
		end = func() { cancelT(); end0() }
	}
	return ctx, end
}

// error prefixes the statement's context error, if any, and redacts.
func (s *Snowflake) error(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = errors.Join(context.Cause(ctx), err)
	}
	return &redactedError{"snowflake: " + redact(err.Error(), s.secrets), err}
}

// quoteSnowflakeTable quotes a table name the way Snowflake resolves it
// unquoted (upper case), while keeping keywords usable as names.
func quoteSnowflakeTable(t dsl.TableName) string {
	q := make([]string, len(t))
	for i, p := range t {
		q[i] = `"` + strings.ReplaceAll(strings.ToUpper(p), `"`, `""`) + `"`
	}
	return strings.Join(q, ".")
}

// Columns implements Warehouse.
func (s *Snowflake) Columns(ctx context.Context, table dsl.TableName) ([]string, error) {
	if len(table) < 1 || len(table) > 3 {
		return nil, fmt.Errorf("snowflake: table name %q has one to three parts", table)
	}
	ctx, end := s.statement(ctx)
	defer end()
	rows, err := s.db.QueryContext(ctx, "SELECT * FROM "+quoteSnowflakeTable(table)+" LIMIT 0")
	if err != nil {
		var se *sf.SnowflakeError
		// 002003 (42S02): "Object … does not exist or not authorized."
		if errors.As(err, &se) && (se.Number == 2003 || se.SQLState == "42S02") {
			return nil, s.error(ctx, fmt.Errorf("%w: %s (%s)", ErrTableNotFound, table, se.Error()))
		}
		return nil, s.error(ctx, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, s.error(ctx, err)
	}
	return cols, nil
}

// Query implements Warehouse.
func (s *Snowflake) Query(ctx context.Context, query string, opts QueryOptions) (array.RecordReader, error) {
	ctx, end := s.statement(ctx)
	ctx = sf.WithArrowBatches(ctx)
	// Exact numbers (scaled integers and decimals, normalised below) and
	// plain Arrow timestamps instead of Snowflake's structs.
	ctx = sf.WithHigherPrecision(ctx)
	ctx = sf.WithArrowBatchesTimestampOption(ctx, sf.UseMicrosecondTimestamp)
	if tag := s.queryTag(opts.Tag); tag != "" {
		ctx = sf.WithQueryTag(ctx, tag)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		err = s.error(ctx, err)
		end()
		return nil, err
	}
	r := &sfReader{ctx: ctx, end: end, conn: conn, mem: memory.DefaultAllocator}
	r.refs.Store(1)
	if err := r.start(query); err != nil {
		err = s.error(ctx, err)
		r.finish()
		return nil, err
	}
	r.s = s
	return r, nil
}

func (s *Snowflake) queryTag(tag string) string {
	switch {
	case s.tagPrefix == "":
		return tag
	case tag == "":
		return s.tagPrefix
	}
	return s.tagPrefix + ":" + tag
}

// Close implements Warehouse.
func (s *Snowflake) Close() error {
	s.closeCancel(ErrClosed)
	return s.db.Close()
}

// sfReader adapts gosnowflake's Arrow batches to an array.RecordReader with
// one schema.
type sfReader struct {
	s    *Snowflake
	ctx  context.Context
	end  func()
	conn *sql.Conn
	mem  memory.Allocator

	rows    driver.Rows
	batches []*sf.ArrowBatch
	schema  *arrow.Schema
	convs   []sfConv

	next    int              // index of the next batch to fetch
	pending chan fetchResult // the prefetch of batches[next-1], if any
	recs    []arrow.RecordBatch
	once    sync.Once
	readerState
}

type fetchResult struct {
	recs []arrow.RecordBatch
	err  error
}

var _ array.RecordReader = (*sfReader)(nil)

func (r *sfReader) start(query string) error {
	err := r.conn.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return errors.New("snowflake: driver connection cannot query")
		}
		var err error
		r.rows, err = q.QueryContext(r.ctx, query, nil)
		return err
	})
	if err != nil {
		return err
	}
	sr, ok := r.rows.(sf.SnowflakeRows)
	if !ok {
		return errors.New("snowflake: rows are not gosnowflake's")
	}
	if r.batches, err = sr.GetArrowBatches(); err != nil {
		return err
	}
	r.schema, r.convs = sfSchema(r.rows)
	return nil
}

// sfSchema derives the reader's schema from the result's column types.
func sfSchema(rows driver.Rows) (*arrow.Schema, []sfConv) {
	names := rows.Columns()
	fields := make([]arrow.Field, len(names))
	convs := make([]sfConv, len(names))
	for i, name := range names {
		typeName := ""
		if t, ok := rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
			typeName = t.ColumnTypeDatabaseTypeName(i)
		}
		var prec, scale int64
		if t, ok := rows.(driver.RowsColumnTypePrecisionScale); ok {
			prec, scale, _ = t.ColumnTypePrecisionScale(i)
		}
		convs[i] = sfColumnConv(typeName, prec, scale)
		fields[i] = arrow.Field{Name: name, Type: convs[i].typ, Nullable: true}
	}
	return arrow.NewSchema(fields, nil), convs
}

// sfConv turns one column of a gosnowflake batch into the reader's type.
type sfConv struct {
	typ  arrow.DataType
	conv func(mem memory.Allocator, col arrow.Array, typ arrow.DataType) (arrow.Array, error)
}

func sfColumnConv(typeName string, prec, scale int64) sfConv {
	switch typeName {
	case "FIXED":
		if scale == 0 && prec <= 18 {
			return sfConv{arrow.PrimitiveTypes.Int64, toInt64}
		}
		if prec < 1 || prec > 38 {
			prec = 38
		}
		return sfConv{&arrow.Decimal128Type{Precision: int32(prec), Scale: int32(scale)}, toDecimal128}
	case "REAL":
		return sfConv{arrow.PrimitiveTypes.Float64, sameOrText}
	case "TEXT":
		return sfConv{arrow.BinaryTypes.String, sameOrText}
	case "BOOLEAN":
		return sfConv{arrow.FixedWidthTypes.Boolean, sameOrText}
	case "DATE":
		return sfConv{arrow.FixedWidthTypes.Date32, sameOrText}
	case "TIME":
		return sfConv{arrow.FixedWidthTypes.Time64ns, sameOrText}
	case "TIMESTAMP_NTZ":
		return sfConv{&arrow.TimestampType{Unit: arrow.Microsecond}, retypeTimestamp}
	case "TIMESTAMP_LTZ", "TIMESTAMP_TZ":
		return sfConv{&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, retypeTimestamp}
	case "BINARY":
		return sfConv{arrow.BinaryTypes.Binary, sameOrText}
	}
	return sfConv{arrow.BinaryTypes.String, sameOrText}
}

// toInt64 widens Snowflake's per-chunk int8…int64 (or a decimal128 of
// scale 0) to int64.
func toInt64(mem memory.Allocator, col arrow.Array, _ arrow.DataType) (arrow.Array, error) {
	if col.DataType().ID() == arrow.INT64 {
		col.Retain()
		return col, nil
	}
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.Reserve(col.Len())
	get, err := intGetter(col)
	if err != nil {
		return nil, err
	}
	for i := 0; i < col.Len(); i++ {
		if col.IsNull(i) {
			b.AppendNull()
			continue
		}
		v, ok := get(i)
		if !ok {
			return nil, fmt.Errorf("snowflake: NUMBER value out of int64 range in a column of precision <= 18")
		}
		b.UnsafeAppend(v)
	}
	return b.NewArray(), nil
}

// toDecimal128 turns scaled integers (the unscaled value of NUMBER(p, s))
// or decimals into decimal128(p, s) with the same unscaled values.
func toDecimal128(mem memory.Allocator, col arrow.Array, typ arrow.DataType) (arrow.Array, error) {
	if d, ok := col.(*array.Decimal128); ok {
		// Same values; make the type exactly the schema's.
		data := array.NewData(typ, d.Len(), d.Data().Buffers(), nil, d.NullN(), d.Data().Offset())
		defer data.Release()
		return array.MakeFromData(data), nil
	}
	get, err := intGetter(col)
	if err != nil {
		return nil, err
	}
	b := array.NewDecimal128Builder(mem, typ.(*arrow.Decimal128Type))
	defer b.Release()
	b.Reserve(col.Len())
	for i := 0; i < col.Len(); i++ {
		if col.IsNull(i) {
			b.AppendNull()
			continue
		}
		v, _ := get(i)
		b.UnsafeAppend(decimal128.FromI64(v))
	}
	return b.NewArray(), nil
}

// intGetter reads an integer column of any width (and a decimal128 that
// fits in int64).
func intGetter(col arrow.Array) (func(int) (int64, bool), error) {
	switch a := col.(type) {
	case *array.Int8:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }, nil
	case *array.Int16:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }, nil
	case *array.Int32:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }, nil
	case *array.Int64:
		return func(i int) (int64, bool) { return a.Value(i), true }, nil
	case *array.Decimal128:
		return func(i int) (int64, bool) {
			small, _, fits := dec128(a.Value(i))
			return small, fits
		}, nil
	}
	return nil, fmt.Errorf("snowflake: NUMBER column arrived as %s", col.DataType())
}

func retypeTimestamp(mem memory.Allocator, col arrow.Array, typ arrow.DataType) (arrow.Array, error) {
	ts, ok := col.DataType().(*arrow.TimestampType)
	if !ok || ts.Unit != arrow.Microsecond {
		return sameOrText(mem, col, typ)
	}
	// Microseconds since the epoch either way; only the zone label differs
	// (gosnowflake labels LTZ with the session's zone).
	data := array.NewData(typ, col.Len(), col.Data().Buffers(), nil, col.NullN(), col.Data().Offset())
	defer data.Release()
	return array.MakeFromData(data), nil
}

// sameOrText passes a column of the expected type through; anything else
// becomes its canonical text, so the schema never changes mid-result.
func sameOrText(mem memory.Allocator, col arrow.Array, typ arrow.DataType) (arrow.Array, error) {
	if arrow.TypeEqual(col.DataType(), typ) {
		col.Retain()
		return col, nil
	}
	if typ.ID() != arrow.STRING {
		return nil, fmt.Errorf("snowflake: column arrived as %s, expected %s", col.DataType(), typ)
	}
	cells, err := NewCells(col)
	if err != nil {
		return nil, err
	}
	b := array.NewStringBuilder(mem)
	defer b.Release()
	var buf []byte
	for i := 0; i < col.Len(); i++ {
		var ok bool
		if buf, ok = cells.AppendText(buf[:0], i); !ok {
			b.AppendNull()
			continue
		}
		b.BinaryBuilder.Append(buf)
	}
	return b.NewArray(), nil
}

func (r *sfReader) convert(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if int(rec.NumCols()) != len(r.convs) {
		return nil, fmt.Errorf("snowflake: batch has %d columns, result %d", rec.NumCols(), len(r.convs))
	}
	cols := make([]arrow.Array, len(r.convs))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j, c := range r.convs {
		col, err := c.conv(r.mem, rec.Column(j), c.typ)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", r.schema.Field(j).Name, err)
		}
		cols[j] = col
	}
	return array.NewRecordBatch(r.schema, cols, rec.NumRows()), nil
}

// fetch downloads batch i (in the background) and converts its records.
func (r *sfReader) fetch(i int) chan fetchResult {
	ch := make(chan fetchResult, 1)
	go func() {
		raw, err := r.batches[i].WithContext(r.ctx).Fetch()
		if err != nil {
			ch <- fetchResult{err: err}
			return
		}
		var out []arrow.RecordBatch
		for _, rec := range *raw {
			if err == nil {
				var c arrow.RecordBatch
				if c, err = r.convert(rec); err == nil {
					out = append(out, c)
				}
			}
			rec.Release()
		}
		*raw = nil // let the batch's memory go with it
		if err != nil {
			for _, c := range out {
				c.Release()
			}
			out = nil
		}
		ch <- fetchResult{out, err}
	}()
	return ch
}

func (r *sfReader) Schema() *arrow.Schema { return r.schema }

func (r *sfReader) Next() bool {
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	for !r.done {
		if len(r.recs) > 0 {
			r.current, r.recs = r.recs[0], r.recs[1:]
			if r.current.NumRows() == 0 {
				r.current.Release()
				r.current = nil
				continue
			}
			return true
		}
		if r.ctx.Err() != nil {
			return r.fail(context.Cause(r.ctx))
		}
		if r.pending == nil {
			if r.next >= len(r.batches) {
				r.done = true
				return false
			}
			r.pending = r.fetch(r.next)
			r.next++
		}
		res := <-r.pending
		r.pending = nil
		if res.err != nil {
			return r.fail(r.s.error(r.ctx, res.err))
		}
		r.recs = res.recs
		// Download the next chunk while this one is read.
		if r.next < len(r.batches) {
			r.pending = r.fetch(r.next)
			r.next++
		}
	}
	return false
}

func (r *sfReader) Release() {
	if r.refs.Add(-1) == 0 {
		r.finish()
	}
}

func (r *sfReader) finish() {
	r.once.Do(func() {
		r.end() // cancels a prefetch still downloading
		if r.pending != nil {
			if res := <-r.pending; res.err == nil {
				for _, c := range res.recs {
					c.Release()
				}
			}
		}
		for _, c := range r.recs {
			c.Release()
		}
		if r.current != nil {
			r.current.Release()
			r.current = nil
		}
		if r.rows != nil {
			if err := r.rows.Close(); err != nil && !errors.Is(err, io.EOF) && r.s != nil {
				r.s.log.Debug("snowflake: closing rows", "err", err)
			}
		}
		r.conn.Close()
	})
}
