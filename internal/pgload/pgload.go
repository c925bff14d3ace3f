// Package pgload copies tables from an embedded DuckDB database into
// PostgreSQL: how `linkaud gen --warehouse postgres` loads its generated
// data set (Parquet, read through DuckDB) into a user's server, and how the
// tests put the same data on both engines.
//
// Entry point: Copy. Tables are created under the names the postgres
// dialect writes for the workspace's names (lower-cased unless exact), with
// the PostgreSQL type of each DuckDB column, filled through COPY FROM STDIN
// (pgx's CopyFrom, binary), and analyzed, so the planner's statistics are
// fresh.
package pgload

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/linkaud/linkaud/planner"
)

// Table names a table to copy, by its name parts in DuckDB (matched
// exactly); in PostgreSQL each part, and each column, is named by
// Options.Ident.
type Table struct {
	Name []string
	// Index lists columns to index after loading: keys and join columns,
	// as a user's database would have them.
	Index []string
}

// Options configure Copy.
type Options struct {
	// Ident quotes a name part for PostgreSQL; the default is the postgres
	// dialect's rule (planner.Postgres.Ident): a name that could be
	// written unquoted is lower-cased, then quoted.
	Ident func(string) string
	// Progress, when set, is called with the rows copied so far per table.
	Progress func(table string, rows int64)
}

// Copy creates and fills each table in PostgreSQL from DuckDB, replacing a
// table of that name.
func Copy(ctx context.Context, duck *sql.DB, pg *pgx.Conn, tables []Table, opts Options) error {
	if opts.Ident == nil {
		opts.Ident = planner.Postgres.Ident
	}
	for _, t := range tables {
		if err := copyTable(ctx, duck, pg, t, opts); err != nil {
			return fmt.Errorf("pgload: %s: %w", strings.Join(t.Name, "."), err)
		}
	}
	return nil
}

type column struct {
	name, duckType, pgType string
}

func copyTable(ctx context.Context, duck *sql.DB, pg *pgx.Conn, t Table, opts Options) error {
	cols, err := duckColumns(ctx, duck, t.Name)
	if err != nil {
		return err
	}
	pgCols := make([]string, len(cols))
	defs := make([]string, len(cols))
	for i, c := range cols {
		pgCols[i] = opts.Ident(c.name)
		defs[i] = pgCols[i] + " " + c.pgType
	}
	pgName := make([]string, len(t.Name))
	for i, p := range t.Name {
		pgName[i] = opts.Ident(p)
	}
	name := strings.Join(pgName, ".")
	stmts := []string{}
	if len(pgName) > 1 {
		stmts = append(stmts, "CREATE SCHEMA IF NOT EXISTS "+strings.Join(pgName[:len(pgName)-1], "."))
	}
	stmts = append(stmts, "DROP TABLE IF EXISTS "+name, "CREATE TABLE "+name+" ("+strings.Join(defs, ", ")+")")
	for _, s := range stmts {
		if _, err := pg.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	// The connection caches statement descriptions, COPY's among them: a
	// table replaced under the same name must not be copied into by its
	// predecessor's column types.
	if err := pg.DeallocateAll(ctx); err != nil {
		return err
	}
	rows, err := duck.QueryContext(ctx, "SELECT * FROM "+duckName(t.Name))
	if err != nil {
		return err
	}
	defer rows.Close()
	src := &rowSource{rows: rows, vals: make([]any, len(cols)), ptrs: make([]any, len(cols)), table: name, opts: opts}
	for i := range src.vals {
		src.ptrs[i] = &src.vals[i]
	}
	// CopyFrom wants the identifiers unquoted: it quotes them itself.
	ident := make(pgx.Identifier, len(pgName))
	for i, p := range pgName {
		ident[i] = unquote(p)
	}
	plain := make([]string, len(pgCols))
	for i, c := range pgCols {
		plain[i] = unquote(c)
	}
	if _, err := pg.CopyFrom(ctx, ident, plain, src); err != nil {
		return err
	}
	if src.err != nil {
		return src.err
	}
	for _, ic := range t.Index {
		col := opts.Ident(ic)
		if _, err := pg.Exec(ctx, "CREATE INDEX ON "+name+" ("+col+")"); err != nil {
			return fmt.Errorf("index on %s: %w", ic, err)
		}
	}
	if _, err := pg.Exec(ctx, "ANALYZE "+name); err != nil {
		return err
	}
	return nil
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

func duckName(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(q, ".")
}

func duckColumns(ctx context.Context, duck *sql.DB, name []string) ([]column, error) {
	rows, err := duck.QueryContext(ctx, "DESCRIBE SELECT * FROM "+duckName(name))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cnames, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []column
	for rows.Next() {
		vals := make([]any, len(cnames))
		ptrs := make([]any, len(cnames))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		c := column{name: fmt.Sprint(vals[0]), duckType: fmt.Sprint(vals[1])}
		if c.pgType, err = pgType(c.duckType); err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// pgType is the PostgreSQL type holding the values of a DuckDB type.
func pgType(duck string) (string, error) {
	t := strings.ToUpper(duck)
	switch {
	case t == "VARCHAR" || t == "TEXT" || t == "STRING":
		return "text", nil
	case t == "BIGINT" || t == "INT8" || t == "LONG":
		return "bigint", nil
	case t == "INTEGER" || t == "INT4" || t == "INT" || t == "UINTEGER" || t == "USMALLINT":
		if t == "UINTEGER" {
			return "bigint", nil
		}
		return "integer", nil
	case t == "SMALLINT" || t == "TINYINT" || t == "UTINYINT":
		return "smallint", nil
	case t == "UBIGINT" || t == "HUGEINT" || t == "UHUGEINT":
		return "numeric(39,0)", nil
	case t == "DOUBLE" || t == "FLOAT8":
		return "double precision", nil
	case t == "FLOAT" || t == "REAL" || t == "FLOAT4":
		return "real", nil
	case t == "BOOLEAN" || t == "BOOL":
		return "boolean", nil
	case t == "DATE":
		return "date", nil
	case t == "TIMESTAMP" || t == "DATETIME" || t == "TIMESTAMP_US" || t == "TIMESTAMP_MS" || t == "TIMESTAMP_S" || t == "TIMESTAMP_NS":
		return "timestamp", nil
	case t == "TIMESTAMP WITH TIME ZONE" || t == "TIMESTAMPTZ":
		return "timestamptz", nil
	case t == "TIME":
		return "time", nil
	case t == "INTERVAL":
		return "interval", nil
	case t == "UUID":
		return "uuid", nil
	case t == "BLOB" || t == "BYTEA":
		return "bytea", nil
	case strings.HasPrefix(t, "DECIMAL(") || strings.HasPrefix(t, "NUMERIC("):
		return "numeric" + t[strings.Index(t, "("):], nil
	}
	return "", fmt.Errorf("no PostgreSQL type for DuckDB's %s", duck)
}

// rowSource feeds CopyFrom from a DuckDB result.
type rowSource struct {
	rows  *sql.Rows
	vals  []any
	ptrs  []any
	err   error
	n     int64
	table string
	opts  Options
}

func (s *rowSource) Next() bool {
	if !s.rows.Next() {
		s.err = s.rows.Err()
		return false
	}
	if s.err = s.rows.Scan(s.ptrs...); s.err != nil {
		return false
	}
	s.n++
	if s.opts.Progress != nil && s.n%100_000 == 0 {
		s.opts.Progress(s.table, s.n)
	}
	return true
}

func (s *rowSource) Values() ([]any, error) {
	out := make([]any, len(s.vals))
	for i, v := range s.vals {
		out[i] = pgValue(v)
	}
	return out, nil
}

func (s *rowSource) Err() error { return s.err }

// pgValue converts a value DuckDB's driver returns to one pgx encodes.
func pgValue(v any) any {
	switch v := v.(type) {
	case duckdb.Decimal:
		return pgtype.Numeric{Int: new(big.Int).Set(v.Value), Exp: -int32(v.Scale), Valid: true}
	case *big.Int:
		return pgtype.Numeric{Int: v, Valid: true}
	case uint64:
		return pgtype.Numeric{Int: new(big.Int).SetUint64(v), Valid: true}
	case duckdb.UUID:
		return pgtype.UUID{Bytes: v, Valid: true}
	case duckdb.Interval:
		return pgtype.Interval{Months: v.Months, Days: v.Days, Microseconds: v.Micros, Valid: true}
	case time.Time:
		return v.UTC()
	}
	return v
}
