package planner

import (
	"errors"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/dsl"
)

// Lookup writes the statement that reads entities of one table by key: the
// key as text, then columns, for the rows whose key (as text) is one of
// keys. It backs the current values of Entity Removed events (see
// diff.Lookup): one statement per batch of removed keys, a plain filtered
// scan of the entity's table with no correlation, however many pairs the
// keys stand for.
func Lookup(e *dsl.Entity, columns, keys []string, d Dialect) (string, error) {
	if e == nil || len(e.Table) == 0 || e.Key == "" {
		return "", errors.New("planner: lookup of an entity without a table or key")
	}
	if len(keys) == 0 {
		return "", errors.New("planner: lookup without keys")
	}
	c := &compiler{d: d}
	key := c.d.Text(c.col("t", e.Key))
	cols := []string{c.as(key, "key")}
	for i, col := range columns {
		cols = append(cols, c.as(c.col("t", col), "v"+strconv.Itoa(i)))
	}
	var lits []string
	for _, k := range keys {
		// A key no literal can hold (invalid UTF-8, a NUL) is read as
		// gone: its event keeps the last values seen.
		if s, err := c.str(nil, k); err == nil {
			lits = append(lits, s)
		}
	}
	where := "FALSE"
	if len(lits) > 0 {
		where = key + " IN (" + strings.Join(lits, ", ") + ")"
	}
	q := &selectQuery{cols: cols, from: []string{c.table(e.Table) + " AS t"}, where: []string{where}}
	sql := q.sql()
	if err := checkUncorrelated(sql, d.BackslashEscapes()); err != nil {
		return "", err
	}
	return sql, nil
}
