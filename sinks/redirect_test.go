package sinks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// TestRedirectMatrix: every HTTP destination, answered 301, 302, 303, 307
// and 308 pointing at another host and at another path of the same host,
// follows none: nothing is counted delivered or dead-lettered, every event
// stays in the outbox, the redirect target receives no request (so no
// payload and no credential reaches it), and the log names the Location
// without its user information or query.
func TestRedirectMatrix(t *testing.T) {
	var other atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Add(1)
		w.WriteHeader(200)
	}))
	defer thief.Close()
	const userinfo, token = "thief:redirect-pass-77", "redirect-token-9f8e2d"
	cases := 0
	for _, v := range httpVendors() {
		for _, code := range []int{301, 302, 303, 307, 308} {
			for _, where := range []string{"other host", "same host"} {
				t.Run(fmt.Sprintf("%s/%d/%s", v.name, code, where), func(t *testing.T) {
					f, d := v.open(t)
					target := strings.Replace(thief.URL, "http://", "http://"+userinfo+"@", 1) + "/steal?token=" + token
					if where == "same host" {
						target = strings.Replace(f.url(), "http://", "http://"+userinfo+"@", 1) + "/moved?token=" + token
					}
					f.refuse(&response{status: code, header: map[string]string{"Location": target}})
					ob := sinktest.NewOutbox()
					msgs := ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 4, PerProfile: 2})...)
					var logs bytes.Buffer
					o := sinktest.FastOptions()
					o.MaxRetries = 2
					o.Logger = slogTo(&logs)
					before := other.Load()
					st, err := sinks.Deliver(context.Background(), ob, "x", d, o)
					if !errors.Is(err, sinks.ErrRetriesExhausted) || st.Delivered != 0 || st.DeadLettered != 0 || ob.Len("x") != len(msgs) {
						t.Fatalf("Deliver answered %d: %+v, %v; want nothing delivered or dead-lettered, all %d left", code, st, err, len(msgs))
					}
					if n := other.Load() - before; n != 0 {
						t.Fatalf("the other host received %d requests", n)
					}
					for _, r := range f.recorded() {
						if r.path == "/moved" {
							t.Fatalf("the redirect was followed on the same host: %s %s", r.method, r.path)
						}
					}
					if len(f.tags()) != 0 {
						t.Fatalf("received %v", f.tags())
					}
					text := logs.String() + err.Error()
					if !strings.Contains(text, "redirects are not followed") || !strings.Contains(text, "/moved?…") && !strings.Contains(text, "/steal?…") {
						t.Errorf("log does not name the Location:\n%s", text)
					}
					for _, secret := range []string{"redirect-pass-77", token, brazeKey, iterableKey, cioKey, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
						if strings.Contains(text, secret) {
							t.Errorf("secret %q in the log:\n%s", secret, text)
						}
					}
					cases++
				})
			}
		}
	}
	t.Logf("%d redirect cases (6 destinations × 5 statuses × 2 targets): 0 delivered, 0 dead-lettered, 0 requests to the target", cases)
}
