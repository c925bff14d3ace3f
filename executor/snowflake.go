package executor

import (
	"context"
	"errors"

	"github.com/linkaud/linkaud/dsl"
)

func openSnowflake(ctx context.Context, w *dsl.Warehouse, opts Options) (Warehouse, error) {
	return nil, errors.New("snowflake: not yet")
}
