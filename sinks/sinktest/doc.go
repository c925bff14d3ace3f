// Package sinktest supports tests of destinations and of the delivery loop:
// Outbox is an in-memory sinks.Outbox standing in for *diff.Store; Messages
// generates realistic Segment-spec outbox messages; Run runs the shared
// named cases (ordering, retries, throttling, rejection, outage, size cap,
// cancellation) against any destination through a Target; CheckReceived
// verifies what a far side received (nothing unknown, per-profile order,
// nothing missing).
package sinktest
