// Package faults injects real faults into linkaud end to end, through
// engine.Engine (Open, Compute, Deliver), and checks what DESIGN.md
// promises under them: a faulty cycle ends Failed with its reason (or the
// process stops and the next Open marks it so), the previous generation and
// the outbox stay exactly as they were, no event is emitted, and the next
// healthy cycle emits exactly what a clean run emits; a faulty delivery is
// retried or left in the outbox, and what finally reaches the destination,
// deduplicated by messageId, is the outbox exactly, in per-profile order.
//
// The faults, all on real components:
//
//   - warehouse_test.go: a DuckDB view that raises error() on bad data;
//     DuckDB's spill file lost while the sorted result streams (a real IO
//     error after batches were read); the cycle's context cancelled
//     mid-stream; the warehouse closed under a streaming cycle by a reload.
//   - disk_test.go: the state directory on a file system that runs out of
//     space (ENOSPC after a byte budget) at points spread over a cycle and
//     over delivery acknowledgements, for a cycle small enough for one
//     batch and one large enough to be staged.
//   - delivery_test.go: a kfake broker crashing at a produce request (before
//     or after handling it, with and without transactions) and restarted
//     on the same address; a webhook answering 500 then recovering; a
//     webhook gone until the retries run out, back later on the same
//     address; a webhook rejecting batches permanently (dead letters)
//     that `deadletters retry` (engine.RetryDeadLetters) then delivers.
//
// The package has tests only; its fixture (fixture_test.go) writes a bank
// workspace of any size and takes snapshots of the state.
package faults
