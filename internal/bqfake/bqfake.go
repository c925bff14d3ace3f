// Package bqfake is a fake of Google BigQuery for tests, the smallest that
// cloud.google.com/go/bigquery accepts for a query read through the
// Storage Read API, each part as Google documents it:
//
//   - the REST API v2 (https://cloud.google.com/bigquery/docs/reference/rest/v2):
//     jobs.insert, jobs.getQueryResults, jobs.get, jobs.cancel and
//     datasets.get, on an httptest server;
//   - the Storage Read API (google.cloud.bigquery.storage.v1.BigQueryRead:
//     CreateReadSession, ReadRows), a gRPC server over TLS, the session's
//     schema and every batch serialized as Arrow IPC messages;
//   - OAuth 2.0 for a service account (RFC 7523's JWT bearer grant at the
//     key file's token_uri, or a self-signed JWT, as Google's client
//     libraries send either): CredentialsFile writes a key file whose
//     token_uri is the fake's, and every request must carry a bearer token
//     the fake issued or a JWT signed with that key.
//
// The fake checks requests against the documented resources, not against
// what linkaud sends: a job's fields and their formats (int64 fields as
// strings, label rules, job ids), GoogleSQL (useLegacySql false), the read
// session's table and format. A request that breaks the contract fails the
// test (see Server.Violations).
//
// It runs no SQL: Server.Answer maps a query to its Result, whose rows are
// made on demand (a result of millions of rows costs the fake no memory),
// or to the error BigQuery would report. Faults are knobs on Server.
package bqfake

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/linkaud/linkaud/internal/arrowrows"
)

// Result is a query's result, or its failure.
type Result struct {
	Schema *arrow.Schema
	Rows   int64
	// Slice makes rows [offset, offset+n) of the result.
	Slice func(offset, n int64) arrow.RecordBatch
	// BytesBilled is what the query would bill: over the job's
	// maximumBytesBilled it fails as BigQuery fails it.
	BytesBilled int64
	// Error fails the job with this error (jobs.getQueryResults answers it).
	Error *Error
	// Hang keeps the job RUNNING until it is cancelled.
	Hang bool
	// NoTable: a statement without a result table (DDL, DML).
	NoTable bool
}

// Error is a BigQuery API error: HTTP code, reason and message.
type Error struct {
	Code    int
	Reason  string
	Message string
}

// Server is the fake BigQuery.
type Server struct {
	REST *httptest.Server
	t    testing.TB

	Project string
	// Datasets that exist (datasets.get), besides the anonymous one.
	Datasets map[string]bool
	// Answer gives a query's result; "SELECT 1 AS ok" is answered by the
	// fake itself.
	Answer func(query string) Result
	// BatchRows is the rows per ReadRowsResponse.
	BatchRows int64

	// Faults.
	RejectTokens bool // every API call answers 401, as for an expired or revoked token
	InvalidGrant bool // the token endpoint refuses the key (invalid_grant)
	// ReadRowsFail ends a ReadRows stream with this status after
	// ReadRowsFailAfter rows; once unless ReadRowsFailAlways.
	ReadRowsFail       *status.Status
	ReadRowsFailAfter  int64
	ReadRowsFailAlways bool

	grpc     *grpc.Server
	grpcAddr string
	pool     *x509.CertPool
	key      *rsa.PrivateKey

	mu         sync.Mutex
	jobs       map[string]*job
	sessions   map[string]*job // stream name → job
	tokens     map[string]bool
	requests   []Request
	violations []string
	failed     bool
}

// Request is a REST request the fake received.
type Request struct {
	Method, Path string
	Query        map[string][]string
	Header       http.Header
	Body         map[string]any
}

type job struct {
	id, location string
	query        string
	labels       map[string]any
	maxBytes     int64
	res          Result
	canceled     bool
	polls        int
	table        string // the anonymous result table, datasets/_anon/tables/…
}

// New starts a fake BigQuery for project; it stops at the test's end.
func New(t testing.TB, project string) *Server {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Project: project, Datasets: map[string]bool{}, BatchRows: 8192, key: key,
		jobs: map[string]*job{}, sessions: map[string]*job{}, tokens: map[string]bool{}}
	s.REST = httptest.NewServer(http.HandlerFunc(s.serve))
	cert, pool := selfSigned(t)
	s.pool = pool
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.grpcAddr = lis.Addr().String()
	s.grpc = grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	storagepb.RegisterBigQueryReadServer(s.grpc, &readServer{s: s})
	go s.grpc.Serve(lis)
	t.Cleanup(func() {
		s.grpc.Stop()
		s.REST.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, v := range s.violations {
			t.Errorf("bqfake: a request broke the documented contract: %s", v)
		}
	})
	return s
}

// ClientOptions are the options pointing the REST and Storage Read clients
// at the fake (endpoints, the gRPC server's TLS root).
func (s *Server) ClientOptions() (rest, storage []option.ClientOption) {
	rest = []option.ClientOption{option.WithEndpoint(s.REST.URL + "/bigquery/v2/")}
	storage = []option.ClientOption{
		option.WithEndpoint(s.grpcAddr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(s.pool, "127.0.0.1"))),
	}
	return rest, storage
}

// CredentialsFile writes a service-account key file for the fake (its
// token_uri the fake's) into dir and returns its path.
func (s *Server) CredentialsFile(dir string) string {
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		s.t.Fatal(err)
	}
	f := map[string]string{
		"type":           "service_account",
		"project_id":     s.Project,
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "linkaud-test@" + s.Project + ".iam.gserviceaccount.com",
		"client_id":      "100000000000000000001",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      s.REST.URL + "/token",
	}
	data, _ := json.Marshal(f)
	path := filepath.Join(dir, "key.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// Requests returns the REST requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Cancelled lists the jobs jobs.cancel named.
func (s *Server) Cancelled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, j := range s.jobs {
		if j.canceled {
			out = append(out, id)
		}
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

// apiError writes Google's JSON error body.
func apiError(w http.ResponseWriter, e Error) {
	st := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}[e.Code]
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(e.Code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": e.Code, "message": e.Message, "status": st,
		"errors": []any{map[string]any{"message": e.Message, "domain": "global", "reason": e.Reason}},
	}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(v)
}

var (
	jobsPath    = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/jobs$`)
	jobPath     = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/jobs/([^/]+)$`)
	cancelPath  = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/jobs/([^/]+)/cancel$`)
	resultsPath = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/queries/([^/]+)$`)
	datasetPath = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/datasets/([^/]+)$`)
	tablePath   = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)$`)
	jobIDRE     = regexp.MustCompile(`^[A-Za-z0-9_-]+$`) // and at most 1024
	int64RE     = regexp.MustCompile(`^-?[0-9]+$`)
	labelKeyRE  = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	labelValRE  = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/token" {
		s.token(w, r, body)
		return
	}
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()}
	if len(body) > 0 {
		json.Unmarshal(body, &req.Body)
	}
	s.requests = append(s.requests, req)
	if !s.authorized(r.Header.Get("Authorization")) {
		apiError(w, Error{Code: 401, Reason: "authError", Message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."})
		return
	}
	if m := jobsPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		s.insert(w, m[1], body)
		return
	}
	if m := resultsPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		s.results(w, r, m[1], m[2])
		return
	}
	if m := cancelPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		j := s.lookup(w, m[1], m[2], r)
		if j != nil {
			j.canceled = true
			writeJSON(w, map[string]any{"kind": "bigquery#jobCancelResponse", "job": s.resource(j)})
		}
		return
	}
	if m := jobPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		if j := s.lookup(w, m[1], m[2], r); j != nil {
			writeJSON(w, s.resource(j))
		}
		return
	}
	if m := tablePath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		// tables.get of a job's result table (the client reads its schema
		// before opening a read session).
		var j *job
		for _, c := range s.jobs {
			if m[1] == s.Project && m[2] == "_anon" && c.table == m[3] {
				j = c
			}
		}
		if j == nil {
			apiError(w, Error{Code: 404, Reason: "notFound", Message: "Not found: Table " + m[1] + ":" + m[2] + "." + m[3]})
			return
		}
		writeJSON(w, map[string]any{"kind": "bigquery#table", "id": m[1] + ":" + m[2] + "." + m[3], "type": "TABLE",
			"tableReference": map[string]any{"projectId": m[1], "datasetId": m[2], "tableId": m[3]},
			"schema":         tableSchema(j.res.Schema), "numRows": strconv.FormatInt(j.res.Rows, 10)})
		return
	}
	if m := datasetPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		if m[1] != s.Project || !s.Datasets[m[2]] {
			apiError(w, Error{Code: 404, Reason: "notFound", Message: "Not found: Dataset " + m[1] + ":" + m[2]})
			return
		}
		writeJSON(w, map[string]any{"kind": "bigquery#dataset", "id": m[1] + ":" + m[2],
			"datasetReference": map[string]any{"projectId": m[1], "datasetId": m[2]}, "location": "US"})
		return
	}
	s.violate("%s %s is no method this fake knows of the BigQuery API", r.Method, r.URL.Path)
	apiError(w, Error{Code: 404, Reason: "notFound", Message: "Not found: " + r.URL.Path})
}

// token implements the OAuth 2.0 JWT bearer grant of a service account.
func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := parseForm(string(body))
	if err != nil || form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		s.violate("token request %q is not a JWT bearer grant", body)
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	claims, ok := s.verifyJWT(form["assertion"])
	if !ok || claims["aud"] != s.REST.URL+"/token" || s.InvalidGrant {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
		return
	}
	tok := "ya29.fake-" + strconv.Itoa(len(s.tokens))
	s.tokens[tok] = true
	writeJSON(w, map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

func parseForm(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		if v, err = urlUnescape(v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func urlUnescape(s string) (string, error) {
	s = strings.ReplaceAll(s, "+", " ")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", err
			}
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// authorized accepts a token the fake issued, or a JWT the key signed.
func (s *Server) authorized(h string) bool {
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || s.RejectTokens {
		return false
	}
	if s.tokens[tok] {
		return true
	}
	_, ok = s.verifyJWT(tok)
	return ok
}

// verifyJWT checks an RS256 JWT signed with the fake's key and not expired.
func (s *Server) verifyJWT(tok string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims map[string]any
	if json.Unmarshal(payload, &claims) != nil {
		return nil, false
	}
	if exp, ok := claims["exp"].(float64); !ok || time.Now().Unix() > int64(exp) {
		return nil, false
	}
	return claims, true
}

// The Job resource's documented fields this fake understands.
var (
	jobFields    = set("jobReference", "configuration")
	jobRefFields = set("projectId", "jobId", "location")
	configFields = set("query", "labels", "jobTimeoutMs", "dryRun", "jobType", "reservation")
	queryFields  = set("query", "useLegacySql", "defaultDataset", "maximumBytesBilled", "useQueryCache", "priority",
		"queryParameters", "parameterMode", "destinationTable", "writeDisposition", "createDisposition",
		"allowLargeResults", "flattenResults", "createSession", "connectionProperties", "schemaUpdateOptions",
		"timePartitioning", "rangePartitioning", "clustering", "destinationEncryptionConfiguration",
		"tableDefinitions", "userDefinedFunctionResources", "scriptOptions", "continuous", "maximumBillingTier")
	datasetRefFields = set("projectId", "datasetId")
)

func set(keys ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func (s *Server) unknown(what string, m map[string]any, known map[string]bool) {
	for k := range m {
		if !known[k] {
			s.violate("%s has no documented field %q", what, k)
		}
	}
}

// insert is jobs.insert of a query job.
func (s *Server) insert(w http.ResponseWriter, project string, body []byte) {
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.violate("jobs.insert: %s", msg)
		apiError(w, Error{Code: 400, Reason: "invalid", Message: msg})
	}
	var jb map[string]any
	if err := json.Unmarshal(body, &jb); err != nil {
		bad("the body is not a Job resource: %v", err)
		return
	}
	s.unknown("Job", jb, jobFields)
	ref, _ := jb["jobReference"].(map[string]any)
	cfg, _ := jb["configuration"].(map[string]any)
	q, _ := cfg["query"].(map[string]any)
	s.unknown("JobReference", ref, jobRefFields)
	s.unknown("JobConfiguration", cfg, configFields)
	s.unknown("JobConfigurationQuery", q, queryFields)
	id, _ := ref["jobId"].(string)
	switch {
	case ref == nil || ref["projectId"] != project || project != s.Project:
		bad("jobReference.projectId %v is not the project of the URL, %s", ref["projectId"], project)
		return
	case !jobIDRE.MatchString(id) || len(id) > 1024:
		bad("jobReference.jobId %q: letters, digits, _ and -, at most 1024", id)
		return
	case q == nil:
		bad("configuration.query is missing: only query jobs are faked")
		return
	case q["useLegacySql"] != false:
		bad("useLegacySql is %v: a job runs legacy SQL unless it says false", q["useLegacySql"])
		return
	}
	text, _ := q["query"].(string)
	if text == "" {
		bad("configuration.query.query is empty")
		return
	}
	j := &job{id: id, query: text}
	if loc, ok := ref["location"].(string); ok {
		j.location = loc
	}
	if v, ok := q["maximumBytesBilled"]; ok {
		str, isStr := v.(string)
		if !isStr || !int64RE.MatchString(str) {
			bad("maximumBytesBilled %v is not an int64 in a string", v)
			return
		}
		j.maxBytes, _ = strconv.ParseInt(str, 10, 64)
	}
	if v, ok := cfg["jobTimeoutMs"]; ok {
		if str, isStr := v.(string); !isStr || !int64RE.MatchString(str) {
			bad("jobTimeoutMs %v is not an int64 in a string", v)
			return
		}
	}
	if dd, ok := q["defaultDataset"].(map[string]any); ok {
		s.unknown("DatasetReference", dd, datasetRefFields)
		if dd["datasetId"] == nil {
			bad("defaultDataset without datasetId")
			return
		}
	}
	if labels, ok := cfg["labels"].(map[string]any); ok {
		if len(labels) > 64 {
			bad("%d labels: at most 64", len(labels))
		}
		for k, v := range labels {
			vs, isStr := v.(string)
			if !labelKeyRE.MatchString(k) || !isStr || !labelValRE.MatchString(vs) {
				bad("label %q: %v breaks the label rules", k, v)
				return
			}
		}
		j.labels = labels
	}
	if _, dup := s.jobs[id]; dup {
		apiError(w, Error{Code: 409, Reason: "duplicate", Message: "Already Exists: Job " + project + ":" + id})
		return
	}
	switch {
	case text == "SELECT 1 AS ok":
		j.res = oneRow()
	case s.Answer != nil:
		j.res = s.Answer(text)
	default:
		j.res = Result{Error: &Error{Code: 400, Reason: "invalidQuery", Message: "Unrecognized name: x at [1:8]"}}
	}
	if j.res.Error == nil && j.maxBytes > 0 && j.res.BytesBilled > j.maxBytes {
		j.res.Error = &Error{Code: 400, Reason: "bytesBilledLimitExceeded",
			Message: fmt.Sprintf("Query exceeded limit for bytes billed: %d. %d or higher required.", j.maxBytes, j.res.BytesBilled)}
	}
	if !j.res.NoTable && j.res.Error == nil {
		j.table = "anon" + strconv.Itoa(len(s.jobs))
	}
	s.jobs[id] = j
	writeJSON(w, s.resource(j))
}

func (s *Server) lookup(w http.ResponseWriter, project, id string, r *http.Request) *job {
	j := s.jobs[id]
	if j == nil || project != s.Project {
		apiError(w, Error{Code: 404, Reason: "notFound", Message: "Not found: Job " + project + ":" + id})
		return nil
	}
	if loc := r.URL.Query().Get("location"); loc != j.location {
		s.violate("job %s is in location %q, asked with location=%q", id, j.location, loc)
	}
	return j
}

func (s *Server) jobState(j *job) string {
	if j.canceled || !j.res.Hang && j.polls > 0 {
		return "DONE"
	}
	return "RUNNING"
}

// resource is the Job resource of j.
func (s *Server) resource(j *job) map[string]any {
	q := map[string]any{"query": j.query, "useLegacySql": false}
	if j.table != "" {
		q["destinationTable"] = map[string]any{"projectId": s.Project, "datasetId": "_anon", "tableId": j.table}
	}
	cfg := map[string]any{"query": q, "jobType": "QUERY"}
	if j.labels != nil {
		cfg["labels"] = j.labels
	}
	st := map[string]any{"state": s.jobState(j)}
	if s.jobState(j) == "DONE" {
		switch {
		case j.canceled:
			e := map[string]any{"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"}
			st["errorResult"], st["errors"] = e, []any{e}
		case j.res.Error != nil:
			e := map[string]any{"reason": j.res.Error.Reason, "message": j.res.Error.Message}
			st["errorResult"], st["errors"] = e, []any{e}
		}
	}
	return map[string]any{
		"kind": "bigquery#job", "id": s.Project + ":" + j.location + "." + j.id,
		"jobReference":  map[string]any{"projectId": s.Project, "jobId": j.id, "location": j.location},
		"configuration": cfg, "status": st,
		"statistics": map[string]any{"creationTime": strconv.FormatInt(time.Now().UnixMilli(), 10)},
	}
}

// results is jobs.getQueryResults: used by the client to wait, with
// maxResults=0, so no rows.
func (s *Server) results(w http.ResponseWriter, r *http.Request, project, id string) {
	j := s.lookup(w, project, id, r)
	if j == nil {
		return
	}
	if mr := r.URL.Query().Get("maxResults"); mr != "" && mr != "0" {
		s.violate("getQueryResults with maxResults=%s: results are read through the Storage Read API", mr)
	}
	j.polls++
	if j.canceled {
		apiError(w, Error{Code: 400, Reason: "stopped", Message: "Job execution was cancelled: User requested cancellation"})
		return
	}
	if j.res.Hang {
		writeJSON(w, map[string]any{"kind": "bigquery#getQueryResultsResponse", "jobComplete": false,
			"jobReference": map[string]any{"projectId": s.Project, "jobId": j.id, "location": j.location}})
		return
	}
	if j.res.Error != nil {
		apiError(w, *j.res.Error)
		return
	}
	out := map[string]any{"kind": "bigquery#getQueryResultsResponse", "jobComplete": true,
		"jobReference": map[string]any{"projectId": s.Project, "jobId": j.id, "location": j.location}}
	if !j.res.NoTable {
		out["schema"] = tableSchema(j.res.Schema)
		out["totalRows"] = strconv.FormatInt(j.res.Rows, 10)
	}
	writeJSON(w, out)
}

// tableSchema is the REST TableSchema of an Arrow schema, in BigQuery's
// types.
func tableSchema(sc *arrow.Schema) map[string]any {
	var fields []any
	for _, f := range sc.Fields() {
		t := "STRING"
		switch ft := f.Type.(type) {
		case *arrow.Int64Type:
			t = "INTEGER"
		case *arrow.Float64Type:
			t = "FLOAT"
		case *arrow.BooleanType:
			t = "BOOLEAN"
		case *arrow.Date32Type:
			t = "DATE"
		case *arrow.TimestampType:
			if ft.TimeZone == "" {
				t = "DATETIME"
			} else {
				t = "TIMESTAMP"
			}
		case *arrow.Decimal128Type:
			t = "NUMERIC"
		case *arrow.BinaryType:
			t = "BYTES"
		}
		fields = append(fields, map[string]any{"name": f.Name, "type": t, "mode": "NULLABLE"})
	}
	return map[string]any{"fields": fields}
}

// readServer is the Storage Read API.
type readServer struct {
	storagepb.UnimplementedBigQueryReadServer
	s *Server
}

func (rs *readServer) auth(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	var h string
	if v := md.Get("authorization"); len(v) > 0 {
		h = v[0]
	}
	rs.s.mu.Lock()
	defer rs.s.mu.Unlock()
	if !rs.s.authorized(h) {
		return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
	}
	return nil
}

var tableRE = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)$`)

func (rs *readServer) CreateReadSession(ctx context.Context, req *storagepb.CreateReadSessionRequest) (*storagepb.ReadSession, error) {
	if err := rs.auth(ctx); err != nil {
		return nil, err
	}
	s := rs.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := req.GetReadSession()
	if req.GetParent() != "projects/"+s.Project {
		s.violate("CreateReadSession: parent %q is not projects/%s", req.GetParent(), s.Project)
	}
	if sess.GetDataFormat() != storagepb.DataFormat_ARROW {
		s.violate("CreateReadSession: data format %s, not ARROW", sess.GetDataFormat())
	}
	m := tableRE.FindStringSubmatch(sess.GetTable())
	var j *job
	if m != nil && m[1] == s.Project && m[2] == "_anon" {
		for _, c := range s.jobs {
			if c.table == m[3] {
				j = c
			}
		}
	}
	if j == nil {
		return nil, status.Errorf(codes.NotFound, "Not found: Table %s", sess.GetTable())
	}
	if req.GetMaxStreamCount() != 1 && strings.Contains(strings.ToUpper(j.query), "ORDER BY") {
		s.violate("CreateReadSession of an ordered result with max_stream_count %d: more than one stream loses the order", req.GetMaxStreamCount())
	}
	schema, err := schemaMessage(j.res.Schema)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	name := "projects/" + s.Project + "/locations/us/sessions/" + j.table
	stream := name + "/streams/0"
	s.sessions[stream] = j
	return &storagepb.ReadSession{
		Name: name, DataFormat: storagepb.DataFormat_ARROW, Table: sess.GetTable(),
		Schema:            &storagepb.ReadSession_ArrowSchema{ArrowSchema: &storagepb.ArrowSchema{SerializedSchema: schema}},
		Streams:           []*storagepb.ReadStream{{Name: stream}},
		EstimatedRowCount: j.res.Rows,
	}, nil
}

func (rs *readServer) ReadRows(req *storagepb.ReadRowsRequest, srv storagepb.BigQueryRead_ReadRowsServer) error {
	if err := rs.auth(srv.Context()); err != nil {
		return err
	}
	s := rs.s
	s.mu.Lock()
	j := s.sessions[req.GetReadStream()]
	fail, failAfter := s.ReadRowsFail, s.ReadRowsFailAfter
	if fail != nil && !s.ReadRowsFailAlways && s.failed {
		fail = nil
	}
	batchRows := s.BatchRows
	s.mu.Unlock()
	if j == nil {
		return status.Errorf(codes.NotFound, "Not found: ReadStream %s", req.GetReadStream())
	}
	if req.GetOffset() < 0 || req.GetOffset() > j.res.Rows {
		return status.Errorf(codes.OutOfRange, "offset %d is beyond the stream's %d rows", req.GetOffset(), j.res.Rows)
	}
	schema := j.res.Schema
	for off := req.GetOffset(); off < j.res.Rows; {
		if fail != nil && off >= failAfter {
			s.mu.Lock()
			s.failed = true
			s.mu.Unlock()
			return fail.Err()
		}
		n := min(batchRows, j.res.Rows-off)
		rec := j.res.Slice(off, n)
		data, err := batchMessage(schema, rec)
		rec.Release()
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		if err := srv.Send(&storagepb.ReadRowsResponse{
			Rows:     &storagepb.ReadRowsResponse_ArrowRecordBatch{ArrowRecordBatch: &storagepb.ArrowRecordBatch{SerializedRecordBatch: data, RowCount: n}},
			RowCount: n,
		}); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// schemaMessage is the IPC message of a schema: an IPC stream's bytes
// before its end-of-stream marker.
func schemaMessage(sc *arrow.Schema) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc), ipc.WithAllocator(memory.DefaultAllocator))
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes()[:buf.Len()-8], nil
}

// batchMessage is the IPC message of one record batch: a stream's bytes
// after its schema message and before its end-of-stream marker.
func batchMessage(sc *arrow.Schema, rec arrow.RecordBatch) ([]byte, error) {
	head, err := schemaMessage(sc)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc), ipc.WithAllocator(memory.DefaultAllocator))
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()[len(head) : buf.Len()-8]), nil
}

// selfSigned makes a TLS certificate for 127.0.0.1 and the pool trusting it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bqfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// oneRow is SELECT 1 AS ok's result.
func oneRow() Result {
	sc := arrow.NewSchema([]arrow.Field{{Name: "ok", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	return Result{Schema: sc, Rows: 1, Slice: func(off, n int64) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).Append(1)
		return b.NewRecordBatch()
	}}
}

// Records is a Result of records held in memory (the fault tests' answers,
// computed on DuckDB).
func Records(schema *arrow.Schema, recs []arrow.RecordBatch) (Result, error) {
	rows, slice, err := arrowrows.Concat(schema, recs)
	return Result{Schema: schema, Rows: rows, Slice: slice}, err
}
