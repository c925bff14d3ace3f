package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linkaud/linkaud/dsl"
)

// Postgres is a warehouse spoken to over PostgreSQL's wire protocol:
// PostgreSQL itself, or Amazon Redshift (dialect "redshift"), through pgx.
//
// A statement is described first (its result columns' types), then run in
// the extended protocol, asking PostgreSQL for binary values of the types
// the reader decodes itself (integers, floats, booleans, text, dates,
// timestamps, intervals, bytea, uuid) and text for the others; Redshift is
// asked for text throughout. Rows are read off the connection as the reader
// advances and turned into Arrow batches of pgBatchRows rows, so memory
// does not grow with the result:
//
//	smallint, integer, bigint      int16, int32, int64
//	real, double precision         float32, float64
//	numeric(p, s), p <= 38 / 76    decimal128(p, s) / decimal256(p, s), exact
//	numeric without precision      utf8 (the exact decimal text)
//	boolean                        bool
//	text, varchar, char, name      utf8
//	date                           date32
//	timestamp                      timestamp[us] (wall clock, read as UTC)
//	timestamptz                    timestamp[us, UTC]
//	time                           time64[us]
//	interval                       month_day_nano interval
//	bytea                          binary
//	uuid                           utf8, canonical form
//	json, jsonb and others         utf8, PostgreSQL's text form
//
// Each session runs with TimeZone UTC (the planner compares timestamps as
// UTC), DateStyle ISO, IntervalStyle postgres, standard_conforming_strings
// on and enable_nestloop off (PostgreSQL), the schema setting first in search_path, statement_timeout
// from the timeout setting, and application_name from query_tag.
type Postgres struct {
	pool    *pgxpool.Pool
	dialect string
	schema  string
	tag     string
	timeout time.Duration
	exact   bool
	log     *slog.Logger
	secrets []string

	closing     context.Context
	closeCancel context.CancelCauseFunc
}

var _ Warehouse = (*Postgres)(nil)

// PostgreSQL and Redshift warehouse settings (dsl checks their names and
// kinds).
const (
	pgSettingSchema     = "schema"
	pgSettingQueryTag   = "query_tag"
	pgSettingTimeout    = "timeout"
	pgSettingExactNames = "exact_names"
)

func openPostgres(ctx context.Context, w *dsl.Warehouse, opts Options) (*Postgres, error) {
	kind := w.Type // "postgres" or "redshift"
	if !w.DSN.IsSet() {
		return nil, fmt.Errorf(`%s: the warehouse needs dsn env("NAME")`, kind)
	}
	dsn, ok := opts.LookupEnv(w.DSN.Env)
	if !ok || strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("%s: %s is not set", kind, w.DSN)
	}
	secrets := dsnSecrets(dsn)
	fail := func(format string, args ...any) (*Postgres, error) {
		err := fmt.Errorf(format, args...)
		return nil, &redactedError{redact(err.Error(), secrets), err}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN.
		return fail("%s: the DSN in %s does not parse: %v", kind, w.DSN, err)
	}
	if p := cfg.ConnConfig.Password; p != "" {
		secrets = append(secrets, p)
	}
	pg := &Postgres{dialect: kind, log: opts.Logger, secrets: secrets, exact: w.Settings[pgSettingExactNames] == "true"}
	for setting, field := range map[string]*string{pgSettingSchema: &pg.schema, pgSettingQueryTag: &pg.tag} {
		if v := w.Settings[setting]; v != "" {
			if *field, err = settingValue(v, opts.LookupEnv); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", kind, setting, err)
			}
		}
	}
	if v := w.Settings[pgSettingTimeout]; v != "" {
		if pg.timeout, err = parseTimeout(v); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", kind, pgSettingTimeout, err)
		}
	}
	// max_connections bounds the sessions as for the other warehouses (the
	// checker accepts it); it wins over the caller's MaxConns.
	maxConns := opts.MaxConns
	if v := w.Settings[settingMaxConns]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %s must be a positive integer, not %q", kind, settingMaxConns, v)
		}
		maxConns = n
	}
	cfg.MaxConns = int32(maxConns)
	// A cancelled statement is cancelled on the server too (a cancel
	// request), and the connection given up 5 s later if it is not.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = pg.applicationName()
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		for _, s := range pg.sessionSettings() {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	pg.closing, pg.closeCancel = context.WithCancelCause(context.Background())
	if pg.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fail("%s: connecting with %s: %v", kind, w.DSN, err)
	}
	// Connect now, so that a bad DSN or password fails here, not in a cycle.
	c, err := pg.pool.Acquire(ctx)
	if err != nil {
		pg.pool.Close()
		return fail("%s: connecting with %s: %v", kind, w.DSN, pgMessage(err))
	}
	c.Release()
	pg.log.Debug(kind+": connected", "host", cfg.ConnConfig.Host, "database", cfg.ConnConfig.Database, "user", cfg.ConnConfig.User)
	return pg, nil
}

// dsnSecrets are the parts of a DSN to keep out of messages: the DSN, and
// a URL's password (a key=value DSN's password is found by ParseConfig).
func dsnSecrets(dsn string) []string {
	out := []string{dsn}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	return out
}

func (pg *Postgres) applicationName() string {
	name := "linkaud"
	if pg.tag != "" {
		name = "linkaud:" + pg.tag
	}
	if len(name) > 63 { // NAMEDATALEN-1: PostgreSQL truncates, with a notice
		name = name[:63]
	}
	return name
}

func (pg *Postgres) sessionSettings() []string {
	s := []string{"SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, MDY'"}
	if pg.dialect == "redshift" {
		if pg.exact {
			s = append(s, "SET enable_case_sensitive_identifier TO true")
		}
	} else {
		// enable_nestloop off: the plan's relations are whole tables
		// grouped and joined, which hash joins serve; PostgreSQL has no
		// statistics for a materialized CTE and underestimates its rows
		// (an estimate of 1 for 50,000), then picks nested loops that grow
		// with the square of the data: premium_heavy_users of the 1M bench
		// ran over 10 minutes with them, 74 s without.
		s = append(s, "SET IntervalStyle = 'postgres'", "SET standard_conforming_strings = on", "SET enable_nestloop = off")
	}
	if pg.schema != "" {
		s = append(s, "SET search_path TO "+pg.ident(pg.schema)+", public")
	}
	if pg.timeout > 0 {
		s = append(s, "SET statement_timeout = "+strconv.FormatInt(pg.timeout.Milliseconds(), 10))
	}
	return s
}

// ident quotes a name part as the planner's dialect does: folded to lower
// case unless exact_names, then quoted.
func (pg *Postgres) ident(name string) string {
	if !pg.exact && isPlainIdent(name) {
		name = strings.ToLower(name)
	}
	return quoteIdent(name)
}

func isPlainIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && ('0' <= c && c <= '9' || c == '$')) {
			return false
		}
	}
	return s != ""
}

// Dialect implements Warehouse: "postgres" or "redshift".
func (pg *Postgres) Dialect() string { return pg.dialect }

// statement derives a statement's context: the timeout setting, and done
// with cause ErrClosed when the warehouse closes.
func (pg *Postgres) statement(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if pg.closing.Err() != nil {
		cancel(ErrClosed)
	}
	stop := context.AfterFunc(pg.closing, func() { cancel(ErrClosed) })
	end := func() { stop(); cancel(nil) }
	if pg.timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, pg.timeout)
		end0 := end
		end = func() { cancelT(); end0() }
	}
	return ctx, end
}

// error words err for the audience's status: the server's message with
// its detail, hint and SQLSTATE, the context's cause first if it ended the
// statement; secrets redacted. Names the statement does not resolve wrap
// ErrUndefined.
func (pg *Postgres) error(ctx context.Context, err error) error {
	msg := pgMessage(err)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		msg = "the connection to the server was lost (" + msg + ")"
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		if errors.Is(cause, context.DeadlineExceeded) && pg.timeout > 0 {
			cause = fmt.Errorf("the statement ran longer than the timeout setting (%s)", pg.timeout)
		}
		err = errors.Join(cause, err)
		msg = cause.Error() + ": " + msg
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42P01", "42703", "3F000", "42883": // undefined table, column, schema, function
			err = errors.Join(ErrUndefined, err)
		case "57014": // query_canceled: statement_timeout on the server
			if ctx.Err() == nil && pg.timeout > 0 {
				msg = fmt.Sprintf("the statement ran longer than the timeout setting (%s): %s", pg.timeout, msg)
			}
		}
	}
	return &redactedError{pg.dialect + ": " + redact(msg, pg.secrets), err}
}

// pgMessage is the server's message of err with its detail and hint, or
// err's text.
func pgMessage(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	msg := pe.Severity + ": " + pe.Message
	if pe.Detail != "" {
		msg += " (" + pe.Detail + ")"
	}
	if pe.Hint != "" {
		msg += "; hint: " + pe.Hint
	}
	return msg + " (SQLSTATE " + pe.Code + ")"
}

// Columns implements Warehouse, from the description of a SELECT of the
// table, so that the names are resolved exactly as the plans' are.
func (pg *Postgres) Columns(ctx context.Context, table dsl.TableName) ([]string, error) {
	fields, err := pg.describe(ctx, table)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return names, nil
}

// ColumnTypes implements ColumnTyper.
func (pg *Postgres) ColumnTypes(ctx context.Context, table dsl.TableName) ([]dsl.ColumnType, error) {
	fields, err := pg.describe(ctx, table)
	if err != nil {
		return nil, err
	}
	out := make([]dsl.ColumnType, len(fields))
	for i, f := range fields {
		out[i] = dsl.ColumnType{Name: f.Name, Class: pgClass(f.DataTypeOID), Type: pgTypeName(f.DataTypeOID)}
	}
	return out, nil
}

func (pg *Postgres) describe(ctx context.Context, table dsl.TableName) ([]pgconn.FieldDescription, error) {
	if len(table) < 1 || len(table) > 3 {
		return nil, fmt.Errorf("%s: table name %q has one to three parts", pg.dialect, table)
	}
	parts := make([]string, len(table))
	for i, p := range table {
		parts[i] = pg.ident(p)
	}
	ctx, end := pg.statement(ctx)
	defer end()
	c, err := pg.pool.Acquire(ctx)
	if err != nil {
		return nil, pg.error(ctx, err)
	}
	defer c.Release()
	sd, err := c.Conn().PgConn().Prepare(ctx, "", "SELECT * FROM "+strings.Join(parts, ".")+" LIMIT 0", nil)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") {
			return nil, pg.error(ctx, fmt.Errorf("%w: %s (%w)", ErrTableNotFound, table, err))
		}
		return nil, pg.error(ctx, err)
	}
	return sd.Fields, nil
}

// Query implements Warehouse.
func (pg *Postgres) Query(ctx context.Context, query string, opts QueryOptions) (array.RecordReader, error) {
	ctx, end := pg.statement(ctx)
	c, err := pg.pool.Acquire(ctx)
	if err != nil {
		err = pg.error(ctx, err)
		end()
		return nil, err
	}
	// The audience and query tag, where the warehouse's own tools show the
	// statement (pg_stat_activity, Redshift's STL_QUERY).
	query = "/* " + commentSafe(pg.applicationName()+" "+opts.Tag) + " */\n" + query
	r := &pgReader{pg: pg, ctx: ctx, end: end, conn: c}
	r.refs.Store(1)
	if opts.Selective && pg.dialect != "redshift" {
		// A statement restricted to a few rows (one profile's) wants the
		// nested loops the session turns off for whole-table cycles.
		if _, err := c.Exec(ctx, "SET enable_nestloop = on"); err != nil {
			err = pg.error(ctx, err)
			r.finish()
			return nil, err
		}
		r.restore = "SET enable_nestloop = off"
	}
	if err := r.start(query); err != nil {
		err = pg.error(ctx, err)
		r.finish()
		return nil, err
	}
	return r, nil
}

// commentSafe keeps s from ending the comment it is put in.
func commentSafe(s string) string {
	s = strings.ReplaceAll(s, "*/", "* /")
	return strings.ReplaceAll(s, "/*", "/ *")
}

// Close implements Warehouse. Statements still streaming are cancelled;
// the pool closes once their readers are released.
func (pg *Postgres) Close() error {
	pg.closeCancel(ErrClosed)
	go pg.pool.Close()
	return nil
}
