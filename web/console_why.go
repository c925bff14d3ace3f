package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/planner/why"
)

// explainer is what the why view needs: a warehouse to ask. A worker has
// one (*engine.Worker.Why); the read-only console does not open one.
type explainer interface {
	Why(ctx context.Context, aud, profile string, maxRows int) (*why.Result, error)
}

// whyRows is how many related rows per path step the why view shows.
const whyRows = 10

// whyPage answers GET /audience/{name}/why?profile=KEY: `linkaud why` for
// one profile, its condition tree with what holds and what does not.
func (s *server) whyPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, _, err := s.src.Audience(name, 0)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	profile := r.URL.Query().Get("profile")
	data := map[string]any{"Status": st, "Profile": profile}
	ex, ok := s.src.(explainer)
	data["Available"] = ok
	if ok && profile != "" {
		res, err := ex.Why(r.Context(), name, profile, whyRows)
		if err != nil {
			s.failPage(w, r, err)
			return
		}
		var text strings.Builder
		if err := res.WriteText(&text); err != nil {
			s.internal(w, err)
			return
		}
		data["Result"], data["Text"] = res, text.String()
	}
	s.render(w, r, "why", page{Title: name + " · why", Nav: "audiences", Data: data})
}

// dryRunner is what the dry-run action needs; only a worker has it.
type dryRunner interface {
	DryRun(ctx context.Context, aud string) (*engine.DryRunReport, error)
}

// dryRunShown is how many of a dry run's events the page lists.
const dryRunShown = 100

// consoleDryRun answers POST /audience/{name}/dry-run (an action: login
// and CSRF token): the next cycle computed on a scratch copy of the
// state, its counts and the events it would send; nothing is committed.
func (s *server) consoleDryRun(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	dr, ok := s.src.(dryRunner)
	if !ok {
		s.refuse(w, r, http.StatusForbidden, "A dry run needs a running worker.")
		return
	}
	st, _, err := s.src.Audience(name, 0)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	rep, err := dr.DryRun(r.Context(), name)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	out := dryRunOf(name, rep)
	more := 0
	if len(out.Events) > dryRunShown {
		more = len(out.Events) - dryRunShown
	}
	shown := out.Events[:len(out.Events)-more]
	s.render(w, r, "dryrun", page{Title: name + " · dry run", Nav: "audiences", Data: map[string]any{
		"Status": st, "Run": out, "Events": shown, "Total": len(out.Events), "More": more,
	}})
}
