// Package planner compiles a checked audience (dsl.Audience over a
// dsl.Graph) into one SQL statement for a warehouse dialect.
//
// Entry points: Compile(audience, graph, dialect, Options) returns a *Plan
// (the SQL and the layout of its result columns); DialectFor names the
// dialects. A Dialect is the few things that differ
// between warehouses (quoting, literals, text functions, byte-order
// sorting), so a third one is one file.
//
// # Result rows
//
// The statement returns profile_key, key_0 … key_{n-1} for the n steps of
// the audience's primary path, then enrich_0 … in Audience.Enrich order
// . Rows are DISTINCT and
// ordered by profile_key, key_0, …, in byte order of their UTF-8 text,
// NULLs first. Keys are cast to VARCHAR, so an integer key 10 sorts before
// 9. Byte order is pinned per dialect:
//
//   - DuckDB compares VARCHAR by its bytes unless a collation applies; the
//     ORDER BY says COLLATE "binary", which also overrides a session's
//     default_collation.
//   - Snowflake compares strings by Unicode code point (the same order as
//     UTF-8 bytes) unless a collation applies; the ORDER BY says
//     COLLATE(x, 'utf8'), so a column's collation cannot leak in.
//   - PostgreSQL and Redshift: COLLATE "C" and COLLATE(x, 'case_sensitive')
//     (see postgres.go, redshift.go).
//   - BigQuery sorts CAST(x AS BYTES), the UTF-8 bytes; Databricks
//     x COLLATE UTF8_BINARY (see bigquery.go, databricks.go, which name the
//     vendor's documentation page of each rule).
//
// # Plan shape
//
// The statement is decorrelated by construction: a WITH list of named
// relations and a final SELECT, where no SELECT is nested in an
// expression or a FROM clause (checkUncorrelated verifies every plan
// Compile returns). Warehouses restrict correlated subqueries (Redshift
// refuses a subquery reading a block two levels up, Spark allows one level,
// BigQuery and Snowflake refuse EXISTS forms), and where they accept them
// they may run them once per outer row. Instead each path step is computed
// once, bottom up (see paths.go): its matching rows keyed by the parent's
// join value, and an aggregate of them per parent value (DISTINCT for
// existence, COUNT(DISTINCT key), SUM/MIN/MAX/AVG), which the parent
// step's rows join, and the profile row LEFT JOINs at the top.
// Quantifiers that hold over no rows (exactly 0, at most N) are anti-joins
// or COALESCE(count, 0); values a where reads from above (a trait,
// account.max_limit) are carried down through demand relations and joined
// on, never correlated. The member rows join the primary path's rows
// relations, so no quantifier is evaluated twice.
//
// # Meaning
//
// The SQL implements DESIGN.md's "Exact meaning", which the reference
// evaluator (internal/refeval) implements independently; the randomized
// differential test and the hand-checked cases in testdata/semantics hold
// both to it, on DuckDB and on PostgreSQL:
//
//   - A step's matching rows are those whose key is not NULL, that pass the
//     step's where, and whose next step's quantifier or having holds over
//     their own matching rows. Quantifiers and having count count distinct
//     keys, so many matching rows never multiply a profile; a junction is
//     deduplicated on its join columns before sum/avg see its entities.
//   - Rows whose key is NULL are no entities, and profiles whose key is NULL
//     no members.
//   - Logic is two-valued: a comparison with a NULL operand is false. Under
//     AND and OR up to a WHERE, SQL's NULL behaves as false, so `not` is
//     pushed down to the comparisons (De Morgan) and a negated comparison
//     spells out its NULL case: not a = 'x' is (a IS NULL OR a <> 'x'). No
//     NOT or COALESCE is applied to anything that could be NULL.
//   - having sum/min/max/avg compares the aggregate of the matching rows:
//     over no rows (or only NULLs) it is NULL and the test false, and the
//     negation (a IS NULL OR a <negated op> v) exact.
//   - contains, starts with, ends with use the dialect's functions
//     (contains/starts_with/ends_with, CONTAINS/STARTSWITH/ENDSWITH,
//     STRPOS/STARTS_WITH/ENDS_WITH over BYTES, contains/startswith/endswith
//     over UTF8_BINARY), never LIKE, so % and _ are ordinary characters.
//   - Dates are timestamp literals at midnight UTC; within is
//     Now-N ≤ t ≤ Now with Options.Now, so a cycle's SQL is deterministic.
//     Timestamps without a zone are compared as UTC wall-clock time: the
//     session's time zone must be UTC for columns with a zone (DuckDB:
//     SET TimeZone = 'UTC'; Snowflake: TIMEZONE = 'UTC').
//   - `in audience A` inlines A's condition over the same profile row, so it
//     always agrees with A; a name that is no DSL audience is looked up in
//     the graph's memberships table.
//
// The member rows come out of a chain of joins down the primary path's
// rows relations, one SELECT per step where a chain can end (UNION ALL):
// see compiler.audience.
//
// # Safety
//
// Every identifier is quoted by the dialect and every DSL string is a
// literal escaped by the dialect; numbers must match the language's number
// token. No name or string of a workspace can change the statement's
// structure. The statement's own relations are named with a prefix ("la_")
// that no single-part table name of the graph starts with, and their
// columns with short generated names (p0, x0, k, c0, …) that no workspace
// name is turned into, so nothing of the workspace can be shadowed.
package planner
