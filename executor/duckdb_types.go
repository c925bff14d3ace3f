package executor

import (
	"context"
	"fmt"

	bindings "github.com/duckdb/duckdb-go-bindings"

	"github.com/linkaud/linkaud/dsl"
)

var _ dsl.ColumnTyper = (*DuckDB)(nil)

// ColumnTypes implements dsl.ColumnTyper: the columns of a table or view
// with the class of their DuckDB type.
func (d *DuckDB) ColumnTypes(ctx context.Context, table dsl.TableName) ([]dsl.ColumnType, error) {
	if len(table) < 1 || len(table) > 3 {
		return nil, fmt.Errorf("duckdb: table name %q has one to three parts", table)
	}
	ctx, end := d.statement(ctx)
	defer end()
	conn, err := d.acquire(ctx)
	if err != nil {
		return nil, acquireError(ctx, err)
	}
	stop := interruptOnDone(ctx, conn)
	cols, err := columnTypesOn(conn, table)
	interrupted := stop()
	if err != nil {
		err = ctxError(ctx, err)
	}
	d.release(conn, err == nil && !interrupted)
	return cols, err
}

func columnTypesOn(conn bindings.Connection, table dsl.TableName) ([]dsl.ColumnType, error) {
	var res bindings.Result
	defer bindings.DestroyResult(&res)
	if bindings.Query(conn, "SELECT * FROM "+quoteIdents(table)+" LIMIT 0", &res) == bindings.StateError {
		msg := bindings.ResultError(&res)
		if bindings.ResultErrorType(&res) == bindings.ErrorTypeCatalog {
			return nil, fmt.Errorf("%w: %s (%s)", ErrTableNotFound, table, msg)
		}
		return nil, duckError(msg)
	}
	n := bindings.ColumnCount(&res)
	cols := make([]dsl.ColumnType, n)
	for i := range n {
		class, name := duckClass(bindings.ColumnType(&res, i))
		cols[i] = dsl.ColumnType{Name: bindings.ColumnName(&res, i), Class: class, Type: name}
	}
	return cols, nil
}

// duckClass is the class and name of a DuckDB type.
func duckClass(t bindings.Type) (dsl.TypeClass, string) {
	if n, ok := duckTypeNames[t]; ok {
		return n.class, n.name
	}
	return dsl.ClassUnknown, fmt.Sprintf("DuckDB type %d", t)
}

var duckTypeNames = map[bindings.Type]struct {
	class dsl.TypeClass
	name  string
}{
	bindings.TypeBoolean: {dsl.ClassBool, "BOOLEAN"},
	bindings.TypeTinyInt: {dsl.ClassNumber, "TINYINT"}, bindings.TypeSmallInt: {dsl.ClassNumber, "SMALLINT"},
	bindings.TypeInteger: {dsl.ClassNumber, "INTEGER"}, bindings.TypeBigInt: {dsl.ClassNumber, "BIGINT"},
	bindings.TypeUTinyInt: {dsl.ClassNumber, "UTINYINT"}, bindings.TypeUSmallInt: {dsl.ClassNumber, "USMALLINT"},
	bindings.TypeUInteger: {dsl.ClassNumber, "UINTEGER"}, bindings.TypeUBigInt: {dsl.ClassNumber, "UBIGINT"},
	bindings.TypeHugeInt: {dsl.ClassNumber, "HUGEINT"}, bindings.TypeUHugeInt: {dsl.ClassNumber, "UHUGEINT"},
	bindings.TypeFloat: {dsl.ClassNumber, "FLOAT"}, bindings.TypeDouble: {dsl.ClassNumber, "DOUBLE"},
	bindings.TypeDecimal: {dsl.ClassNumber, "DECIMAL"},
	bindings.TypeVarchar: {dsl.ClassText, "VARCHAR"}, bindings.TypeEnum: {dsl.ClassText, "ENUM"},
	bindings.TypeDate: {dsl.ClassTime, "DATE"}, bindings.TypeTimestamp: {dsl.ClassTime, "TIMESTAMP"},
	bindings.TypeTimestampS: {dsl.ClassTime, "TIMESTAMP_S"}, bindings.TypeTimestampMS: {dsl.ClassTime, "TIMESTAMP_MS"},
	bindings.TypeTimestampNS: {dsl.ClassTime, "TIMESTAMP_NS"}, bindings.TypeTimestampTZ: {dsl.ClassTime, "TIMESTAMP WITH TIME ZONE"},
	bindings.TypeBlob: {dsl.ClassOther, "BLOB"}, bindings.TypeUUID: {dsl.ClassOther, "UUID"},
	bindings.TypeInterval: {dsl.ClassOther, "INTERVAL"}, bindings.TypeTime: {dsl.ClassOther, "TIME"},
	bindings.TypeTimeTZ: {dsl.ClassOther, "TIME WITH TIME ZONE"}, bindings.TypeList: {dsl.ClassOther, "LIST"},
	bindings.TypeStruct: {dsl.ClassOther, "STRUCT"}, bindings.TypeMap: {dsl.ClassOther, "MAP"},
	bindings.TypeArray: {dsl.ClassOther, "ARRAY"}, bindings.TypeUnion: {dsl.ClassOther, "UNION"},
}
