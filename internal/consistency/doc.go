// Package consistency holds tests that tie stages together where each keeps
// its own copy of a fact for the sake of the pipeline's one-way imports —
// e.g. the destination settings the checker accepts and those the sinks
// read. It has no code of its own.
package consistency
