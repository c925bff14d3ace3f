package demo

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// demoSchemas are the schemas data.sql creates (PostgreSQL folds its
// unquoted names to lower case).
var demoSchemas = []string{"analytics", "bank", "home"}

// schemaMark is the comment the demo leaves on its schemas, so that a
// later demo may replace them and nothing else.
const schemaMark = "made by linkaud demo; the next demo replaces it"

func (d *demo) dsnEnv() string {
	if d.opts.DSNEnv != "" {
		return d.opts.DSNEnv
	}
	return "PG_DSN"
}

// preparePostgres drops the demo schemas an earlier demo made, and refuses
// when the database has one of those names that it did not make.
func (d *demo) preparePostgres(ctx context.Context) error {
	c, err := pgx.Connect(ctx, d.opts.PostgresDSN)
	if err != nil {
		return fmt.Errorf("demo: connecting to PostgreSQL: %w", err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT nspname, coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace WHERE nspname = ANY($1)`, demoSchemas)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var mine, theirs []string
	for rows.Next() {
		var name, comment string
		if err := rows.Scan(&name, &comment); err != nil {
			rows.Close()
			return fmt.Errorf("demo: %w", err)
		}
		if comment == schemaMark {
			mine = append(mine, name)
		} else {
			theirs = append(theirs, name)
		}
	}
	rows.Close()
	if len(theirs) > 0 {
		return fmt.Errorf("%w: the database already has schema %s, which no demo made; point %s at another database",
			ErrDirInUse, strings.Join(theirs, ", "), d.dsnEnv())
	}
	for _, s := range mine {
		if _, err := c.Exec(ctx, "DROP SCHEMA "+s+" CASCADE"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

// markPostgres comments the demo's schemas as its own.
func (d *demo) markPostgres(ctx context.Context) error {
	c, err := pgx.Connect(ctx, d.opts.PostgresDSN)
	if err != nil {
		return fmt.Errorf("demo: connecting to PostgreSQL: %w", err)
	}
	defer c.Close(ctx)
	for _, s := range demoSchemas {
		if _, err := c.Exec(ctx, "COMMENT ON SCHEMA "+s+" IS '"+schemaMark+"'"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}
