package gen

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"

	"github.com/linkaud/linkaud/internal/pgload"
)

// PostgresOptions configure LoadPostgres.
type PostgresOptions struct {
	// Dir is a workspace written by Generate (its data files).
	Dir string
	// DSN connects to the PostgreSQL database to load (required; a libpq
	// URL or key=value string). It is never written anywhere.
	DSN string
	// DSNEnv names the environment variable the workspace reads the DSN
	// from (its warehouse block says dsn env(DSNEnv)). Default PG_DSN.
	DSNEnv string
	// Tables limits the load to these warehouse names (e.g. the ones a
	// mutation rewrote); default every generated table.
	Tables []string
	// Indexes adds an index on each table's key and join columns, as a
	// user's database would have. Default true; the benchmark also
	// measures without.
	NoIndexes bool
	// Logger receives one line per table. Default slog.Default().
	Logger *slog.Logger
}

// pgIndexes are the key and join columns of each generated table.
var pgIndexes = map[string][]string{
	"ANALYTICS.PROFILES":             {"segment_id", "email", "household_id"},
	"ANALYTICS.AUDIENCE_MEMBERSHIPS": {"segment_id"},
	"ANALYTICS.TRACKS":               {"user_id"},
	"BANK.ACCOUNTS":                  {"id", "email"},
	"BANK.CREDIT_CARDS":              {"id", "account_id"},
	"BANK.TRANSACTIONS":              {"id", "card_id", "subscription_id"},
	"BANK.SUBSCRIPTIONS":             {"id", "account_id"},
	"HOME.HOUSEHOLDS":                {"id"},
	"HOME.PETS":                      {"id"},
	"HOME.HOUSEHOLD_PETS":            {"household_id", "pet_id"},
}

// LoadPostgres copies a generated workspace's tables into a PostgreSQL
// database (replacing tables of those names: schemas analytics, bank,
// home) and rewrites the workspace's warehouse block to read them there, so
// that the same audiences run on the user's own server. The data files
// stay, for `linkaud gen --mutate` (which loads what it rewrote again).
func LoadPostgres(ctx context.Context, opts PostgresOptions) ([]Table, error) {
	if opts.DSN == "" {
		return nil, fmt.Errorf("gen: postgres: no DSN")
	}
	if opts.DSNEnv == "" {
		opts.DSNEnv = "PG_DSN"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	wsPath := filepath.Join(opts.Dir, WorkspaceFile)
	text, err := os.ReadFile(wsPath)
	if err != nil {
		return nil, fmt.Errorf("gen: postgres: %s is not a generated workspace: %w", opts.Dir, err)
	}
	files := loadsOf(string(text))
	if len(files) == 0 {
		// A workspace already on PostgreSQL: the files are where
		// Generate writes them.
		for _, t := range tables(sizes{}) {
			files = append(files, Table{Name: t.name, File: "data/" + t.file})
		}
	}
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("gen: postgres: %w", err)
	}
	defer duck.Close()
	duck.SetMaxOpenConns(1)
	var load []pgload.Table
	var out []Table
	for _, f := range files {
		if len(opts.Tables) > 0 && !contains(opts.Tables, f.Name) {
			continue
		}
		parts := strings.Split(f.Name, ".")
		stmts := []string{
			fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS "%s"`, parts[0]),
			fmt.Sprintf(`CREATE OR REPLACE VIEW "%s"."%s" AS SELECT * FROM read_parquet(%s)`, parts[0], parts[1], sqlString(filepath.Join(opts.Dir, f.File))),
		}
		for _, s := range stmts {
			if _, err := duck.ExecContext(ctx, s); err != nil {
				return nil, fmt.Errorf("gen: postgres: %s: %w", f.Name, err)
			}
		}
		t := pgload.Table{Name: parts}
		if !opts.NoIndexes {
			t.Index = pgIndexes[f.Name]
		}
		load = append(load, t)
		out = append(out, f)
	}
	conn, err := pgx.Connect(ctx, opts.DSN)
	if err != nil {
		// pgx's messages name the host and user, never the password.
		return nil, fmt.Errorf("gen: postgres: connecting: %w", err)
	}
	defer conn.Close(ctx)
	start := time.Now()
	err = pgload.Copy(ctx, duck, conn, load, pgload.Options{Progress: func(table string, rows int64) {
		opts.Logger.Debug("gen: copying to PostgreSQL", "table", table, "rows", rows)
	}})
	if err != nil {
		return nil, fmt.Errorf("gen: postgres: %w", err)
	}
	opts.Logger.Info("gen: loaded into PostgreSQL", "tables", len(load), "took", time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(wsPath, []byte(postgresWarehouse(string(text), opts.DSNEnv)), 0o644); err != nil {
		return nil, fmt.Errorf("gen: postgres: %w", err)
	}
	return out, nil
}

var (
	loadLine       = regexp.MustCompile(`(?m)^\s*load "([^"]+)" from "([^"]+)"\s*$`)
	warehouseBlock = regexp.MustCompile(`(?s)warehouse \{.*?\n\}\n`)
)

func loadsOf(ws string) []Table {
	var out []Table
	for _, m := range loadLine.FindAllStringSubmatch(ws, -1) {
		out = append(out, Table{Name: m[1], File: m[2]})
	}
	return out
}

// postgresWarehouse replaces the workspace's warehouse block by one that
// reads the tables from PostgreSQL, the DSN from the environment.
func postgresWarehouse(ws, env string) string {
	block := fmt.Sprintf("warehouse {\n  type postgres\n  dsn env(%q)\n  # the data files under data/ were loaded with linkaud gen --warehouse postgres\n}\n", env)
	return warehouseBlock.ReplaceAllLiteralString(ws, block)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
