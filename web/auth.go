package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// The console's login keeps the API token in a cookie the page's scripts
// cannot read (HttpOnly) and the browser sends only on requests from the
// console's own pages (SameSite=Strict). Every POST also carries a CSRF
// token: a random value in a second cookie, repeated in a hidden form
// field (the double-submit pattern), which a page on another site can
// neither read nor set. The JSON API never reads these cookies: it takes
// the bearer token only, so no cookie can act through it.
const (
	sessionCookie = "linkaud_session"
	csrfCookie    = "linkaud_csrf"
	csrfField     = "csrf"
	noticeCookie  = "linkaud_notice"
)

// csrfToken returns the request's CSRF token, setting a new cookie when it
// has none.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 64 {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: isTLS(r)})
	// Later reads in this request see it too.
	r.AddCookie(&http.Cookie{Name: csrfCookie, Value: v})
	return v
}

// csrfOK reports whether the form's CSRF field matches the cookie.
func csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != 64 {
		return false
	}
	field := r.PostFormValue(csrfField)
	return len(field) == 64 && subtle.ConstantTimeCompare([]byte(field), []byte(c.Value)) == 1
}

// loggedIn reports whether the request's session cookie holds the API
// token.
func (s *server) loggedIn(r *http.Request) bool {
	if !s.auth {
		return false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	return s.tokenMatches(c.Value)
}

// tokenMatches compares a sent token with the configured one in constant
// time (digests of equal length).
func (s *server) tokenMatches(sent string) bool {
	digest := sha256.Sum256([]byte(strings.TrimSpace(sent)))
	return subtle.ConstantTimeCompare(digest[:], s.token[:]) == 1
}

// isTLS reports whether the browser reached us over HTTPS, directly or
// through a proxy that says so: the cookies are then Secure.
func isTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// sameOrigin refuses a POST whose Origin header names another site (a
// second line behind SameSite and the CSRF token; browsers send Origin on
// every cross-site POST).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	o = strings.TrimPrefix(strings.TrimPrefix(o, "https://"), "http://")
	return strings.EqualFold(o, r.Host)
}

func (s *server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login", page{Title: "Log in", Data: map[string]any{
		"Next": localPath(r.URL.Query().Get("next")), "Enabled": s.auth, "Failed": r.URL.Query().Has("failed"),
	}})
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) || !csrfOK(r) {
		s.refuse(w, r, http.StatusForbidden, "The form's CSRF token is missing or stale: reload the page and try again.")
		return
	}
	next := localPath(r.PostFormValue("next"))
	if !s.auth {
		s.refuse(w, r, http.StatusForbidden, "Actions are disabled: start the worker with "+TokenEnv+" set.")
		return
	}
	sent := r.PostFormValue("token")
	if !s.tokenMatches(sent) {
		http.Redirect(w, r, "/login?failed=1&next="+urlQueryEscape(next), http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: strings.TrimSpace(sent), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: isTLS(r)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) || !csrfOK(r) {
		s.refuse(w, r, http.StatusForbidden, "The form's CSRF token is missing or stale: reload the page and try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: isTLS(r)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// action wraps a console POST: same origin, the CSRF token, a worker, and
// a logged-in session, or nothing happens.
func (s *server) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !sameOrigin(r) || !csrfOK(r):
			s.refuse(w, r, http.StatusForbidden, "The form's CSRF token is missing or stale: reload the page and try again.")
		case s.act == nil:
			s.refuse(w, r, http.StatusForbidden, "This console is read-only (linkaud console): actions need a running worker.")
		case !s.auth:
			s.refuse(w, r, http.StatusForbidden, "Actions are disabled: start the worker with "+TokenEnv+" set.")
		case !s.loggedIn(r):
			s.refuse(w, r, http.StatusUnauthorized, "Log in with the API token first.")
		default:
			h(w, r)
		}
	}
}

// localPath keeps a redirect target on this site.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}
