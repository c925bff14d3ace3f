// Package planner compiles a checked audience (dsl.Audience over a
// dsl.Graph) into one SQL statement for a warehouse dialect.
//
// Entry points: Compile(audience, graph, dialect, Options) returns a *Plan
// (the SQL and the layout of its result columns); DialectFor names the
// dialects, DuckDB and Snowflake. A Dialect is the few things that differ
// between warehouses (quoting, literals, text functions, byte-order
// sorting), so a third one is one file.
//
// # Result rows
//
// The statement returns profile_key, key_0 … key_{n-1} for the n steps of
// the audience's primary path, then enrich_0 … in Audience.Enrich order
// (see /work/notes/contracts.md, "Result rows"). Rows are DISTINCT and
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
//
// # Meaning
//
// The SQL implements DESIGN.md's "Exact meaning", which the reference
// evaluator (internal/refeval) implements independently; the randomized
// differential test and the hand-checked cases in testdata/semantics hold
// both to it:
//
//   - Conditions are correlated semi-joins: a path is EXISTS (at least 1),
//     NOT EXISTS (exactly 0, at most 0) or a correlated COUNT(DISTINCT key)
//     (other quantifiers, having count), nested one subquery per step, so
//     that many matching rows never multiply a profile. The innermost
//     conditions are the lowest steps: a row matches when it passes its
//     where and the next step's quantifier holds over its own matching
//     rows. sum/min/max/avg test the junction with EXISTS, so a junction
//     row listed twice adds its entity once.
//   - Rows whose key is NULL are no entities, and profiles whose key is NULL
//     no members.
//   - Logic is two-valued: a comparison with a NULL operand is false. Under
//     AND and OR up to a WHERE, SQL's NULL behaves as false, so `not` is
//     pushed down to the comparisons (De Morgan) and a negated comparison
//     spells out its NULL case: not a = 'x' is (a IS NULL OR a <> 'x'). No
//     NOT or COALESCE is applied to anything that could be NULL.
//   - having sum/min/max/avg is EXISTS (… HAVING AGG(x) OP v): over no rows
//     the aggregate is NULL and the EXISTS false, and NOT EXISTS its exact
//     negation.
//   - contains, starts with, ends with use the dialect's functions
//     (contains/starts_with/ends_with, CONTAINS/STARTSWITH/ENDSWITH), never
//     LIKE, so % and _ are ordinary characters.
//   - Dates are timestamp literals at midnight UTC; within is
//     Now-N ≤ t ≤ Now with Options.Now, so a cycle's SQL is deterministic.
//     Timestamps without a zone are compared as UTC wall-clock time: the
//     session's time zone must be UTC for columns with a zone (DuckDB:
//     SET TimeZone = 'UTC'; Snowflake: TIMEZONE = 'UTC').
//   - `in audience A` inlines A's condition over the same profile row, so it
//     always agrees with A; a name that is no DSL audience is looked up in
//     the graph's memberships table.
//
// The member rows come out of a chain of inner joins down the primary path,
// one SELECT per step where a chain can end (UNION ALL): see
// compiler.audience.
//
// # Safety
//
// Every identifier is quoted by the dialect and every DSL string is a
// literal escaped by the dialect; numbers must match the language's number
// token. No name or string of a workspace can change the statement's
// structure. The statement's own names ("la-members", "la-rows",
// "la-result") contain '-', which no table name of the language can.
package planner
