// Package refeval is the reference evaluator: it computes an audience's
// members and entity rows straight from DESIGN.md's "Exact meaning", with
// plain loops over in-memory tables. It shares no code with the planner, so
// that the randomized differential test (planner/differential_test.go) can
// hold the generated SQL to an independent reading of the semantics.
//
// The entry point is Evaluate. It favours obviousness over speed: indexes
// exist only so that deep paths over a few hundred rows stay fast enough for
// thousands of random cases.
//
// Values in tables are Go values: nil (NULL), string, int64, float64,
// *big.Rat (a DECIMAL), bool and time.Time (UTC; a DATE is midnight). Numbers compare exactly (as
// rationals), text by bytes, NULL with anything is false.
package refeval
