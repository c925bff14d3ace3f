package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/linkaud/linkaud/dsl"
)

var _ dsl.ColumnTyper = (*Snowflake)(nil)

// ColumnTypes implements dsl.ColumnTyper, from the result metadata of a
// SELECT of the table (gosnowflake's type names: FIXED, REAL, TEXT,
// BOOLEAN, DATE, TIMESTAMP_NTZ/LTZ/TZ, BINARY, VARIANT, OBJECT, ARRAY, TIME).
func (s *Snowflake) ColumnTypes(ctx context.Context, table dsl.TableName) ([]dsl.ColumnType, error) {
	if len(table) < 1 || len(table) > 3 {
		return nil, fmt.Errorf("snowflake: table name %q has one to three parts", table)
	}
	ctx, end := s.statement(ctx)
	defer end()
	rows, err := s.db.QueryContext(ctx, "SELECT * FROM "+quoteSnowflakeTable(table)+" LIMIT 0")
	if err != nil {
		var se *sf.SnowflakeError
		if errors.As(err, &se) && (se.Number == 2003 || se.SQLState == "42S02") {
			return nil, s.error(ctx, fmt.Errorf("%w: %s (%s)", ErrTableNotFound, table, se.Error()))
		}
		return nil, s.error(ctx, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, s.error(ctx, err)
	}
	out := make([]dsl.ColumnType, len(types))
	for i, t := range types {
		name := strings.ToUpper(t.DatabaseTypeName())
		class := dsl.ClassUnknown
		switch {
		case name == "FIXED" || name == "REAL" || name == "NUMBER" || name == "DECFLOAT":
			class = dsl.ClassNumber
		case name == "TEXT":
			class = dsl.ClassText
		case name == "BOOLEAN":
			class = dsl.ClassBool
		case name == "DATE" || strings.HasPrefix(name, "TIMESTAMP"):
			class = dsl.ClassTime
		case name == "BINARY" || name == "VARIANT" || name == "OBJECT" || name == "ARRAY" || name == "TIME":
			class = dsl.ClassOther
		}
		out[i] = dsl.ColumnType{Name: t.Name(), Class: class, Type: name}
	}
	return out, nil
}
