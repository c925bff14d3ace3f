package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cenkalti/backoff/v5"

	"github.com/linkaud/linkaud/dsl"
)

// Databricks is a Databricks SQL warehouse, spoken to through the SQL
// Statement Execution API (https://docs.databricks.com/api/workspace/statementexecution;
// no Go driver for Databricks is served to this project):
//
//   - A statement is submitted with POST /api/2.0/sql/statements, format
//     ARROW_STREAM and disposition EXTERNAL_LINKS, asynchronously
//     (wait_timeout 0s), so that it has an id to cancel from the start.
//   - GET /api/2.0/sql/statements/{id} is polled until the statement is
//     SUCCEEDED, FAILED, CANCELED or CLOSED; the success carries the
//     result's manifest (schema, chunk count, truncated) and the links of
//     the first chunk.
//   - Chunks are read in order: each chunk's presigned link (from the
//     statement, or GET …/result/chunks/{n}) is downloaded without the
//     Authorization header, as the API requires, and its body, an Arrow IPC
//     stream, is decoded batch by batch as it arrives (arrow-go's ipc
//     reader). A goroutine of its own reads up to dbxAhead batches ahead of
//     the consumer, so memory holds a few batches whatever the result's
//     size. A link that expired is fetched again.
//   - A cancelled context, the timeout setting or Close cancels a statement
//     still running (POST …/cancel).
//   - Requests the API answers 429 or 503 are retried with exponential
//     backoff, honouring Retry-After (Databricks REST API: rate limits).
//
// Timestamps: the planner writes UTC literals, and a TIMESTAMP_NTZ or DATE
// compared with them is read in the session time zone, so Open refuses a
// warehouse whose TIMEZONE configuration is not UTC (the default).
type Databricks struct {
	base        *url.URL // https://HOST
	warehouseID string
	catalog     string
	schema      string
	timeout     time.Duration
	tokenEnv    string
	token       string
	api         *http.Client // sends the token
	links       *http.Client // presigned links: never the token
	log         *slog.Logger
	secrets     []string
	slots       chan struct{} // statements running at once
	poll        time.Duration // first polling interval

	closing     context.Context
	closeCancel context.CancelCauseFunc
}

var (
	_ Warehouse       = (*Databricks)(nil)
	_ dsl.ColumnTyper = (*Databricks)(nil)
)

// Databricks warehouse settings (dsl checks their names and kinds).
const (
	dbxSettingHost        = "host"
	dbxSettingWarehouseID = "warehouse_id"
	dbxSettingToken       = "token"
	dbxSettingCatalog     = "catalog"
	dbxSettingSchema      = "schema"
	dbxSettingTimeout     = "timeout"
)

// dbxAhead is the batches the reader decodes ahead of its consumer.
const dbxAhead = 2

func openDatabricks(ctx context.Context, w *dsl.Warehouse, opts Options) (*Databricks, error) {
	d := &Databricks{log: opts.Logger, slots: make(chan struct{}, opts.MaxConns), poll: 100 * time.Millisecond}
	tok := w.Settings[dbxSettingToken]
	name, ok := strings.CutPrefix(tok, "env:")
	if !ok {
		return nil, errors.New(`databricks: the warehouse needs token env("NAME")`)
	}
	d.tokenEnv = "env(" + name + ")"
	if d.token, ok = opts.LookupEnv(name); !ok || strings.TrimSpace(d.token) == "" {
		return nil, fmt.Errorf("databricks: %s is not set", d.tokenEnv)
	}
	d.token = strings.TrimSpace(d.token)
	d.secrets = []string{d.token}
	var err error
	for setting, field := range map[string]*string{
		dbxSettingWarehouseID: &d.warehouseID, dbxSettingCatalog: &d.catalog, dbxSettingSchema: &d.schema,
	} {
		if v := w.Settings[setting]; v != "" {
			if *field, err = settingValue(v, opts.LookupEnv); err != nil {
				return nil, fmt.Errorf("databricks: %s: %w", setting, err)
			}
		}
	}
	if d.warehouseID == "" {
		return nil, errors.New("databricks: the warehouse needs warehouse_id")
	}
	host, err := settingValue(w.Settings[dbxSettingHost], opts.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("databricks: %s: %w", dbxSettingHost, err)
	}
	if d.base, err = databricksBase(host); err != nil {
		return nil, fmt.Errorf("databricks: %s: %w", dbxSettingHost, err)
	}
	if v := w.Settings[dbxSettingTimeout]; v != "" {
		if d.timeout, err = parseTimeout(v); err != nil {
			return nil, fmt.Errorf("databricks: %s: %w", dbxSettingTimeout, err)
		}
	}
	d.api = &http.Client{Transport: http.DefaultTransport}
	d.links = &http.Client{Transport: http.DefaultTransport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return nil // a presigned link may redirect; no header of ours goes along
	}}
	d.closing, d.closeCancel = context.WithCancelCause(context.Background())

	// One statement now, so that a bad host, token or warehouse fails
	// here rather than in a cycle, and the session time zone is known.
	zone, err := d.timeZone(ctx)
	if err != nil {
		return nil, err
	}
	switch strings.ToUpper(zone) {
	case "UTC", "ETC/UTC", "Z", "GMT", "ETC/GMT", "+00:00", "UTC+00:00", "Z+00:00":
	default:
		return nil, fmt.Errorf("databricks: the SQL warehouse's session time zone is %s: linkaud compares timestamps as UTC (DESIGN.md), so set the warehouse's TIMEZONE configuration parameter to UTC (SQL warehouse settings, SQL configuration parameters)", zone)
	}
	d.log.Debug("databricks: connected", "host", d.base.Host, "warehouse_id", d.warehouseID, "catalog", d.catalog, "schema", d.schema)
	return d, nil
}

// databricksBase is the workspace URL of the host setting: a host name, or
// an https URL; plain http only to a loopback address (a test server), so
// that the token never travels in clear.
func databricksBase(host string) (*url.URL, error) {
	host = strings.TrimSpace(host)
	if host == "" {
		return nil, errors.New("empty host")
	}
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "https":
	case "http":
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("%s: the token is only sent over https", host)
		}
	default:
		return nil, fmt.Errorf("%s: not an https URL", host)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%s: the workspace host, e.g. dbc-a1b2c3d4-e5f6.cloud.databricks.com", host)
	}
	u.Path = ""
	return u, nil
}

// Dialect implements Warehouse.
func (d *Databricks) Dialect() string { return "databricks" }

// Close implements Warehouse: statements running are cancelled.
func (d *Databricks) Close() error {
	d.closeCancel(ErrClosed)
	return nil
}

// The API's shapes (StatementResponse and its parts).
type (
	dbxStatement struct {
		StatementID string        `json:"statement_id"`
		Status      dbxStatus     `json:"status"`
		Manifest    *dbxManifest  `json:"manifest,omitempty"`
		Result      *dbxChunkData `json:"result,omitempty"`
	}
	dbxStatus struct {
		State string    `json:"state"`
		Error *dbxError `json:"error,omitempty"`
	}
	dbxError struct {
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}
	dbxManifest struct {
		Format          string `json:"format"`
		TotalChunkCount int    `json:"total_chunk_count"`
		TotalRowCount   int64  `json:"total_row_count"`
		Truncated       bool   `json:"truncated"`
		Schema          struct {
			ColumnCount int         `json:"column_count"`
			Columns     []dbxColumn `json:"columns"`
		} `json:"schema"`
	}
	dbxColumn struct {
		Name      string `json:"name"`
		Position  int    `json:"position"`
		TypeName  string `json:"type_name"`
		TypeText  string `json:"type_text"`
		Precision int32  `json:"type_precision"`
		Scale     int32  `json:"type_scale"`
	}
	// dbxChunkData is a statement's result and GET …/result/chunks/{n}'s
	// answer (ResultData).
	dbxChunkData struct {
		ChunkIndex    int       `json:"chunk_index"`
		ExternalLinks []dbxLink `json:"external_links"`
	}
	dbxLink struct {
		ChunkIndex     int               `json:"chunk_index"`
		RowOffset      int64             `json:"row_offset"`
		RowCount       int64             `json:"row_count"`
		ExternalLink   string            `json:"external_link"`
		Expiration     string            `json:"expiration"`
		HTTPHeaders    map[string]string `json:"http_headers"`
		NextChunkIndex *int              `json:"next_chunk_index"`
	}
)

// dbxRequest is the body of POST /api/2.0/sql/statements.
type dbxRequest struct {
	Statement     string `json:"statement"`
	WarehouseID   string `json:"warehouse_id"`
	Catalog       string `json:"catalog,omitempty"`
	Schema        string `json:"schema,omitempty"`
	Format        string `json:"format"`
	Disposition   string `json:"disposition"`
	WaitTimeout   string `json:"wait_timeout"`
	OnWaitTimeout string `json:"on_wait_timeout"`
}

// apiError is an HTTP error of the REST API: its status and the body's
// error_code and message.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.status)
	if e.code != "" && e.code != strconv.Itoa(e.status) {
		msg += " " + e.code
	}
	if e.message != "" {
		msg += ": " + e.message
	}
	return msg
}

// dbxMaxTries bounds the attempts of one API request answered 429 or 503.
const dbxMaxTries = 8

// call sends one API request with the token, retrying 429 and 503 (and a
// lost connection) with exponential backoff, waiting at least what
// Retry-After says, and decodes a 200's JSON into out.
func (d *Databricks) call(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.Reset()
	for attempt := 1; ; attempt++ {
		retryAfter, retry, err := d.do(ctx, method, path, payload, out)
		if err == nil || !retry || attempt == dbxMaxTries || ctx.Err() != nil {
			if err != nil && retry && attempt == dbxMaxTries {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return err
		}
		wait := b.NextBackOff()
		if retryAfter > wait {
			wait = retryAfter
		}
		d.log.Debug("databricks: retrying", "path", path, "in", wait, "err", redact(err.Error(), d.secrets))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}

// do sends one request; retry says whether another attempt may succeed.
func (d *Databricks) do(ctx context.Context, method, path string, payload []byte, out any) (retryAfter time.Duration, retry bool, err error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base.String()+path, rd)
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "linkaud")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.api.Do(req)
	if err != nil {
		return 0, ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, ctx.Err() == nil, err
	}
	if resp.StatusCode != http.StatusOK {
		ae := &apiError{status: resp.StatusCode}
		var e dbxError
		if json.Unmarshal(data, &e) == nil && (e.ErrorCode != "" || e.Message != "") {
			ae.code, ae.message = e.ErrorCode, e.Message
		} else {
			ae.message = strings.TrimSpace(string(data))
			if len(ae.message) > 300 {
				ae.message = ae.message[:300]
			}
		}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
				retryAfter = time.Duration(s) * time.Second
			}
			return retryAfter, true, ae
		}
		return 0, false, ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return 0, false, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return 0, false, nil
}

// statement derives a statement's context: the timeout setting, and done
// with cause ErrClosed when the warehouse closes.
func (d *Databricks) statement(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if d.closing.Err() != nil {
		cancel(ErrClosed)
	}
	stop := context.AfterFunc(d.closing, func() { cancel(ErrClosed) })
	end := func() { stop(); cancel(nil) }
	if d.timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, d.timeout)
		end0 := end
		end = func() { cancelT(); end0() }
	}
	return ctx, end
}

// error words err for the audience's status: the warehouse's message, the
// context's cause first if it ended the statement, secrets redacted.
func (d *Databricks) error(ctx context.Context, err error) error {
	msg := err.Error()
	var ae *apiError
	if errors.As(err, &ae) && (ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden) {
		msg = fmt.Sprintf("the workspace refused the token in %s (%s): it may have expired or lack CAN USE on the SQL warehouse", d.tokenEnv, msg)
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		if errors.Is(cause, context.DeadlineExceeded) && d.timeout > 0 {
			cause = fmt.Errorf("the statement ran longer than the timeout setting (%s)", d.timeout)
		}
		err = errors.Join(cause, err)
		if !strings.Contains(msg, cause.Error()) {
			msg = cause.Error() + ": " + msg
		}
	}
	for _, undefined := range []string{"TABLE_OR_VIEW_NOT_FOUND", "UNRESOLVED_COLUMN", "SCHEMA_NOT_FOUND", "CATALOG_NOT_FOUND", "UNRESOLVED_ROUTINE", "UNRESOLVED_FIELD"} {
		if strings.Contains(msg, undefined) {
			err = errors.Join(ErrUndefined, err)
			break
		}
	}
	return &redactedError{"databricks: " + redact(msg, d.secrets), err}
}

// statementError is a statement that ended without success.
type statementError struct {
	state string
	err   *dbxError
}

func (e *statementError) Error() string {
	if e.err == nil || e.err.Message == "" {
		return "the statement ended " + e.state
	}
	msg := e.err.Message
	if e.err.ErrorCode != "" && !strings.Contains(msg, e.err.ErrorCode) {
		msg += " (" + e.err.ErrorCode + ")"
	}
	return "the statement ended " + e.state + ": " + msg
}

// run submits a statement and waits for its end. On success it returns the
// statement with its manifest; it cancels the statement if ctx ends first.
func (d *Databricks) run(ctx context.Context, query string) (*dbxStatement, error) {
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-d.slots }()
	req := dbxRequest{
		Statement: query, WarehouseID: d.warehouseID, Catalog: d.catalog, Schema: d.schema,
		Format: "ARROW_STREAM", Disposition: "EXTERNAL_LINKS",
		WaitTimeout: "0s", OnWaitTimeout: "CONTINUE",
	}
	var st dbxStatement
	if err := d.call(ctx, http.MethodPost, "/api/2.0/sql/statements", req, &st); err != nil {
		return nil, err
	}
	if st.StatementID == "" {
		return nil, errors.New("the API answered without a statement_id")
	}
	wait := d.poll
	for {
		switch st.Status.State {
		case "SUCCEEDED":
			if st.Manifest == nil {
				// A statement without a result (DDL): no columns, no chunks.
				st.Manifest = &dbxManifest{}
			}
			if st.Manifest.Format != "" && st.Manifest.Format != "ARROW_STREAM" {
				return nil, fmt.Errorf("the result came as %s, not ARROW_STREAM", st.Manifest.Format)
			}
			if st.Manifest.Truncated {
				d.cancel(st.StatementID)
				return nil, errors.New("the result was truncated at the API's byte limit (100 GiB for EXTERNAL_LINKS): the audience's rows are too many to read through the Statement Execution API")
			}
			return &st, nil
		case "FAILED", "CANCELED", "CLOSED":
			return nil, &statementError{state: st.Status.State, err: st.Status.Error}
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			d.cancel(st.StatementID)
			return nil, context.Cause(ctx)
		}
		if wait < 2*time.Second {
			wait = wait * 3 / 2
		}
		id := st.StatementID
		st = dbxStatement{}
		if err := d.call(ctx, http.MethodGet, "/api/2.0/sql/statements/"+url.PathEscape(id), nil, &st); err != nil {
			if ctx.Err() != nil {
				d.cancel(id)
			}
			return nil, err
		}
		if st.StatementID == "" {
			st.StatementID = id
		}
	}
}

// cancel asks the warehouse to cancel a statement, in the background: the
// request's answer only says it was received.
func (d *Databricks) cancel(id string) {
	go func() {
		ctx, done := context.WithTimeout(context.Background(), 30*time.Second)
		defer done()
		if err := d.call(ctx, http.MethodPost, "/api/2.0/sql/statements/"+url.PathEscape(id)+"/cancel", struct{}{}, nil); err != nil {
			d.log.Debug("databricks: cancelling a statement", "statement_id", id, "err", redact(err.Error(), d.secrets))
		}
	}()
}

// timeZone is the session time zone statements run in.
func (d *Databricks) timeZone(ctx context.Context) (string, error) {
	rd, err := d.Query(ctx, "SELECT current_timezone() AS tz", QueryOptions{Tag: "open"})
	if err != nil {
		return "", err
	}
	defer rd.Release()
	zone := ""
	for rd.Next() {
		rec := rd.RecordBatch()
		if rec.NumRows() > 0 && rec.NumCols() == 1 {
			if c, err := NewCells(rec.Column(0)); err == nil {
				zone, _ = c.Text(0)
			}
		}
	}
	if err := rd.Err(); err != nil {
		return "", err
	}
	if zone == "" {
		return "", errors.New("databricks: current_timezone() returned no row")
	}
	return zone, nil
}

// Query implements Warehouse.
func (d *Databricks) Query(ctx context.Context, query string, opts QueryOptions) (array.RecordReader, error) {
	ctx, end := d.statement(ctx)
	// The audience, where Query History shows the statement.
	tag := "linkaud"
	if opts.Tag != "" {
		tag += " " + opts.Tag
	}
	st, err := d.run(ctx, "/* "+commentSafe(tag)+" */\n"+query)
	if err != nil {
		err = d.error(ctx, err)
		end()
		return nil, err
	}
	r := &dbxReader{d: d, ctx: ctx, end: end, st: st}
	r.refs.Store(1)
	if err := r.start(); err != nil {
		err = d.error(ctx, err)
		r.finish()
		return nil, err
	}
	return r, nil
}

// Columns implements Warehouse, from the result schema of a SELECT of the
// table, so that names resolve exactly as the plans' do.
func (d *Databricks) Columns(ctx context.Context, table dsl.TableName) ([]string, error) {
	cols, err := d.describe(ctx, table)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names, nil
}

// ColumnTypes implements dsl.ColumnTyper, from the manifest's type names
// (ColumnInfoTypeName: BOOLEAN, BYTE, SHORT, INT, LONG, FLOAT, DOUBLE,
// DECIMAL, STRING, CHAR, DATE, TIMESTAMP, TIMESTAMP_NTZ, BINARY, INTERVAL,
// ARRAY, MAP, STRUCT, …).
func (d *Databricks) ColumnTypes(ctx context.Context, table dsl.TableName) ([]dsl.ColumnType, error) {
	cols, err := d.describe(ctx, table)
	if err != nil {
		return nil, err
	}
	out := make([]dsl.ColumnType, len(cols))
	for i, c := range cols {
		class := dsl.ClassUnknown
		switch strings.ToUpper(c.TypeName) {
		case "BYTE", "SHORT", "INT", "LONG", "FLOAT", "DOUBLE", "DECIMAL":
			class = dsl.ClassNumber
		case "STRING", "CHAR":
			class = dsl.ClassText
		case "BOOLEAN":
			class = dsl.ClassBool
		case "DATE", "TIMESTAMP", "TIMESTAMP_NTZ":
			class = dsl.ClassTime
		case "BINARY", "INTERVAL", "ARRAY", "MAP", "STRUCT", "VARIANT":
			class = dsl.ClassOther
		}
		typ := c.TypeText
		if typ == "" {
			typ = c.TypeName
		}
		out[i] = dsl.ColumnType{Name: c.Name, Class: class, Type: typ}
	}
	return out, nil
}

func (d *Databricks) describe(ctx context.Context, table dsl.TableName) ([]dbxColumn, error) {
	if len(table) < 1 || len(table) > 3 {
		return nil, fmt.Errorf("databricks: table name %q has one to three parts", table)
	}
	parts := make([]string, len(table))
	for i, p := range table {
		parts[i] = "`" + strings.ReplaceAll(p, "`", "``") + "`"
	}
	ctx, end := d.statement(ctx)
	defer end()
	st, err := d.run(ctx, "SELECT * FROM "+strings.Join(parts, ".")+" LIMIT 0")
	if err != nil {
		var se *statementError
		if errors.As(err, &se) && se.err != nil && (strings.Contains(se.err.Message, "TABLE_OR_VIEW_NOT_FOUND") || strings.Contains(se.err.Message, "SCHEMA_NOT_FOUND")) {
			return nil, d.error(ctx, fmt.Errorf("%w: %s (%w)", ErrTableNotFound, table, err))
		}
		return nil, d.error(ctx, err)
	}
	return st.Manifest.Schema.Columns, nil
}

// dbxSchema is the Arrow schema of a result without chunks, from the
// manifest (a result with chunks takes its first chunk's own schema).
func dbxSchema(m *dbxManifest) *arrow.Schema {
	fields := make([]arrow.Field, len(m.Schema.Columns))
	for i, c := range m.Schema.Columns {
		var t arrow.DataType = arrow.BinaryTypes.String
		switch strings.ToUpper(c.TypeName) {
		case "BOOLEAN":
			t = arrow.FixedWidthTypes.Boolean
		case "BYTE":
			t = arrow.PrimitiveTypes.Int8
		case "SHORT":
			t = arrow.PrimitiveTypes.Int16
		case "INT":
			t = arrow.PrimitiveTypes.Int32
		case "LONG":
			t = arrow.PrimitiveTypes.Int64
		case "FLOAT":
			t = arrow.PrimitiveTypes.Float32
		case "DOUBLE":
			t = arrow.PrimitiveTypes.Float64
		case "DECIMAL":
			if c.Precision > 0 && c.Precision <= 38 {
				t = &arrow.Decimal128Type{Precision: c.Precision, Scale: c.Scale}
			}
		case "DATE":
			t = arrow.FixedWidthTypes.Date32
		case "TIMESTAMP":
			t = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
		case "TIMESTAMP_NTZ":
			t = &arrow.TimestampType{Unit: arrow.Microsecond}
		case "BINARY":
			t = arrow.BinaryTypes.Binary
		}
		fields[i] = arrow.Field{Name: c.Name, Type: t, Nullable: true}
	}
	return arrow.NewSchema(fields, nil)
}
