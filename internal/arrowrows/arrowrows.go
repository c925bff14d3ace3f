// Package arrowrows holds Arrow rows in memory for the warehouse fakes
// (internal/dbxfake, internal/bqfake): a result computed elsewhere (on
// DuckDB, in the fault tests) that a fake serves slice by slice.
package arrowrows

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Concat joins recs into one batch and returns its row count and a
// function slicing it: rows [offset, offset+n).
func Concat(schema *arrow.Schema, recs []arrow.RecordBatch) (int64, func(offset, n int64) arrow.RecordBatch, error) {
	cols := make([]arrow.Array, schema.NumFields())
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	for j := range cols {
		if len(recs) == 0 {
			b := array.NewBuilder(memory.DefaultAllocator, schema.Field(j).Type)
			cols[j] = b.NewArray()
			b.Release()
			continue
		}
		parts := make([]arrow.Array, len(recs))
		for i, r := range recs {
			parts[i] = r.Column(j)
		}
		c, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			return 0, nil, err
		}
		cols[j] = c
	}
	all := array.NewRecordBatch(schema, cols, rows)
	return rows, func(off, n int64) arrow.RecordBatch { return all.NewSlice(off, off+n) }, nil
}
