package executor_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/pgtest"
)

// pgBenchQuery is a result shaped like an audience's rows: text keys, an
// integer, a timestamp and a text enrichment.
const pgBenchQuery = `SELECT 'u_' || i AS profile_key, i AS key_0, TIMESTAMP '2026-01-01' + i * INTERVAL '1 second' AS enrich_0, md5(i::text) AS enrich_1
	FROM generate_series(1, 1000000) i`

// BenchmarkStreamPostgres reads a million rows from the PostgreSQL test
// server two ways in one run: through the executor (binary values into
// Arrow batches, every cell read as canonical text as the differ does) and
// through pgx's own row reader decoding into Go values, the floor a
// client of the server pays. Run with the server up:
//
//	./.ci/with-postgres.sh go test -tags duckdb_arrow -run '^$' -bench StreamPostgres ./executor
func BenchmarkStreamPostgres(b *testing.B) {
	dsn := pgtest.NewDatabase(b)
	ctx := context.Background()
	b.Run("executor-arrow", func(b *testing.B) {
		wh := openPGAt2(b, dsn)
		measure(b, func() int64 { return readExecutor(b, wh, pgBenchQuery) })
	})
	b.Run("pgx-rows", func(b *testing.B) {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		measure(b, func() int64 {
			rows, err := c.Query(ctx, pgBenchQuery)
			if err != nil {
				b.Fatal(err)
			}
			defer rows.Close()
			var n int64
			for rows.Next() {
				if _, err := rows.Values(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			return n
		})
	})
}

func openPGAt2(b *testing.B, dsn string) executor.Warehouse {
	b.Helper()
	w := &dsl.Warehouse{Type: "postgres", DSN: dsl.Secret{Env: "PG_DSN"}, Settings: map[string]string{}}
	wh, err := executor.Open(context.Background(), w, executor.Options{LookupEnv: func(string) (string, bool) { return dsn, true }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { wh.Close() })
	return wh
}
