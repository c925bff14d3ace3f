// Package sinks delivers outbox events to destinations: Kafka (franz-go),
// webhook, Braze, Iterable, Customer.io, a JSONL file and stdout.
//
// Entry points:
//
//   - Open builds a Destination from a checked dsl.Destination block; the
//     types register themselves (Register, Types) with their setting keys,
//     and secrets are read from the environment at Open and kept out of
//     every error and log line (Redactor).
//   - Deliver is the one delivery loop: it reads an Outbox (implemented by
//     *diff.Store) in Seq order, sends batches, acknowledges what the
//     destination acknowledged, dead-letters permanent failures, retries the
//     rest with exponential backoff and jitter before any later message
//     (per-profile order), honours 429 Retry-After without spending retries,
//     applies the per-audience rate limit and the event size cap, and reports
//     to optional hooks (HookDelivered, HookDropped, HookRetried,
//     HookThrottled, HookDeadLettered). DeliverOptionsFor reads the delivery
//     settings of a destination block.
//   - A Destination's Send returns once delivered or failed; per-message
//     outcomes travel in a *BatchError, failures are retryable unless
//     Permanent, Throttled asks to wait, and Halted (a refused credential,
//     an unknown account or region, a missing Kafka topic) stops the
//     delivery at once with nothing dead-lettered (ErrHalted).
//   - The HTTP destinations (httpx.go) never follow a redirect, class
//     answers per vendor from its error documentation, split or resend a
//     request the vendor refuses whole so that only the event to blame is
//     a dead letter, identify profiles as the destination's identifier
//     setting says (vendor.go: identity), and sign webhooks as Standard
//     Webhooks specifies. docs/destinations.md is the user's reference. Optional interfaces: Batcher
//     (a batch limit), Resumer (the transactional Kafka sink's
//     committed-progress record, which makes a crash between commit and
//     acknowledgement produce no duplicate) and Pipeliner (the Kafka sink
//     without transactions: Deliver keeps several batches in flight and
//     writes the outbox from a goroutine of its own, still in Seq order).
//
// Package sinktest holds the in-memory Outbox, generated messages and the
// shared named cases every destination's tests run.
package sinks
