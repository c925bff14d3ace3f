package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/planner"
)

// The console: server-rendered pages (templates/), embedded assets
// (assets/: the stylesheet, a small script that draws the charts, uPlot).
// Nothing is fetched from elsewhere: the Content-Security-Policy says so
// to the browser, and TestNoExternalURL checks every page and asset.
//
//	GET  /                              audiences
//	GET  /audience/{name}               an audience: definition, SQL, path, charts, runs, activations
//	GET  /audience/{name}/members       its members, paged, by key prefix (?q=, ?after=)
//	GET  /audience/{name}/why           why a profile is in or not (?profile=)
//	GET  /deliveries                    destinations and dead letters
//	GET  /audiences/{name}/history      the size history as JSON
//	GET  /login  POST /login  POST /logout
//	POST /audience/{name}/run|enable|disable|dry-run, POST /deliveries/{dest}/retry
var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed assets
	assetFS embed.FS
)

const (
	// MembersPageSize is how many members the members view shows at once.
	MembersPageSize = 50
	// MaxDeadLettersShown is how many dead letters the deliveries page
	// lists; Retry all still takes every one of a destination.
	MaxDeadLettersShown = 500
	// sparkPoints is how many of the newest history points a sparkline
	// draws.
	sparkPoints = 60
	csp         = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"secs": func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) },
	"num":  func(n int64) string { return groupDigits(n) },
	"inc":  func(i int) int { return i + 1 },
	"path": func(p string) string { return url.PathEscape(p) },
}

func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// parseTemplates builds one template set per page: the layout plus the
// page's own file.
func parseTemplates() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(filepath.Base(p), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, p)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// page is what every template gets.
type page struct {
	Title string
	// Nav is the current section, for the header.
	Nav      string
	CSRF     string
	LoggedIn bool
	// CanAct: a worker with a token; the buttons show (they still need a
	// login).
	CanAct   bool
	ReadOnly bool
	Notice   string
	Data     any
}

func (s *server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	p.CSRF = csrfToken(w, r)
	p.LoggedIn = s.loggedIn(r)
	p.CanAct = s.act != nil && s.auth
	p.ReadOnly = s.act == nil
	if c, err := r.Cookie(noticeCookie); err == nil {
		if v, err := url.QueryUnescape(c.Value); err == nil {
			p.Notice = v
		}
		http.SetCookie(w, &http.Cookie{Name: noticeCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	setPageHeaders(w)
	t := s.pages[name]
	if t == nil {
		s.internal(w, fmt.Errorf("web: no template %q", name))
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		s.internal(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}

// refuse answers with an error page: status and a message for people.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p := page{Title: http.StatusText(status), Data: map[string]any{"Status": status, "Message": msg}, CSRF: csrfToken(w, r)}
	var b strings.Builder
	if err := s.pages["error"].ExecuteTemplate(&b, "layout.html", p); err != nil {
		b.Reset()
		b.WriteString(template.HTMLEscapeString(msg))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	setPageHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// consoleRoutes adds the console to mux.
func (s *server) consoleRoutes(mux *http.ServeMux) {
	sub, _ := fs.Sub(assetFS, "assets")
	assets := http.StripPrefix("/assets/", http.FileServer(http.FS(sub)))
	mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, ".md") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		assets.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /{$}", s.reads(s.audiencesPage))
	mux.HandleFunc("GET /audience/{name}", s.reads(s.audiencePage))
	mux.HandleFunc("GET /audience/{name}/members", s.reads(s.membersPage))
	mux.HandleFunc("GET /audience/{name}/why", s.reads(s.whyPage))
	mux.HandleFunc("GET /deliveries", s.reads(s.deliveriesPage))
	// Part of the JSON API: open to reads as the rest of it.
	mux.HandleFunc("GET /audiences/{name}/history", s.history)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("POST /audience/{name}/run", s.action(s.consoleRun))
	mux.HandleFunc("POST /audience/{name}/enable", s.action(s.consoleEnable))
	mux.HandleFunc("POST /audience/{name}/disable", s.action(s.consoleDisable))
	mux.HandleFunc("POST /audience/{name}/dry-run", s.action(s.consoleDryRun))
	mux.HandleFunc("POST /deliveries/{dest}/retry", s.action(s.consoleRetry))
}

// reads wraps a console GET: the Content-Security-Policy, and a login
// when the server was told reads need one (a bind beyond loopback).
func (s *server) reads(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.requireLogin && !s.loggedIn(r) {
			http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r)
	}
}

// setPageHeaders marks a page: only the console's own files may load
// into it, and no other site may frame it.
func setPageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// ---- audiences ----

// audienceRow is flat: templates look fields up by reflection, which is
// slow through embedded structs, and this page has a row per audience.
type audienceRow struct {
	Name, Description, Status, Error, Schedule string
	Defined, Running, Queued                   bool
	Next                                       time.Time
	Members                                    int64
	Spark                                      spark
	Entered                                    int64
	Exited                                     int64
	HasLast                                    bool
}

func (s *server) audiencesPage(w http.ResponseWriter, r *http.Request) {
	sts, err := s.src.Audiences()
	if err != nil {
		s.internal(w, err)
		return
	}
	store := s.src.Store()
	rows := make([]audienceRow, len(sts))
	for i, st := range sts {
		rows[i] = audienceRow{Name: st.Name, Description: st.Description, Status: st.Status.String(), Error: st.Error,
			Schedule: st.Schedule, Defined: st.Defined, Running: st.Running, Queued: st.Queued, Next: st.Next, Members: st.Members}
		if store == nil {
			continue
		}
		pts, err := store.History(st.Name)
		if err != nil {
			s.log.Warn("console: size history unreadable", "audience", st.Name, "error", err)
			continue
		}
		rows[i].Spark = sparkline(pts[max(0, len(pts)-sparkPoints):])
		if n := len(pts); n > 0 {
			rows[i].Entered, rows[i].Exited, rows[i].HasLast = pts[n-1].Entered, pts[n-1].Exited, true
		}
	}
	s.render(w, r, "audiences", page{Title: "Audiences", Nav: "audiences", Data: rows})
}

// ---- one audience ----

type sourceLine struct {
	N    int
	Text string
}

type dialectSQL struct {
	Dialect string
	SQL     string
	Err     string
}

type activationRow struct {
	*dsl.Activation
	Backlog int64
	Dead    []diff.DeadLetter
}

func (s *server) audiencePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, runs, err := s.src.Audience(name, History)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	store := s.src.Store()
	var pts []diff.HistoryPoint
	if store != nil {
		if pts, err = store.History(name); err != nil {
			s.internal(w, err)
			return
		}
	}
	ws := s.src.Workspace()
	a := ws.Audience(name)
	data := map[string]any{
		"Status": st, "Runs": runs, "History": pts,
		"Members": membersChart(pts), "Chart": changesChart(pts),
		"Buttons": []string{"run", "dry-run", "enable", "disable"},
	}
	if a != nil {
		data["Source"] = sourceOf(ws, a)
		data["SQL"] = sqlOf(ws, a)
		data["Path"] = pathPicture(ws, a)
		data["Alerts"] = a.Alerts
		var acts []activationRow
		var dead map[string][]diff.DeadLetter
		if store != nil {
			dead = map[string][]diff.DeadLetter{}
			all, err := store.DeadLetters("")
			if err != nil {
				s.internal(w, err)
				return
			}
			for _, d := range all {
				if d.Audience == name {
					dead[d.Activation] = append(dead[d.Activation], d)
				}
			}
		}
		for _, act := range ws.ActivationsOf(a) {
			row := activationRow{Activation: act, Dead: dead[act.Name]}
			if store != nil {
				row.Backlog, _ = store.Backlog(act.Destination.Name)
			}
			acts = append(acts, row)
		}
		data["Activations"] = acts
	}
	s.render(w, r, "audience", page{Title: name, Nav: "audiences", Data: data})
}

// sourceOf returns the audience's lines of its .la file, numbered.
func sourceOf(ws *dsl.Workspace, a *dsl.Audience) map[string]any {
	var src []byte
	for _, f := range ws.Files {
		if f.Name == a.Start.Filename {
			src = f.Src
		}
	}
	if src == nil {
		src, _ = os.ReadFile(a.Start.Filename)
	}
	all := strings.Split(string(src), "\n")
	var lines []sourceLine
	depth := 0
	for n := a.Start.Line; n-1 < len(all); n++ {
		text := strings.TrimRight(all[n-1], "\r")
		lines = append(lines, sourceLine{N: n, Text: text})
		// The block ends where its braces close (strings and comments
		// aside): the range's end may reach the next declaration.
		opened := braces(text, &depth)
		if opened && depth == 0 {
			break
		}
	}
	rel := a.Start.Filename
	if r, err := filepath.Rel(ws.Dir, rel); err == nil && !strings.HasPrefix(r, "..") {
		rel = r
	}
	return map[string]any{"File": rel, "Lines": lines}
}

// braces updates depth with the braces of one line outside strings and
// comments, and reports whether the line had any.
func braces(line string, depth *int) bool {
	any, inStr := false, false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '#':
			return any
		case c == '{':
			*depth++
			any = true
		case c == '}':
			*depth--
			any = true
		}
	}
	return any
}

// sqlOf plans the audience in every dialect; the workspace's comes first.
func sqlOf(ws *dsl.Workspace, a *dsl.Audience) []dialectSQL {
	own, err := planner.ForWarehouse(ws.Warehouse)
	if err != nil {
		own = planner.DuckDB
	}
	ds := []planner.Dialect{own}
	for _, d := range planner.Dialects {
		if d.Name() != own.Name() {
			ds = append(ds, d)
		}
	}
	now := time.Now().UTC()
	var out []dialectSQL
	for _, d := range ds {
		p, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: now})
		if err != nil {
			out = append(out, dialectSQL{Dialect: d.Name(), Err: err.Error()})
			continue
		}
		out = append(out, dialectSQL{Dialect: d.Name(), SQL: p.SQL + ";"})
	}
	return out
}

// ---- members ----

type memberRow struct {
	Profile  string
	Entities [][]entityRef
}

type entityRef struct {
	Entity, Key string
}

func (s *server) membersPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, _, err := s.src.Audience(name, 0)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	q, after := r.URL.Query().Get("q"), r.URL.Query().Get("after")
	var steps []diff.Step
	if a := s.src.Workspace().Audience(name); a != nil {
		steps = diff.LayoutOf(a).Steps
	}
	var members []diff.Member
	var more bool
	if store := s.src.Store(); store != nil && st.Generation > 0 {
		if members, more, err = store.MembersPage(name, q, after, MembersPageSize); err != nil {
			s.internal(w, err)
			return
		}
	}
	rows := make([]memberRow, len(members))
	for i, m := range members {
		rows[i].Profile = m.Profile
		for _, chain := range m.Chains {
			var refs []entityRef
			for k, key := range chain {
				if key == nil {
					break
				}
				ent := "key_" + strconv.Itoa(k)
				if k < len(steps) {
					ent = steps[k].Entity
				}
				refs = append(refs, entityRef{Entity: ent, Key: *key})
			}
			rows[i].Entities = append(rows[i].Entities, refs)
		}
	}
	next := ""
	if more {
		next = "?q=" + url.QueryEscape(q) + "&after=" + url.QueryEscape(members[len(members)-1].Profile)
	}
	s.render(w, r, "members", page{Title: name + " · members", Nav: "audiences", Data: map[string]any{
		"Status": st, "Members": rows, "Q": q, "After": after, "Next": next, "PageSize": MembersPageSize,
	}})
}

// ---- deliveries ----

type destinationRow struct {
	engine.DestinationHealth
	Type    string
	Backlog int64
	Dead    int
	Rate    RateFigures
	HasRate bool
}

func (s *server) deliveriesPage(w http.ResponseWriter, r *http.Request) {
	store := s.src.Store()
	var dead []diff.DeadLetter
	if store != nil {
		var err error
		if dead, err = store.DeadLetters(""); err != nil {
			s.internal(w, err)
			return
		}
	}
	deadBy := map[string]int{}
	for _, d := range dead {
		deadBy[d.Destination]++
	}
	ws := s.src.Workspace()
	var rows []destinationRow
	for _, h := range s.src.Health() {
		row := destinationRow{DestinationHealth: h, Dead: deadBy[h.Name]}
		if d := ws.Destination(h.Name); d != nil {
			row.Type = d.Type
		}
		if store != nil {
			row.Backlog, _ = store.Backlog(h.Name)
		}
		if s.rates != nil {
			row.Rate, row.HasRate = s.rates.Figures(h.Name), true
		}
		rows = append(rows, row)
	}
	// The first MaxDeadLettersShown (by destination, oldest first): a
	// destination that rejected a whole backfill must not make the page
	// as large.
	more := 0
	if len(dead) > MaxDeadLettersShown {
		more = len(dead) - MaxDeadLettersShown
		dead = dead[:MaxDeadLettersShown]
	}
	s.render(w, r, "deliveries", page{Title: "Deliveries", Nav: "deliveries", Data: map[string]any{
		"Destinations": rows, "Dead": dead, "More": more,
	}})
}

// ---- history ----

func (s *server) history(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, _, err := s.src.Audience(name, 0); err != nil {
		s.fail(w, err)
		return
	}
	var pts []diff.HistoryPoint
	if store := s.src.Store(); store != nil {
		var err error
		if pts, err = store.History(name); err != nil {
			s.internal(w, err)
			return
		}
	}
	if pts == nil {
		pts = []diff.HistoryPoint{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"audience": name, "full_runs": diff.HistoryFullRuns,
		"max_points": diff.HistoryMaxPoints, "points": pts})
}

// ---- actions ----

func (s *server) consoleRun(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.done(w, r, "/audience/"+url.PathEscape(name), "Run of "+name+" queued.", s.act.RunNow(name))
}

func (s *server) consoleEnable(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.done(w, r, "/audience/"+url.PathEscape(name), name+" enabled.", s.act.Enable(name))
}

func (s *server) consoleDisable(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.done(w, r, "/audience/"+url.PathEscape(name), name+" disabled.", s.act.Disable(name))
}

func (s *server) consoleRetry(w http.ResponseWriter, r *http.Request) {
	dest := r.PathValue("dest")
	var ids []string
	if id := r.PostFormValue("id"); id != "" {
		ids = []string{id}
	}
	n, err := s.act.RetryDeadLetters(dest, ids)
	s.done(w, r, "/deliveries", fmt.Sprintf("%d dead letter(s) of %s back in the outbox.", n, dest), err)
}

// done redirects to back with a notice, or shows why the action failed.
func (s *server) done(w http.ResponseWriter, r *http.Request, back, notice string, err error) {
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	// The notice travels in a short-lived cookie, not in the URL, so that
	// no link from elsewhere can make the console say something.
	http.SetCookie(w, &http.Cookie{Name: noticeCookie, Value: url.QueryEscape(notice), Path: "/", MaxAge: 60,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isTLS(r)})
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// failPage answers a console request with the status err calls for.
func (s *server) failPage(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, engine.ErrUnknownAudience), errors.Is(err, engine.ErrNoDeadLetter):
		status = http.StatusNotFound
	case errors.Is(err, engine.ErrAudienceOff), errors.Is(err, engine.ErrRunning), errors.Is(err, engine.ErrNotDefined):
		status = http.StatusConflict
	case errors.Is(err, engine.ErrStopping):
		status = http.StatusServiceUnavailable
	default:
		s.log.Error("console: internal error", "error", err)
	}
	s.refuse(w, r, status, err.Error())
}
