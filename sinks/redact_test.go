package sinks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// TestRedactionCorpus: URLs given as secrets — with an upper-case scheme,
// characters net/url escapes ({}, ^, space), unicode, a user:password, a
// token in the query and in the path — go through every error path of an
// HTTP destination: a server echoing the request (URL, Host, headers) in a
// 400, a 500, a 401 (halt) and a 302 to the same URL, and a refused
// connection (net/http's error quotes the URL, password as ***). No form of
// any secret part appears in the logs, the errors or the dead-letter
// reasons.
func TestRedactionCorpus(t *testing.T) {
	echo := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if code/100 == 3 {
				w.Header().Set("Location", "http://"+r.Host+r.URL.String())
			}
			w.WriteHeader(code)
			fmt.Fprintf(w, "refused %s %s host=%s uri=%s raw=%s path=%s headers=%v", r.Method, r.URL, r.Host, r.RequestURI, r.URL.RawQuery, r.URL.Path, r.Header)
		})
	}
	corpus := []struct {
		name string
		url  func(base string) string
		// parts must never be printed, in any case or escaping.
		parts []string
	}{
		{"upper-case scheme, token in the path", func(b string) string {
			return strings.Replace(b, "http://", "HTTP://", 1) + "/hooks/T0ken-In-The-Path-0123456789"
		}, []string{"T0ken-In-The-Path-0123456789"}},
		{"unicode and escaped characters in the path", func(b string) string { return b + "/hooks/café-secret-{seg}^ment-x" },
			[]string{"café-secret-{seg}^ment-x", "caf%C3%A9-secret-%7Bseg%7D%5Ement-x"}},
		{"user and password", func(b string) string {
			return strings.Replace(b, "http://", "http://hook-user-name:pa55-w0rd-secret@", 1) + "/in"
		}, []string{"pa55-w0rd-secret", "hook-user-name", base64.StdEncoding.EncodeToString([]byte("hook-user-name:pa55-w0rd-secret"))}},
		{"token in the query, escaped", func(b string) string { return b + "/in?token=query-t0ken-%2Fslash%3D&x=1" },
			[]string{"query-t0ken-/slash=", "query-t0ken-%2Fslash%3D"}},
	}
	paths := []struct {
		name  string
		serve http.Handler // nil: connection refused
	}{
		{"400 echo", echo(400)}, {"500 echo", echo(500)}, {"401 echo", echo(401)}, {"302 to itself", echo(302)}, {"connection refused", nil},
	}
	checked := 0
	for _, c := range corpus {
		for _, p := range paths {
			t.Run(c.name+"/"+p.name, func(t *testing.T) {
				var base string
				if p.serve != nil {
					srv := httptest.NewServer(p.serve)
					defer srv.Close()
					base = srv.URL
				} else {
					ln, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						t.Fatal(err)
					}
					base = "http://" + ln.Addr().String()
					ln.Close()
				}
				secretURL := c.url(base)
				d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
					"url": {Secret: dsl.Secret{Env: "HOOK_URL"}}, "secret": {Secret: dsl.Secret{Env: "HOOK_SECRET"}}}},
					sinks.OpenOptions{LookupEnv: env(map[string]string{"HOOK_URL": secretURL, "HOOK_SECRET": "signing-secret-value"})})
				if err != nil {
					t.Fatal(err)
				}
				ob := sinktest.NewOutbox()
				ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 2, PerProfile: 1})...)
				var logs bytes.Buffer
				o := sinktest.FastOptions()
				o.MaxRetries = 1
				o.Logger = slogTo(&logs)
				_, err = sinks.Deliver(context.Background(), ob, "x", d, o)
				text := logs.String() + fmt.Sprint(err)
				for _, dl := range ob.DeadLetters("x") {
					text += dl.Reason
				}
				if !strings.Contains(text, sinks.Redacted) && p.serve != nil {
					t.Logf("nothing redacted (nothing secret printed):\n%s", text)
				}
				forbidden := append([]string{"signing-secret-value"}, c.parts...)
				for _, part := range c.parts {
					forbidden = append(forbidden, url.QueryEscape(part), url.PathEscape(part))
				}
				low := strings.ToLower(text)
				for _, f := range forbidden {
					if strings.Contains(low, strings.ToLower(f)) {
						t.Errorf("%q printed:\n%s", f, text)
					}
				}
				checked++
			})
		}
	}
	t.Logf("%d corpus URLs × %d error paths: %d checked, no secret part printed", len(corpus), len(paths), checked)
}

// TestShortSecretsRefused: a secret under 8 bytes (or a URL secret whose
// password is) is refused at Open and by CheckSecrets, with file:line:col;
// a one-character secret never garbles messages (the old failure:
// "Po[redacted]t … refu[redacted]ed").
func TestShortSecretsRefused(t *testing.T) {
	ws, diags := dsl.Load(writeWorkspace(t, `destination hook { type webhook url env("HOOK_URL") secret env("HOOK_SECRET") }`), dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	vars := map[string]string{"HOOK_URL": "http://u:pw@127.0.0.1:9/x", "HOOK_SECRET": "s"}
	got := sinks.CheckSecrets(ws, env(vars))
	if len(got) != 2 {
		t.Fatalf("CheckSecrets: %v", got)
	}
	for _, d := range got {
		if d.Subject.Start.Line != 1 || d.Subject.Start.Column == 0 || !strings.Contains(d.Summary, "too short to redact safely") {
			t.Errorf("diagnostic %s at %+v", d.Summary, d.Subject.Start)
		}
	}
	_, err := sinks.Open(ws.Destination("hook"), sinks.OpenOptions{LookupEnv: env(vars)})
	if err == nil || !strings.Contains(err.Error(), "ws.la:1:") || !strings.Contains(err.Error(), "HOOK_SECRET is 1 bytes: too short to redact safely (at least 8)") {
		t.Errorf("Open: %v", err)
	}
	if got := sinks.CheckSecrets(ws, env(map[string]string{"HOOK_URL": "http://127.0.0.1:9/x", "HOOK_SECRET": "long-enough-secret"})); len(got) != 0 {
		t.Errorf("CheckSecrets on good secrets: %v", got)
	}
	var r sinks.Redactor
	r.Add("long-enough-secret")
	if got := r.String("Post refused: connection refused (LONG-ENOUGH-SECRET)"); got != "Post refused: connection refused ([redacted])" {
		t.Errorf("%q", got)
	}
}

// writeWorkspace writes a one-file workspace (ws.la) with a warehouse and
// the given declarations, and returns its directory.
func writeWorkspace(t *testing.T, decls string) string {
	t.Helper()
	dir := t.TempDir()
	src := decls + "\n" + `warehouse { type duckdb path ":memory:" }
graph { profile { table "P" key id } }
`
	if err := os.WriteFile(filepath.Join(dir, "ws.la"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
