// Package crashtest kills `linkaud run` with a real SIGKILL at many points
// of a compute cycle and of delivery, restarts it, and checks that the
// events delivered to file destinations, deduplicated by messageId, are
// exactly those of a clean run: a crash anywhere loses nothing and invents
// nothing (DESIGN.md, "Semantics of a compute cycle").
//
// The tests build linkaud with the `crashpoints` build tag (see
// internal/crashpoint) and run it as a subprocess on a generated bank +
// household workspace (internal/gen), in two steps with different data.
// TestCrashPoints kills it at the N-th hit of each named point, for several
// N taken from a traced clean run; TestRandomKills sends SIGKILL from the
// outside after random delays, several times in a row. After each kill the
// step is finished as an operator (or the worker) would: the audiences
// whose cycle did not commit are run again, then the outbox is delivered.
//
// The package has tests only.
package crashtest
