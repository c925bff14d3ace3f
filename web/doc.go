// Package web is the worker's HTTP surface, all of it: the JSON API
// (api.go), the console — web pages at / (console.go, templates/) with its
// embedded assets (assets/: a stylesheet, a small script, uPlot) — and the
// console's login and CSRF protection (auth.go). docs/console.md is the
// user's side of it.
//
// The JSON API:
//
//	GET  /healthz                    200 {"status":"ok"}; 503 while stopping
//	GET  /metrics                    Prometheus metrics (internal/metrics)
//	GET  /destinations               each destination's health and backlog
//	GET  /audiences                  every audience's status
//	GET  /audiences/{name}           one audience's status and its last 50 runs
//	GET  /audiences/{name}/history   its size history (diff.HistoryPoint)
//	POST /audiences/{name}/run       queue a run now (202)
//	POST /audiences/{name}/enable    enable and schedule
//	POST /audiences/{name}/disable   disable
//
// Mutations (POST) need "Authorization: Bearer <token>", the token given in
// Options.Token (the worker reads it from LINKAUD_API_TOKEN): a missing or
// wrong token is refused with 401; with no token configured every mutation
// is refused with 403. Errors are JSON {"error": "…"}. The console's own
// POSTs (console.go) take the token from the login's cookie instead, and
// the CSRF token besides; the API never reads those cookies.
//
// Entry points: New serves a worker (*engine.Worker); NewReadOnly serves
// the console alone over a workspace and a state (`linkaud console`);
// NewRates measures delivery rates for the deliveries page.
package web
