package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/internal/buildinfo"
)

// TokenEnv is the environment variable the worker reads the API token from.
const TokenEnv = "LINKAUD_API_TOKEN"

// History is how many runs GET /audiences/{name} returns.
const History = 50

// Options configure the API.
type Options struct {
	// Token authorizes mutations; empty disables them.
	Token string
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// Logger; default slog.Default(). Requests are logged at debug level,
	// without headers (the token never reaches a log).
	Logger *slog.Logger
	// RequireLogin makes the console's pages need a login too, not only
	// its actions: the worker sets it when it listens beyond loopback.
	RequireLogin bool
	// Rates, when set, gives the deliveries page its rates (the worker
	// also passes it to the engine's hooks).
	Rates *Rates
}

type server struct {
	w     *engine.Worker
	token [sha256.Size]byte
	auth  bool
	log   *slog.Logger

	// The console (console.go): what it reads, what its buttons do (nil
	// when read-only), its templates.
	src          source
	act          actions
	pages        map[string]*template.Template
	requireLogin bool
	rates        *Rates
}

// New returns the API of worker w.
func New(w *engine.Worker, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// The sent token is trimmed, so the configured one is too: a token
	// file read with its trailing newline must still match.
	token := strings.TrimSpace(opts.Token)
	s := &server{w: w, log: opts.Logger, auth: token != ""}
	// Comparing digests keeps the comparison constant-time whatever the
	// lengths (subtle.ConstantTimeCompare returns early on a length
	// mismatch).
	s.token = sha256.Sum256([]byte(token))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	mux.HandleFunc("GET /destinations", s.destinations)
	mux.HandleFunc("GET /audiences", s.list)
	mux.HandleFunc("GET /audiences/{name}", s.get)
	mux.HandleFunc("GET /audiences/{name}/why", s.why)
	mux.HandleFunc("POST /audiences/{name}/dry-run", s.mutate(s.dryRun))
	mux.HandleFunc("POST /audiences/{name}/run", s.mutate(s.run))
	mux.HandleFunc("POST /audiences/{name}/enable", s.mutate(s.enable))
	mux.HandleFunc("POST /audiences/{name}/disable", s.mutate(s.disable))
	s.src, s.act = w, w
	s.withConsole(mux, opts)
	return s.logged(mux)
}

// NewReadOnly returns the console over a workspace and its state without
// a worker (`linkaud console`): the same pages, no action, no JSON API but
// the history.
func NewReadOnly(st State, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &server{log: opts.Logger, src: stateSource{st: st}}
	s.token = sha256.Sum256(nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "read_only": true, "build": buildinfo.Get()})
	})
	s.withConsole(mux, opts)
	return s.logged(mux)
}

func (s *server) withConsole(mux *http.ServeMux, opts Options) {
	pages, err := parseTemplates()
	if err != nil {
		// The templates are embedded: a parse error is a build mistake
		// the tests catch.
		panic(err)
	}
	s.pages, s.requireLogin, s.rates = pages, opts.RequireLogin, opts.Rates
	s.consoleRoutes(mux)
}

// logged logs each request at debug level: method, path, status, time.
func (s *server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"took", time.Since(began).Round(time.Microsecond).String(), "remote", r.RemoteAddr)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	running, queued, _ := s.w.Load()
	body := map[string]any{"status": "ok", "running": running, "queued": queued, "build": buildinfo.Get()}
	var halted []string
	for _, h := range s.w.Health() {
		if h.Halted {
			halted = append(halted, h.Name)
		}
	}
	if len(halted) > 0 {
		// The worker itself is fine (200: no reason to restart it);
		// these destinations need someone to fix their credential.
		body["status"] = "degraded"
		body["halted_destinations"] = halted
	}
	if s.w.Stopping() {
		body["status"] = "stopping"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// Destination is the JSON form of a destination's health.
type Destination struct {
	Name    string     `json:"name"`
	Healthy bool       `json:"healthy"`
	Reason  string     `json:"reason,omitempty"`
	Fix     string     `json:"fix,omitempty"`
	Since   *time.Time `json:"halted_since,omitempty"`
	Checked *time.Time `json:"last_delivery,omitempty"`
	Backlog int64      `json:"backlog"`
}

// destinations answers GET /destinations: each destination's health (a
// halted one with why and since when) and outbox backlog.
func (s *server) destinations(w http.ResponseWriter, _ *http.Request) {
	var out []Destination
	for _, h := range s.w.Health() {
		n, _ := s.w.Backlog(h.Name)
		out = append(out, Destination{Name: h.Name, Healthy: !h.Halted, Reason: h.Reason, Fix: h.Fix,
			Since: timePtr(h.Since), Checked: timePtr(h.Checked), Backlog: n})
	}
	writeJSON(w, http.StatusOK, out)
}

// Audience is the JSON form of an audience's status.
type Audience struct {
	Name        string `json:"name"`
	Defined     bool   `json:"defined"`
	Description string `json:"description,omitempty"`
	Schedule    string `json:"schedule,omitempty"`
	Enabled     bool   `json:"enabled"`
	Status      string `json:"status"`
	Error       string `json:"error,omitempty"`
	// Version is the definition's version in the workspace;
	// StateVersion the one the current generation was computed from
	// (they differ after an edit until the next successful run).
	Version       string     `json:"version,omitempty"`
	StateVersion  string     `json:"state_version,omitempty"`
	Generation    uint64     `json:"generation"`
	Members       int64      `json:"members"`
	Rows          int64      `json:"rows"`
	Runs          uint64     `json:"runs"`
	LastRun       *time.Time `json:"last_run,omitempty"`
	LastSuccess   *time.Time `json:"last_success,omitempty"`
	NextRun       *time.Time `json:"next_run,omitempty"`
	Running       bool       `json:"running"`
	Queued        bool       `json:"queued"`
	ScheduleError string     `json:"schedule_error,omitempty"`
	// LastCounts are the changes of the last run (GET /audiences/{name}).
	LastCounts *diff.Counts `json:"last_counts,omitempty"`
	History    []Run        `json:"history,omitempty"`
}

// Run is the JSON form of a run record; durations in seconds.
type Run struct {
	Run        uint64    `json:"run"`
	Start      time.Time `json:"start"`
	Generation uint64    `json:"generation"`
	Version    string    `json:"version,omitempty"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	Query      float64   `json:"query_seconds"`
	Diff       float64   `json:"diff_seconds"`
	Delivery   float64   `json:"delivery_seconds,omitempty"`
	Delivered  int64     `json:"delivered,omitempty"`
	// Alerts are the drift alerts the run fired.
	Alerts []diff.FiredAlert `json:"alerts,omitempty"`
	diff.Counts
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// AudienceOf is the JSON form of an audience's status; the CLI's
// `audiences --json` prints the same shape, so scripts can read either.
func AudienceOf(st engine.AudienceStatus) Audience {
	return Audience{
		Name: st.Name, Defined: st.Defined, Description: st.Description, Schedule: st.Schedule,
		Enabled: st.Enabled, Status: st.Status.String(), Error: st.Error,
		Version: st.Definition, StateVersion: st.Version, Generation: st.Generation,
		Members: st.Members, Rows: st.Rows, Runs: st.Runs,
		LastRun: timePtr(st.LastRun), LastSuccess: timePtr(st.LastSuccess), NextRun: timePtr(st.Next),
		Running: st.Running, Queued: st.Queued, ScheduleError: st.ScheduleError,
	}
}

// RunOf is the JSON form of a run record.
func RunOf(r diff.RunRecord) Run {
	return Run{
		Run: r.Run, Start: r.Start.UTC(), Generation: r.Generation, Version: r.Version, OK: r.OK, Error: r.Error,
		Query: r.Query.Seconds(), Diff: r.Diff.Seconds(), Delivery: r.Delivery.Seconds(), Delivered: r.Delivered,
		Counts: r.Counts, Alerts: r.Alerts,
	}
}

func (s *server) list(w http.ResponseWriter, _ *http.Request) {
	sts, err := s.w.Audiences()
	if err != nil {
		s.internal(w, err)
		return
	}
	out := make([]Audience, len(sts))
	for i, st := range sts {
		out[i] = AudienceOf(st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"audiences": out})
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	st, runs, err := s.w.Audience(r.PathValue("name"), History)
	if err != nil {
		s.fail(w, err)
		return
	}
	a := AudienceOf(st)
	a.History = make([]Run, len(runs))
	for i, run := range runs {
		a.History[i] = RunOf(run)
	}
	if len(runs) > 0 {
		c := runs[0].Counts
		a.LastCounts = &c
	}
	writeJSON(w, http.StatusOK, a)
}

// mutate wraps a POST handler with the bearer-token check.
func (s *server) mutate(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.auth {
			writeError(w, http.StatusForbidden, "mutations are disabled: start the worker with "+TokenEnv+" set, and send it as \"Authorization: Bearer <token>\"")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="linkaud"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h(w, r)
	}
}

func (s *server) run(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.w.RunNow(name); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"audience": name, "queued": true})
}

func (s *server) enable(w http.ResponseWriter, r *http.Request) {
	s.setEnabled(w, r, s.w.Enable)
}

func (s *server) disable(w http.ResponseWriter, r *http.Request) {
	s.setEnabled(w, r, s.w.Disable)
}

func (s *server) setEnabled(w http.ResponseWriter, r *http.Request, set func(string) error) {
	name := r.PathValue("name")
	if err := set(name); err != nil {
		s.fail(w, err)
		return
	}
	st, _, err := s.w.Audience(name, 0)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AudienceOf(st))
}

// fail answers with the status err calls for.
func (s *server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, engine.ErrUnknownAudience):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, engine.ErrAudienceOff), errors.Is(err, engine.ErrRunning), errors.Is(err, engine.ErrDeclared):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, engine.ErrStopping):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.internal(w, err)
	}
}

func (s *server) internal(w http.ResponseWriter, err error) {
	s.log.Error("http: internal error", "error", err)
	writeError(w, http.StatusInternalServerError, err.Error())
}
