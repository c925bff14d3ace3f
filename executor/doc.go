// Package executor runs planned SQL in a warehouse and streams the results
// as Arrow record batches (github.com/apache/arrow-go/v18, the one Arrow
// module of the binary).
//
// Entry points:
//
//   - Open connects to the warehouse a workspace's `warehouse` block
//     describes and returns a Warehouse: embedded DuckDB (DuckDB),
//     Snowflake through gosnowflake, PostgreSQL and Redshift through pgx,
//     BigQuery through cloud.google.com/go/bigquery and its Storage Read
//     API, Databricks through the SQL Statement Execution API.
//   - Warehouse.Query streams one statement as an array.RecordReader;
//     Warehouse.Columns answers `linkaud check --warehouse`.
//   - Refresh re-creates DuckDB's file-backed views at the start of a cycle.
//   - NewCells reads one column of a batch as canonical text (the differ's
//     keys) or JSON-ready values (the events' enrichment), identically for
//     both warehouses.
//
// Neighbours: the planner produces the SQL; the engine calls Query and hands
// the reader to the differ, which reads it with NewCells.
package executor
