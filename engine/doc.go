// Package engine runs linkaud: one compute cycle of an audience (plan →
// warehouse → diff → outbox), delivery from the outbox to destinations, and
// the worker that does both on schedules. It wires the stages together;
// each stage (planner, executor, diff, sinks) knows nothing of the others.
//
// Entry points: NextRun computes schedules.
package engine
