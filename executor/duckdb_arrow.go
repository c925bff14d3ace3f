//go:build duckdb_arrow

package executor

import bindings "github.com/duckdb/duckdb-go-bindings"

// DuckDB's Arrow conversion, which duckdb-go-bindings compiles only with
// the duckdb_arrow build tag. Without the tag, duckdb_arrow_required.go
// stops the build with an error that says so.
var (
	newArrowSchema = bindings.NewArrowSchema
	chunkToArrow   = bindings.DataChunkToArrowArray
)
