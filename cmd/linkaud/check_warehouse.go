package main

import (
	"fmt"

	"github.com/linkaud/linkaud/dsl"
)

// checkWarehouse asks the warehouse about tables and columns. It is wired
// once the executor lands.
func checkWarehouse(ws *dsl.Workspace) error {
	return userError(fmt.Errorf("check --warehouse: not available in this build yet"))
}
