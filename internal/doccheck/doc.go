// Package doccheck holds docs/ to the code, so the reference cannot rot.
// Its tests read README.md and every page under docs/:
//
//   - Links (TestLinks): every relative link resolves to a file or
//     directory of the repository, and a #fragment to a heading of the page
//     it names (GitHub's anchors).
//
//   - Examples (TestExamples): every fenced block whose info string starts
//     with `la` is a workspace file that must check; blocks run in page
//     order, as a script:
//
//     ```la                      a workspace of its own: this block alone
//     ```la base=bank            the block added to a copy of docs/examples/bank
//     ```la as=graph.la          written into the page's workspace (one per
//     page, empty or from base= on its first block), which builds up
//     ```la ... errors           the workspace must have errors (show them with
//     a console block)
//     ```csv as=data/x.csv       any other block with as= is written too
//     ```console                 "$ linkaud …" and "$ cat FILE" lines run in
//     the current workspace (the last la block's); the other lines are the
//     expected output (stdout and stderr), "[exit N]" for a non-zero exit;
//     durations (12.3ms, 1.2s) compare as equal
//     ```json from=F line=N      line N of file F of the workspace, as JSON,
//     must equal the block (pretty-printed for reading)
//
//     Blocks of other languages (sh, text, …) are not run: use them for
//     what the test cannot do (systemctl, curl to a worker).
//
//   - Settings (TestSettingsDocumented): every entry of dsl.Settings — each
//     setting, clause and event kind the checker accepts — has a row in the
//     table that follows the marker <!-- settings: BLOCK --> (BLOCK as in
//     dsl.SettingInfo.Block, e.g. "destination kafka", "warehouse
//     snowflake"), the row's first cell naming it in backticks; and every
//     row names a setting the checker accepts. Every destination and
//     warehouse type needs its marker, even with no settings of its own.
//
//   - Metrics (TestMetricsDocumented): every linkaud_ metric the worker
//     registers has a row in the table after <!-- metrics -->, and the
//     reverse.
//
// Extending: a new setting in dsl (warehouseSpecs, destinationSpecs, …)
// fails TestSettingsDocumented until a row is added to its block's table;
// a new warehouse or destination type until a page or section carries its
// marker and table (docs/warehouses/TYPE.md for a warehouse, linked from
// docs/warehouses/README.md). The failure message says which.
package doccheck
