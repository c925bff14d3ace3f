// Package dbxfake is a fake Databricks SQL warehouse for tests: an
// httptest server implementing the SQL Statement Execution API as
// Databricks documents it (https://docs.databricks.com/api/workspace/statementexecution):
// POST /api/2.0/sql/statements, GET …/{statement_id},
// GET …/{statement_id}/result/chunks/{chunk_index}, POST …/{statement_id}/cancel,
// and the presigned links of EXTERNAL_LINKS results, which serve each
// chunk as an Arrow IPC stream.
//
// The fake checks every request against the documented contract, not
// against what linkaud happens to send: the bearer token, the JSON body's
// fields and their allowed values (an unknown field is refused, as is
// ARROW_STREAM without EXTERNAL_LINKS, or a wait_timeout outside 0s and
// 5s–50s), and that no Authorization header goes to a presigned link.
// A request that breaks the contract fails the test (Server.Violations).
//
// It runs no SQL: Server.Answer maps a statement to its Result (rows made
// on demand, so a result of millions of rows costs the fake no memory) or
// to the error the warehouse would report. Faults are knobs on Server.
package dbxfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/linkaud/linkaud/internal/arrowrows"
)

// Result is a statement's result, or its failure.
type Result struct {
	Schema *arrow.Schema
	Rows   int64
	// Slice makes rows [offset, offset+n) of the result.
	Slice func(offset, n int64) arrow.RecordBatch
	// Error, when set, fails the statement (state FAILED) with this
	// status.error.
	Error *Error
	// Hang keeps the statement RUNNING until it is cancelled.
	Hang bool
}

// Error is a statement's status.error, or an API error's body.
type Error struct {
	Code    string `json:"error_code"`
	Message string `json:"message"`
}

// Request is a request the fake received, as the tests may inspect it.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         map[string]any // JSON bodies
}

// Server is the fake workspace.
type Server struct {
	*httptest.Server
	t testing.TB

	Token       string // the bearer token the API accepts
	WarehouseID string
	// TimeZone is what SELECT current_timezone() answers.
	TimeZone string
	// Answer gives a statement's result (after the fake answered the
	// time-zone probe itself).
	Answer func(statement string) Result
	// ChunkRows and BatchRows: rows per chunk and per IPC record batch.
	ChunkRows, BatchRows int64
	// Polls is how many GETs of a statement answer RUNNING before its end.
	Polls int

	// Faults.
	Throttle     int   // answer this many API requests 429 (Retry-After: 0) first
	Unavailable  int   // then this many 503 (Retry-After: 0)
	ExpireFirst  bool  // the links a statement carries have expired already
	BreakChunk   int   // cut this chunk's body (-1: none) …
	BreakAfter   int64 // … after this many bytes
	BreakAlways  bool  // on every download, not only the first
	TruncateRows bool  // cut a chunk at a message boundary (a short stream)

	mu         sync.Mutex
	next       int
	statements map[string]*statement
	requests   []Request
	violations []string
	broken     map[int]bool
	linkTTL    time.Duration
}

type statement struct {
	id       string
	text     string
	res      Result
	polls    int
	canceled bool
	chunks   int
}

// New starts a fake workspace; it is closed at the test's end.
func New(t testing.TB) *Server {
	s := &Server{
		t: t, Token: "dapi-test-token-0123456789", WarehouseID: "0123456789abcdef", TimeZone: "Etc/UTC",
		ChunkRows: 100_000, BatchRows: 8192, Polls: 2, BreakChunk: -1,
		statements: map[string]*statement{}, broken: map[int]bool{}, linkTTL: 15 * time.Minute,
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.Server.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, v := range s.violations {
			t.Errorf("dbxfake: a request broke the documented contract: %s", v)
		}
	})
	return s
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Cancelled reports the statements a cancel request named.
func (s *Server) Cancelled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, st := range s.statements {
		if st.canceled {
			out = append(out, id)
		}
	}
	return out
}

// Statements returns the texts of the statements submitted, in order.
func (s *Server) Statements() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, s.next)
	for _, st := range s.statements {
		n, _ := strconv.Atoi(strings.TrimPrefix(st.id, "01f0-stmt-"))
		out[n] = st.text
	}
	return out
}

// Update runs f, which may set the fault knobs, while no request is
// being answered.
func (s *Server) Update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *Server) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

var (
	statementPath = regexp.MustCompile(`^/api/2\.0/sql/statements/([^/]+)$`)
	chunkPath     = regexp.MustCompile(`^/api/2\.0/sql/statements/([^/]+)/result/chunks/([0-9]+)$`)
	cancelPath    = regexp.MustCompile(`^/api/2\.0/sql/statements/([^/]+)/cancel$`)
	linkPath      = regexp.MustCompile(`^/storage/([^/]+)/([0-9]+)$`)
	waitTimeout   = regexp.MustCompile(`^(0|[5-9]|[1-4][0-9]|50)s$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if m := linkPath.FindStringSubmatch(r.URL.Path); m != nil {
		s.download(w, r, m[1], m[2])
		return
	}
	s.mu.Lock()
	req := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	if len(body) > 0 {
		json.Unmarshal(body, &req.Body)
	}
	s.requests = append(s.requests, req)
	if got := r.Header.Get("Authorization"); got != "Bearer "+s.Token {
		s.mu.Unlock()
		// What the workspace answers a bad or expired personal access token.
		writeJSON(w, http.StatusForbidden, Error{Code: "403", Message: "Invalid access token."})
		return
	}
	if s.Throttle > 0 {
		s.Throttle--
		s.mu.Unlock()
		w.Header().Set("Retry-After", "0")
		writeJSON(w, http.StatusTooManyRequests, Error{Code: "TOO_MANY_REQUESTS", Message: "Too many requests. Please wait a moment and try again."})
		return
	}
	if s.Unavailable > 0 {
		s.Unavailable--
		s.mu.Unlock()
		w.Header().Set("Retry-After", "0")
		writeJSON(w, http.StatusServiceUnavailable, Error{Code: "TEMPORARILY_UNAVAILABLE", Message: "The service is temporarily unavailable."})
		return
	}
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/2.0/sql/statements":
		s.submit(w, r, body)
	case r.Method == http.MethodGet && statementPath.MatchString(r.URL.Path):
		st := s.lookup(w, statementPath.FindStringSubmatch(r.URL.Path)[1])
		if st == nil {
			return
		}
		st.polls++
		writeJSON(w, http.StatusOK, s.response(st, r))
	case r.Method == http.MethodGet && chunkPath.MatchString(r.URL.Path):
		m := chunkPath.FindStringSubmatch(r.URL.Path)
		st := s.lookup(w, m[1])
		if st == nil {
			return
		}
		n, _ := strconv.Atoi(m[2])
		if s.state(st) != "SUCCEEDED" || n >= st.chunks {
			writeJSON(w, http.StatusBadRequest, Error{Code: "INVALID_PARAMETER_VALUE", Message: fmt.Sprintf("chunk index %d is not valid for statement %s", n, st.id)})
			return
		}
		l := s.link(st, n, r, false)
		writeJSON(w, http.StatusOK, map[string]any{"external_links": []any{l}})
	case r.Method == http.MethodPost && cancelPath.MatchString(r.URL.Path):
		st := s.lookup(w, cancelPath.FindStringSubmatch(r.URL.Path)[1])
		if st == nil {
			return
		}
		if len(body) > 0 && string(body) != "{}" {
			s.violate("cancel takes no body fields, got %s", body)
		}
		st.canceled = true
		writeJSON(w, http.StatusOK, map[string]any{})
	default:
		s.violate("%s %s is no endpoint of the Statement Execution API", r.Method, r.URL.Path)
		writeJSON(w, http.StatusNotFound, Error{Code: "ENDPOINT_NOT_FOUND", Message: "No API found for '" + r.Method + " " + r.URL.Path + "'"})
	}
}

// submitRequest is ExecuteStatementRequest's documented fields.
type submitRequest struct {
	Statement     *string          `json:"statement"`
	WarehouseID   *string          `json:"warehouse_id"`
	Catalog       *string          `json:"catalog"`
	Schema        *string          `json:"schema"`
	Parameters    []map[string]any `json:"parameters"`
	RowLimit      *int64           `json:"row_limit"`
	ByteLimit     *int64           `json:"byte_limit"`
	Disposition   *string          `json:"disposition"`
	Format        *string          `json:"format"`
	WaitTimeout   *string          `json:"wait_timeout"`
	OnWaitTimeout *string          `json:"on_wait_timeout"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, body []byte) {
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.violate("POST /api/2.0/sql/statements: %s", msg)
		writeJSON(w, http.StatusBadRequest, Error{Code: "INVALID_PARAMETER_VALUE", Message: msg})
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		bad("Content-Type %q, not application/json", ct)
		return
	}
	var req submitRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		bad("the body is not an ExecuteStatementRequest: %v", err)
		return
	}
	switch {
	case req.Statement == nil || *req.Statement == "":
		bad("statement is required")
		return
	case len(*req.Statement) > 16<<20:
		bad("the statement is over 16 MiB")
		return
	case req.WarehouseID == nil || *req.WarehouseID != s.WarehouseID:
		bad("warehouse_id %v is not this workspace's warehouse", req.WarehouseID)
		return
	}
	disposition, format := "INLINE", "JSON_ARRAY"
	if req.Disposition != nil {
		disposition = *req.Disposition
	}
	if req.Format != nil {
		format = *req.Format
	}
	if disposition != "INLINE" && disposition != "EXTERNAL_LINKS" {
		bad("disposition %q is not INLINE or EXTERNAL_LINKS", disposition)
		return
	}
	if format != "JSON_ARRAY" && format != "ARROW_STREAM" && format != "CSV" {
		bad("format %q is not JSON_ARRAY, ARROW_STREAM or CSV", format)
		return
	}
	if format != "JSON_ARRAY" && disposition != "EXTERNAL_LINKS" {
		bad("format %s is supported only with EXTERNAL_LINKS disposition", format)
		return
	}
	if req.WaitTimeout != nil && !waitTimeout.MatchString(*req.WaitTimeout) {
		bad("wait_timeout %q is not 0s or between 5s and 50s", *req.WaitTimeout)
		return
	}
	if req.OnWaitTimeout != nil && *req.OnWaitTimeout != "CONTINUE" && *req.OnWaitTimeout != "CANCEL" {
		bad("on_wait_timeout %q is not CONTINUE or CANCEL", *req.OnWaitTimeout)
		return
	}
	if format != "ARROW_STREAM" {
		bad("this fake serves ARROW_STREAM results only, not %s", format)
		return
	}
	st := &statement{id: "01f0-stmt-" + strconv.Itoa(s.next), text: *req.Statement}
	s.next++
	if strings.Contains(st.text, "current_timezone()") {
		st.res = stringResult("tz", s.TimeZone)
	} else if s.Answer != nil {
		st.res = s.Answer(st.text)
	} else {
		st.res = Result{Error: &Error{Code: "BAD_REQUEST", Message: "[TABLE_OR_VIEW_NOT_FOUND] The table or view cannot be found."}}
	}
	if st.res.Error == nil && st.res.Schema != nil && st.res.Rows > 0 {
		st.chunks = int((st.res.Rows + s.ChunkRows - 1) / s.ChunkRows)
	}
	s.statements[st.id] = st
	if req.WaitTimeout != nil && *req.WaitTimeout == "0s" {
		writeJSON(w, http.StatusOK, map[string]any{"statement_id": st.id, "status": map[string]any{"state": "PENDING"}})
		return
	}
	st.polls = s.Polls // a synchronous call waits for the end
	writeJSON(w, http.StatusOK, s.response(st, r))
}

func (s *Server) lookup(w http.ResponseWriter, id string) *statement {
	st := s.statements[id]
	if st == nil {
		writeJSON(w, http.StatusNotFound, Error{Code: "RESOURCE_DOES_NOT_EXIST", Message: "Statement " + id + " not found"})
	}
	return st
}

func (s *Server) state(st *statement) string {
	switch {
	case st.canceled:
		return "CANCELED"
	case st.res.Hang || st.polls < s.Polls:
		return "RUNNING"
	case st.res.Error != nil:
		return "FAILED"
	}
	return "SUCCEEDED"
}

// response is a StatementResponse: the manifest and the first chunk's link
// once the statement succeeded.
func (s *Server) response(st *statement, r *http.Request) map[string]any {
	state := s.state(st)
	out := map[string]any{"statement_id": st.id, "status": map[string]any{"state": state}}
	switch state {
	case "FAILED":
		out["status"] = map[string]any{"state": state, "error": st.res.Error}
	case "SUCCEEDED":
		out["manifest"] = s.manifest(st)
		if st.chunks > 0 {
			out["result"] = map[string]any{"external_links": []any{s.link(st, 0, r, s.ExpireFirst)}}
		} else {
			out["result"] = map[string]any{}
		}
	}
	return out
}

func (s *Server) manifest(st *statement) map[string]any {
	var cols, chunks []any
	for i, f := range st.res.Schema.Fields() {
		name, text := typeName(f.Type)
		cols = append(cols, map[string]any{"name": f.Name, "position": i, "type_name": name, "type_text": text})
	}
	for i := 0; i < st.chunks; i++ {
		off, n := s.span(st, i)
		chunks = append(chunks, map[string]any{"chunk_index": i, "row_offset": off, "row_count": n})
	}
	return map[string]any{
		"format":            "ARROW_STREAM",
		"schema":            map[string]any{"column_count": len(cols), "columns": cols},
		"total_chunk_count": st.chunks,
		"chunks":            chunks,
		"total_row_count":   st.res.Rows,
		"truncated":         false,
	}
}

func (s *Server) span(st *statement, i int) (off, n int64) {
	off = int64(i) * s.ChunkRows
	n = min(s.ChunkRows, st.res.Rows-off)
	return off, n
}

// link is chunk i's ExternalLink: a presigned URL on the fake's storage.
func (s *Server) link(st *statement, i int, r *http.Request, expired bool) map[string]any {
	off, n := s.span(st, i)
	exp := time.Now().Add(s.linkTTL)
	if expired {
		exp = time.Now().Add(-time.Minute)
	}
	l := map[string]any{
		"chunk_index":   i,
		"row_offset":    off,
		"row_count":     n,
		"byte_count":    n * 64,
		"external_link": fmt.Sprintf("http://%s/storage/%s/%d?X-Amz-Expires=900&X-Amz-Signature=sig%d&exp=%d", r.Host, st.id, i, i, exp.Unix()),
		"expiration":    exp.UTC().Format(time.RFC3339),
	}
	if i+1 < st.chunks {
		l["next_chunk_index"] = i + 1
		l["next_chunk_internal_link"] = fmt.Sprintf("/api/2.0/sql/statements/%s/result/chunks/%d", st.id, i+1)
	}
	return l
}

// download serves a presigned link: chunk n of a statement, as an Arrow IPC
// stream made batch by batch.
func (s *Server) download(w http.ResponseWriter, r *http.Request, id, chunk string) {
	s.mu.Lock()
	st := s.statements[id]
	if r.Header.Get("Authorization") != "" {
		s.violate("GET of a presigned link carried an Authorization header: the API says it must not")
	}
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	n, _ := strconv.Atoi(chunk)
	exp, _ := strconv.ParseInt(r.URL.Query().Get("exp"), 10, 64)
	brk := s.BreakChunk == n && (s.BreakAlways || !s.broken[n])
	if brk {
		s.broken[n] = true
	}
	s.mu.Unlock()
	if st == nil || n >= st.chunks || r.URL.Query().Get("X-Amz-Signature") != "sig"+chunk {
		http.Error(w, "<Error><Code>AccessDenied</Code></Error>", http.StatusForbidden)
		return
	}
	if time.Now().Unix() > exp {
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", http.StatusForbidden)
		return
	}
	off, rows := s.span(st, n)
	w.Header().Set("Content-Type", "application/vnd.apache.arrow.stream")
	var out io.Writer = w
	var cut *cutWriter
	if brk {
		cut = &cutWriter{w: w, left: s.BreakAfter}
		out = cut
	}
	iw := ipc.NewWriter(out, ipc.WithSchema(st.res.Schema), ipc.WithAllocator(memory.DefaultAllocator))
	for done := int64(0); done < rows; {
		k := min(s.BatchRows, rows-done)
		if brk && s.TruncateRows && done > 0 {
			// A stream that ends at a message boundary, without the rest.
			iw.Close()
			return
		}
		rec := st.res.Slice(off+done, k)
		err := iw.Write(rec)
		rec.Release()
		if err != nil {
			break
		}
		done += k
	}
	if cut != nil && cut.cut {
		// The connection drops mid-body, as a storage node failing would.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	}
	iw.Close()
}

// cutWriter writes the first left bytes, then drops the rest.
type cutWriter struct {
	w    io.Writer
	left int64
	cut  bool
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.cut {
		return 0, io.ErrClosedPipe
	}
	if int64(len(p)) > c.left {
		c.w.Write(p[:c.left])
		if f, ok := c.w.(http.Flusher); ok {
			f.Flush()
		}
		c.cut = true
		return 0, io.ErrClosedPipe
	}
	c.left -= int64(len(p))
	return c.w.Write(p)
}

// typeName is the type_name and type_text of a column of Arrow type t.
func typeName(t arrow.DataType) (string, string) {
	switch t := t.(type) {
	case *arrow.StringType:
		return "STRING", "STRING"
	case *arrow.Int64Type:
		return "LONG", "BIGINT"
	case *arrow.Int32Type:
		return "INT", "INT"
	case *arrow.Float64Type:
		return "DOUBLE", "DOUBLE"
	case *arrow.BooleanType:
		return "BOOLEAN", "BOOLEAN"
	case *arrow.Date32Type:
		return "DATE", "DATE"
	case *arrow.TimestampType:
		if t.TimeZone == "" {
			return "TIMESTAMP_NTZ", "TIMESTAMP_NTZ"
		}
		return "TIMESTAMP", "TIMESTAMP"
	case *arrow.Decimal128Type:
		return "DECIMAL", fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case *arrow.BinaryType:
		return "BINARY", "BINARY"
	}
	return "STRING", "STRING"
}

// stringResult is a one-row, one-column STRING result.
func stringResult(name, value string) Result {
	schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	return Result{Schema: schema, Rows: 1, Slice: func(off, n int64) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.StringBuilder).Append(value)
		return b.NewRecordBatch()
	}}
}

// Records is a Result of records held in memory (the fault tests' answers,
// computed on DuckDB).
func Records(schema *arrow.Schema, recs []arrow.RecordBatch) (Result, error) {
	rows, slice, err := arrowrows.Concat(schema, recs)
	return Result{Schema: schema, Rows: rows, Slice: slice}, err
}
