package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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

	"cloud.google.com/go/bigquery"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/linkaud/linkaud/dsl"
)

// BigQuery is Google BigQuery through cloud.google.com/go/bigquery.
//
// A statement runs as a query job (jobs.insert, then jobs.getQueryResults
// until it completes; https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs)
// with the project's default dataset, the location, maximum_bytes_billed
// and the labels of the warehouse block (plus linkaud_audience, naming the
// audience, so that billing exports attribute cost per audience). Its
// results are read as Arrow through the BigQuery Storage Read API (the
// client's ArrowIterator: one read stream, which keeps an ordered result's
// order), and each serialized batch decoded with arrow-go/v18's IPC reader,
// so memory holds the client's few buffered batches whatever the result's
// size. The client itself is built on github.com/apache/arrow/go/v15; no
// value of that module reaches linkaud.
//
// Credentials: the credentials_file setting (a service-account key, an
// authorized user, an external account: its "type" says which), or else
// application default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud,
// the metadata server).
type BigQuery struct {
	client   *bigquery.Client
	project  string
	dataset  string
	location string
	maxBytes int64
	labels   map[string]string
	timeout  time.Duration
	creds    string // how the client authenticates, for messages
	log      *slog.Logger
	slots    chan struct{}

	closing     context.Context
	closeCancel context.CancelCauseFunc
}

var (
	_ Warehouse       = (*BigQuery)(nil)
	_ dsl.ColumnTyper = (*BigQuery)(nil)
)

// BigQuery warehouse settings (dsl checks their names and kinds).
const (
	bqSettingProject         = "project"
	bqSettingDataset         = "dataset"
	bqSettingLocation        = "location"
	bqSettingCredentialsFile = "credentials_file"
	bqSettingMaxBytesBilled  = "maximum_bytes_billed"
	bqSettingLabels          = "labels"
	bqSettingTimeout         = "timeout"
)

func openBigQuery(ctx context.Context, w *dsl.Warehouse, opts Options) (*BigQuery, error) {
	b := &BigQuery{log: opts.Logger, slots: make(chan struct{}, opts.MaxConns), creds: "application default credentials"}
	var err error
	for setting, field := range map[string]*string{
		bqSettingProject: &b.project, bqSettingDataset: &b.dataset, bqSettingLocation: &b.location,
	} {
		if v := w.Settings[setting]; v != "" {
			if *field, err = settingValue(v, opts.LookupEnv); err != nil {
				return nil, fmt.Errorf("bigquery: %s: %w", setting, err)
			}
		}
	}
	if b.project == "" {
		return nil, errors.New("bigquery: the warehouse needs project")
	}
	if v := w.Settings[bqSettingMaxBytesBilled]; v != "" {
		if b.maxBytes, err = strconv.ParseInt(v, 10, 64); err != nil || b.maxBytes <= 0 {
			return nil, fmt.Errorf("bigquery: %s: %q is not a positive number of bytes", bqSettingMaxBytesBilled, v)
		}
	}
	if b.labels, err = dsl.ParseLabels(w.Settings[bqSettingLabels]); err != nil {
		return nil, fmt.Errorf("bigquery: %s: %w", bqSettingLabels, err)
	}
	if v := w.Settings[bqSettingTimeout]; v != "" {
		if b.timeout, err = parseTimeout(v); err != nil {
			return nil, fmt.Errorf("bigquery: %s: %w", bqSettingTimeout, err)
		}
	}
	var copts []option.ClientOption
	if v := w.Settings[bqSettingCredentialsFile]; v != "" {
		path, err := settingValue(v, opts.LookupEnv)
		if err != nil {
			return nil, fmt.Errorf("bigquery: %s: %w", bqSettingCredentialsFile, err)
		}
		kind, err := credentialsType(path)
		if err != nil {
			return nil, fmt.Errorf("bigquery: %s: %w", bqSettingCredentialsFile, err)
		}
		copts = append(copts, option.WithAuthCredentialsFile(kind, path))
		b.creds = "the credentials in " + path
	}
	rest := append(append([]option.ClientOption{option.WithUserAgent("linkaud")}, copts...), opts.GoogleAPI.REST...)
	if b.client, err = bigquery.NewClient(ctx, b.project, rest...); err != nil {
		return nil, b.error(ctx, fmt.Errorf("creating the client with %s: %w", b.creds, err))
	}
	b.client.Location = b.location
	storage := append(copts, opts.GoogleAPI.Storage...)
	if err := b.client.EnableStorageReadClient(ctx, storage...); err != nil {
		b.client.Close()
		return nil, b.error(ctx, fmt.Errorf("creating the Storage Read API client with %s: %w", b.creds, err))
	}
	b.closing, b.closeCancel = context.WithCancelCause(context.Background())
	// One query now, so that bad credentials, a missing project or
	// dataset, or a missing permission fail here rather than in a cycle.
	rd, err := b.Query(ctx, "SELECT 1 AS ok", QueryOptions{Tag: "open"})
	if err != nil {
		b.client.Close()
		return nil, err
	}
	_, err = drain(rd)
	if err != nil {
		b.client.Close()
		return nil, err
	}
	if b.dataset != "" {
		if _, err := b.client.DatasetInProject(b.project, b.dataset).Metadata(ctx); err != nil {
			b.client.Close()
			return nil, b.error(ctx, fmt.Errorf("dataset %s.%s: %w", b.project, b.dataset, err))
		}
	}
	b.log.Debug("bigquery: connected", "project", b.project, "dataset", b.dataset, "location", b.location)
	return b, nil
}

// drain reads a reader to its end and releases it.
func drain(rd array.RecordReader) (int64, error) {
	defer rd.Release()
	var n int64
	for rd.Next() {
		n += rd.RecordBatch().NumRows()
	}
	return n, rd.Err()
}

// credentialsType reads the "type" of a Google credentials file, so that a
// file of the wrong kind, or no such file, fails with its name.
func credentialsType(path string) (option.CredentialsType, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return "", fmt.Errorf("%s is not a Google credentials JSON file: %v", path, err)
	}
	switch option.CredentialsType(f.Type) {
	case option.ServiceAccount, option.AuthorizedUser, option.ExternalAccount, option.ImpersonatedServiceAccount:
		return option.CredentialsType(f.Type), nil
	}
	return "", fmt.Errorf("%s holds credentials of type %q: a service_account key, authorized_user, external_account or impersonated_service_account file", path, f.Type)
}

// Dialect implements Warehouse.
func (b *BigQuery) Dialect() string { return "bigquery" }

// Close implements Warehouse.
func (b *BigQuery) Close() error {
	b.closeCancel(ErrClosed)
	return b.client.Close()
}

// statement derives a statement's context: the timeout setting, and done
// with cause ErrClosed when the warehouse closes.
func (b *BigQuery) statement(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if b.closing != nil {
		if b.closing.Err() != nil {
			cancel(ErrClosed)
		}
		stop := context.AfterFunc(b.closing, func() { cancel(ErrClosed) })
		end0 := func() { stop(); cancel(nil) }
		if b.timeout <= 0 {
			return ctx, end0
		}
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, b.timeout)
		return ctx, func() { cancelT(); end0() }
	}
	return ctx, func() { cancel(nil) }
}

// error words err for the audience's status: BigQuery's message and
// reason, with what the setting or permission in question is; the
// context's cause first if it ended the statement.
func (b *BigQuery) error(ctx context.Context, err error) error {
	msg := err.Error()
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		msg = ge.Message
		reason := ""
		if len(ge.Errors) > 0 {
			reason = ge.Errors[0].Reason
			if msg == "" {
				msg = ge.Errors[0].Message
			}
		}
		if reason != "" {
			msg += " (" + reason + ")"
		}
		switch {
		case reason == "bytesBilledLimitExceeded":
			msg += fmt.Sprintf(": the query would bill more than maximum_bytes_billed (%d bytes); raise the setting or narrow the audience", b.maxBytes)
		case ge.Code == 401 || reason == "authError":
			msg = fmt.Sprintf("BigQuery refused %s: %s", b.creds, msg)
		case reason == "accessDenied" || ge.Code == 403 && reason == "":
			msg += " (the credentials need roles/bigquery.jobUser on the project, roles/bigquery.dataViewer on the datasets and roles/bigquery.readSessionUser for the Storage Read API)"
		}
		// What wraps the API's error (creating the client with …: ).
		if prefix, _, ok := strings.Cut(err.Error(), ge.Error()); ok && prefix != "" {
			msg = prefix + msg
		}
		if reason == "notFound" || strings.Contains(ge.Message, "Unrecognized name") || strings.Contains(ge.Message, "Not found: ") || strings.Contains(ge.Message, "Function not found") {
			err = errors.Join(ErrUndefined, err)
		}
	} else {
		// A request that never got an answer: Post "https://…": cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = strings.Replace(msg, ue.Error(), ue.Err.Error(), 1)
		}
		if strings.Contains(msg, "cannot fetch token") || strings.Contains(msg, "oauth2: ") || strings.Contains(msg, "credentials: ") || strings.Contains(msg, "could not find default credentials") {
			msg = fmt.Sprintf("could not authenticate with %s: %s", b.creds, strings.Join(strings.Fields(msg), " "))
		}
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		if errors.Is(cause, context.DeadlineExceeded) && b.timeout > 0 {
			cause = fmt.Errorf("the statement ran longer than the timeout setting (%s)", b.timeout)
		}
		err = errors.Join(cause, err)
		if !strings.Contains(msg, cause.Error()) {
			msg = cause.Error() + ": " + msg
		}
	}
	return &redactedError{"bigquery: " + msg, err}
}

// jobLabels are the warehouse's labels and linkaud_audience.
func (b *BigQuery) jobLabels(tag string) map[string]string {
	out := make(map[string]string, len(b.labels)+1)
	for k, v := range b.labels {
		out[k] = v
	}
	if _, ok := out["linkaud_audience"]; !ok && tag != "" {
		out["linkaud_audience"] = labelValue(tag)
	}
	return out
}

// labelValue makes s a valid label value: lower case letters, digits, _
// and -, at most 63 characters.
func labelValue(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() >= 63 {
			break
		}
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// jobID is a job id that says it is linkaud's and for which audience.
func jobID(tag string) string {
	var r [6]byte
	rand.Read(r[:])
	id := "linkaud_" + labelValue(tag)
	if len(id) > 900 {
		id = id[:900]
	}
	return id + "_" + hex.EncodeToString(r[:])
}

// Query implements Warehouse.
func (b *BigQuery) Query(ctx context.Context, sql string, opts QueryOptions) (array.RecordReader, error) {
	ctx, end := b.statement(ctx)
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		err := b.error(ctx, context.Cause(ctx))
		end()
		return nil, err
	}
	release := func() { <-b.slots; end() }
	q := b.client.Query(sql)
	q.Location = b.location
	if b.dataset != "" {
		q.DefaultProjectID, q.DefaultDatasetID = b.project, b.dataset
	}
	q.MaxBytesBilled = b.maxBytes
	q.Labels = b.jobLabels(opts.Tag)
	// A job id of our own makes the client insert a job (rather than the
	// jobs.query shortcut, whose small results arrive as JSON) and lets
	// the insert be retried.
	q.JobID = jobID(opts.Tag)
	if b.timeout > 0 {
		q.JobTimeout = b.timeout
	}
	job, err := q.Run(ctx)
	if err != nil {
		err = b.error(ctx, err)
		release()
		return nil, err
	}
	it, err := job.Read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			b.cancel(job)
		}
		err = b.error(ctx, err)
		release()
		return nil, err
	}
	r := &bqReader{b: b, ctx: ctx, end: release}
	r.refs.Store(1)
	if !it.IsAccelerated() {
		// A statement without a result table (DDL, DML) has no rows; a
		// query's is read through the Storage Read API or not at all.
		if len(it.Schema) > 0 {
			defer release()
			return nil, b.error(ctx, fmt.Errorf("the results of job %s could not be read through the BigQuery Storage Read API: %s needs bigquery.readsessions.create (roles/bigquery.readSessionUser) on project %s", job.ID(), b.creds, b.project))
		}
		r.schema = arrow.NewSchema(nil, nil)
		r.done = true
		return r, nil
	}
	if r.it, err = it.ArrowIterator(); err != nil {
		defer release()
		return nil, b.error(ctx, err)
	}
	if err := r.start(); err != nil {
		defer r.finish()
		return nil, b.error(ctx, err)
	}
	return r, nil
}

// cancel asks BigQuery to cancel a job whose caller gave up on it, so that
// it stops using (and billing) slots.
func (b *BigQuery) cancel(job *bigquery.Job) {
	go func() {
		ctx, done := context.WithTimeout(context.Background(), 30*time.Second)
		defer done()
		if err := job.Cancel(ctx); err != nil {
			b.log.Debug("bigquery: cancelling a job", "job", job.ID(), "err", err)
		}
	}()
}

// bqReader decodes the Storage Read API's serialized batches.
type bqReader struct {
	b      *BigQuery
	ctx    context.Context
	end    func()
	it     bigquery.ArrowIterator
	schema *arrow.Schema
	// exhausted: the iterator said Done, its stream readers have returned.
	exhausted bool
	once      sync.Once
	readerState
}

var _ array.RecordReader = (*bqReader)(nil)

func (r *bqReader) start() error {
	raw := r.it.SerializedArrowSchema()
	rd, err := ipc.NewReader(bytes.NewReader(raw), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return fmt.Errorf("the read session's Arrow schema: %w", err)
	}
	r.schema = rd.Schema()
	rd.Release()
	return nil
}

func (r *bqReader) Schema() *arrow.Schema { return r.schema }

func (r *bqReader) Next() bool {
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	for !r.done {
		batch, err := r.it.Next()
		if errors.Is(err, iterator.Done) {
			r.done, r.exhausted = true, true
			r.finish()
			return false
		}
		if err != nil {
			r.fail(r.b.error(r.ctx, err))
			r.finish()
			return false
		}
		rec, err := decodeBatch(r.schema, batch)
		if err != nil {
			r.fail(r.b.error(r.ctx, err))
			r.finish()
			return false
		}
		if rec.NumRows() == 0 {
			rec.Release()
			continue
		}
		r.current = rec
		return true
	}
	return false
}

// decodeBatch reads one serialized record batch (its stream's schema
// message, then the batch's).
func decodeBatch(schema *arrow.Schema, batch *bigquery.ArrowRecordBatch) (arrow.RecordBatch, error) {
	rd, err := ipc.NewReader(io.MultiReader(bytes.NewReader(batch.Schema), bytes.NewReader(batch.Data)),
		ipc.WithAllocator(memory.DefaultAllocator), ipc.WithSchema(schema))
	if err != nil {
		return nil, fmt.Errorf("a batch of stream %s: %w", batch.PartitionID, err)
	}
	defer rd.Release()
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("a batch of stream %s: %w", batch.PartitionID, err)
		}
		return nil, fmt.Errorf("a batch of stream %s holds no record", batch.PartitionID)
	}
	rec := rd.RecordBatch()
	rec.Retain()
	return rec, nil
}

func (r *bqReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	r.finish()
}

// finish ends the read: the context's end stops the client's stream
// readers, and draining lets one blocked on a full buffer return (the
// client's send does not watch the context).
func (r *bqReader) finish() {
	r.once.Do(func() {
		r.end()
		if r.it != nil && !r.exhausted {
			go drainArrow(r.it)
		}
	})
}

// drainArrow reads a cancelled iterator until its stream readers have all
// returned. Its Next picks at random between a buffered batch and the
// context's end, so a context error does not mean they have: a reader whose
// Recv had a message before the cancel still sends it, and blocks forever
// if nobody takes it. Only Done (the channel closed after every reader
// returned) says they have.
func drainArrow(it bigquery.ArrowIterator) {
	for {
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return
		}
		if err != nil {
			time.Sleep(time.Millisecond)
		}
	}
}

// Columns implements Warehouse.
func (b *BigQuery) Columns(ctx context.Context, table dsl.TableName) ([]string, error) {
	cols, err := b.ColumnTypes(ctx, table)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names, nil
}

// ColumnTypes implements dsl.ColumnTyper from the dataset's
// INFORMATION_SCHEMA.COLUMNS view (https://cloud.google.com/bigquery/docs/information-schema-columns).
func (b *BigQuery) ColumnTypes(ctx context.Context, table dsl.TableName) ([]dsl.ColumnType, error) {
	project, dataset := b.project, b.dataset
	var name string
	switch len(table) {
	case 1:
		name = table[0]
	case 2:
		dataset, name = table[0], table[1]
	case 3:
		project, dataset, name = table[0], table[1], table[2]
	default:
		return nil, fmt.Errorf("bigquery: table name %q has one to three parts: [PROJECT.]DATASET.TABLE", table)
	}
	if dataset == "" {
		return nil, fmt.Errorf("bigquery: table %s names no dataset, and the warehouse has no dataset setting", table)
	}
	q := "SELECT column_name, data_type FROM " + backquoteName(project) + "." + backquoteName(dataset) +
		".INFORMATION_SCHEMA.COLUMNS WHERE table_name = " + bqString(name) + " ORDER BY ordinal_position"
	rd, err := b.Query(ctx, q, QueryOptions{Tag: "check"})
	if err != nil {
		var re *redactedError
		if errors.As(err, &re) && errors.Is(err, ErrUndefined) && strings.Contains(re.msg, "Not found: Dataset") {
			return nil, &redactedError{re.msg, errors.Join(ErrTableNotFound, err)}
		}
		return nil, err
	}
	defer rd.Release()
	var out []dsl.ColumnType
	for rd.Next() {
		rec := rd.RecordBatch()
		names, err := NewCells(rec.Column(0))
		if err != nil {
			return nil, err
		}
		types, err := NewCells(rec.Column(1))
		if err != nil {
			return nil, err
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			n, _ := names.Text(i)
			t, _ := types.Text(i)
			out = append(out, dsl.ColumnType{Name: n, Class: bqClass(t), Type: t})
		}
	}
	if err := rd.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bigquery: %w: %s (no table %s in dataset %s.%s)", ErrTableNotFound, table, name, project, dataset)
	}
	return out, nil
}

func backquoteName(s string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`"
}

func bqString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// bqClass is what the checks may do with a column of BigQuery type t
// (data_type as INFORMATION_SCHEMA writes it: INT64, NUMERIC(10, 2),
// STRING(50), ARRAY<STRING>, …).
func bqClass(t string) dsl.TypeClass {
	base := strings.ToUpper(t)
	if i := strings.IndexAny(base, "(<"); i >= 0 {
		base = strings.TrimSpace(base[:i])
	}
	switch base {
	case "INT64", "INT", "SMALLINT", "INTEGER", "BIGINT", "TINYINT", "BYTEINT", "NUMERIC", "DECIMAL", "BIGNUMERIC", "BIGDECIMAL", "FLOAT64":
		return dsl.ClassNumber
	case "STRING":
		return dsl.ClassText
	case "BOOL", "BOOLEAN":
		return dsl.ClassBool
	case "DATE", "DATETIME", "TIMESTAMP":
		return dsl.ClassTime
	case "BYTES", "JSON", "GEOGRAPHY", "ARRAY", "STRUCT", "INTERVAL", "TIME", "RANGE":
		return dsl.ClassOther
	}
	return dsl.ClassUnknown
}
