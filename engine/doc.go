// Package engine runs linkaud: one compute cycle of an audience (plan →
// warehouse → diff → outbox), delivery from the outbox to destinations, and
// the worker that does both on schedules. It wires the stages together;
// each stage (planner, executor, diff, sinks) knows nothing of the others.
//
// Entry points: Open returns an Engine (Compute, Deliver, Reload);
// Engine.RunOnce is `linkaud run` (a cycle of each enabled audience, then
// delivery, as a RunReport); Statuses, StatusOf, SetEnabled, Purge and
// RetryDeadLetters are the lifecycle behind `linkaud audiences` and
// `linkaud deadletters`; NewWorker and Worker.Run are the daemon (schedules, a concurrency limit,
// continuous delivery, reloads, a graceful stop), observed through the
// hooks of worker_hooks.go; NextRun computes schedules.
package engine
