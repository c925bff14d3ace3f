// Package security holds linkaud's security suite: tests only, run by
// `go test -tags duckdb_arrow ./internal/security/`. Each test drives real
// components (the parser, checker and planner, embedded DuckDB, the real
// linkaud binary, httptest destinations, the kfake broker) and fails on a
// regression of one of four promises:
//
//   - Injection (TestInjection, TestLoadPathInjection): a hostile value in
//     any DSL position that reaches SQL — string literals, names, table
//     references, `load` paths — is either refused by the checker or
//     compiled into exactly one statement in which it round-trips exactly.
//     The corpus is in corpus_test.go; DuckDB parses and runs the SQL over
//     tables whose names and values are the hostile strings, and a
//     tokenizer of Snowflake's lexical rules (sqlscan_test.go) checks the
//     Snowflake SQL.
//   - Secrets (TestPlantedSecrets): a value planted in every env("…")
//     secret never appears in logs (text and JSON, debug level), errors,
//     plan/check/status output, dead letters, /metrics or any HTTP
//     response, including when every delivery fails.
//   - The HTTP API (TestAPIAuth, TestTokenComparedInConstantTime,
//     TestWorkerListensOnLoopback): mutations need the bearer token (401
//     without or with a wrong one, 403 when LINKAUD_API_TOKEN is unset or
//     empty) and a refused one changes nothing; web/ compares the
//     token with crypto/subtle; the worker binds to loopback unless told
//     otherwise.
//   - Paths (TestWorkspacePaths, TestFileDestinationRefusedAtOpen,
//     TestExistingWorkspacesStillPass): `load` and `file` destination paths
//     stay inside the workspace, as written and through symbolic links,
//     unless given as absolute paths: `linkaud check` reports
//     file:line:col, a run refuses them, and sinks.Open refuses them again
//     at run time (dsl.WorkspacePath is the one rule).
//
// The binary is built once, on first use (main_test.go). Each test logs
// the number of cases or checks it ran; `go test -v` shows them.
package security
