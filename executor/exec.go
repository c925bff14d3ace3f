package executor

import "context"

// Exec runs statements that return no rows, in order, on one connection of
// the embedded database: DDL for tools built on the warehouse (the
// benchmark's EXCEPT baseline keeps its snapshot table in an attached
// database file). A compute cycle never needs it.
func (d *DuckDB) Exec(ctx context.Context, stmts ...string) error {
	return d.exec(ctx, stmts...)
}
