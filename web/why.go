package web

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/engine"
)

// why answers GET /audiences/{name}/why?profile=KEY[&max_rows=N]: the
// same JSON as `linkaud why --format json`, 404 for an unknown audience
// (a profile no row has is a 200 with "found": false).
func (s *server) why(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	profile, ok := q["profile"]
	if !ok || len(profile) != 1 {
		writeError(w, http.StatusBadRequest, "give the profile's key once: ?profile=KEY")
		return
	}
	maxRows := 10
	if v := q.Get("max_rows"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "max_rows is a whole number from 1 to 1000")
			return
		}
		maxRows = n
	}
	res, err := s.w.Why(r.Context(), r.PathValue("name"), profile[0], maxRows)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// DryRunEvent is one event of a dry run: what the destination would get.
type DryRunEvent struct {
	Destination string          `json:"destination"`
	Activation  string          `json:"activation"`
	Event       string          `json:"event"`
	MessageID   string          `json:"messageId"`
	Payload     json.RawMessage `json:"payload"`
}

// DryRun is the answer of POST /audiences/{name}/dry-run.
type DryRun struct {
	Audience   string        `json:"audience"`
	Generation uint64        `json:"generation"`
	Error      string        `json:"error,omitempty"`
	Counts     *diff.Counts  `json:"counts,omitempty"`
	Events     []DryRunEvent `json:"events"`
}

// dryRun answers POST /audiences/{name}/dry-run: the next cycle computed
// on a scratch copy of the state, its change counts and the events it
// would emit; nothing is committed or delivered.
func (s *server) dryRun(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rep, err := s.w.DryRun(r.Context(), name)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := dryRunOf(name, rep)
	writeJSON(w, http.StatusOK, out)
}

func dryRunOf(name string, rep *engine.DryRunReport) DryRun {
	out := DryRun{Audience: name, Events: []DryRunEvent{}}
	for _, a := range rep.Audiences {
		if a.Err != nil {
			out.Error = a.Err.Error()
			continue
		}
		c := a.Result.Counts
		out.Generation, out.Counts = a.Result.Generation, &c
	}
	for _, m := range rep.Events {
		out.Events = append(out.Events, DryRunEvent{Destination: m.Destination, Activation: m.Activation, Event: m.Event, MessageID: m.ID, Payload: m.Payload})
	}
	return out
}
