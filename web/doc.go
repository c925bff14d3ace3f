// Package web is the worker's HTTP surface: the JSON API, the console (the
// web pages at /) with its templates and embedded assets, and the login that
// guards the console's actions.
//
// The JSON API:
//
//	GET  /healthz                    200 {"status":"ok"}; 503 while stopping
//	GET  /metrics                    Prometheus metrics (internal/metrics)
//	GET  /audiences                  every audience's status
//	GET  /audiences/{name}           one audience's status and its last 50 runs
//	POST /audiences/{name}/run       queue a run now (202)
//	POST /audiences/{name}/enable    enable and schedule
//	POST /audiences/{name}/disable   disable
//
// Mutations (POST) need "Authorization: Bearer <token>", the token given in
// Options.Token (the worker reads it from LINKAUD_API_TOKEN): a missing or
// wrong token is refused with 401; with no token configured every mutation
// is refused with 403. Errors are JSON {"error": "…"}.
//
// Entry point: New.
package web
