package executor_test

import (
	"testing"

	"github.com/linkaud/linkaud/internal/bqfake"
	"github.com/linkaud/linkaud/internal/dbxfake"
)

// BenchmarkStreamVendors reads a million audience-shaped rows (two text
// keys and an integer) from the BigQuery and Databricks fakes through the
// executor, every cell read as canonical text as the differ does. The
// fakes make the rows and serialize them in the same process, so the
// figure bounds the executor's own cost (decoding, the client's buffering)
// on this machine, not a warehouse's (the fakes' own work, fmt.Sprintf of
// every key, is in the figure too):
//
//	go test -tags duckdb_arrow -run '^$' -bench StreamVendors ./executor
func BenchmarkStreamVendors(b *testing.B) {
	const n = 1_000_000
	b.Run("bigquery-storage-read", func(b *testing.B) {
		fake := newBQFake(b)
		fake.BatchRows = 8192
		fake.Answer = func(string) bqfake.Result { return bqRows(n) }
		wh, err := openBigQuery(b, fake, nil)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, func() int64 { return readExecutor(b, wh, "SELECT 1 ORDER BY 1") })
	})
	b.Run("databricks-arrow-stream", func(b *testing.B) {
		srv := dbxfake.New(b)
		srv.ChunkRows, srv.BatchRows = 100_000, 8192
		srv.Answer = func(string) dbxfake.Result { return audienceRows(n) }
		wh, err := openDatabricks(b, srv, nil)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, func() int64 { return readExecutor(b, wh, "SELECT 1") })
	})
}
