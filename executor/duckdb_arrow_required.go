//go:build !duckdb_arrow

// linkaud reads DuckDB results through DuckDB's Arrow interface, which
// github.com/duckdb/duckdb-go-bindings compiles only with the duckdb_arrow
// build tag. Build and install with the tag:
//
//	go build -tags duckdb_arrow ./...
//	go install -tags duckdb_arrow github.com/linkaud/linkaud/cmd/linkaud@latest
//
// (the Makefile sets it). Without the tag this file is the only one that
// fails to compile, so the build stops with one line naming the tag.

package executor

import (
	"github.com/apache/arrow-go/v18/arrow"
	bindings "github.com/duckdb/duckdb-go-bindings"
)

var _ = linkaud_needs_the_build_tag_duckdb_arrow__go_build_tags_duckdb_arrow

// Stand-ins for duckdb_arrow.go, so that nothing else fails to compile.
func newArrowSchema(bindings.ArrowOptions, []bindings.LogicalType, []string) (*arrow.Schema, bindings.ErrorData) {
	panic("unreachable: built without duckdb_arrow")
}

func chunkToArrow(bindings.ArrowOptions, *arrow.Schema, bindings.DataChunk) (arrow.RecordBatch, bindings.ErrorData) {
	panic("unreachable: built without duckdb_arrow")
}
