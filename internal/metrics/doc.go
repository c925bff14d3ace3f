// Package metrics exposes linkaud's worker as Prometheus metrics. A Metrics
// value is a hook for the engine and the delivery loop (it implements
// engine.HookCycleStarted, HookCycleDone, HookQueue, HookDeliverPass,
// HookReload and sinks.HookDelivered, HookDropped, HookRetried,
// HookThrottled, HookDeadLettered); Observe adds the gauges read from the
// state at scrape time (outbox backlog, dead letters). Handler serves them.
//
// Entry points: New, (*Metrics).Observe, (*Metrics).Handler.
package metrics
