package sinks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// swVerifier is a receiver's verification written from the Standard
// Webhooks spec (standardwebhooks.com; spec/standard-webhooks.md of
// github.com/standard-webhooks/standard-webhooks), independently of the
// signing code: the secret is whsec_ then base64 of the key; the signed
// content is "<webhook-id>.<webhook-timestamp>.<body>"; webhook-signature
// is a space-separated list of "v1,<base64 HMAC-SHA256>", any one of which
// may match (compared in constant time); a timestamp more than tolerance
// from now is refused, and so is a webhook-id already processed (replay).
type swVerifier struct {
	key       []byte
	tolerance time.Duration
	now       func() time.Time

	mu   sync.Mutex
	seen map[string]bool
}

var (
	errReplay    = errors.New("replayed webhook-id")
	errTooOld    = errors.New("timestamp outside the tolerance")
	errSignature = errors.New("no matching signature")
	errHeaders   = errors.New("missing or malformed headers")
)

func newSWVerifier(t testing.TB, secret string) *swVerifier {
	enc, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		t.Fatalf("secret %q has no whsec_ prefix", secret)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	return &swVerifier{key: key, tolerance: 5 * time.Minute, now: time.Now, seen: map[string]bool{}}
}

func (v *swVerifier) verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errHeaders
	}
	if d := v.now().Sub(time.Unix(sec, 0)); d > v.tolerance || d < -v.tolerance {
		return errTooOld
	}
	mac := hmac.New(sha256.New, v.key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	ok := false
	for _, s := range strings.Fields(sigs) {
		version, b64, found := strings.Cut(s, ",")
		if !found || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return errSignature
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen[id] {
		return errReplay
	}
	v.seen[id] = true
	return nil
}

type capturedRequest struct {
	header http.Header
	body   []byte
}

// TestStandardWebhooksSignature: requests verify under the independent
// verifier; the same request replayed, its body tampered with, its
// signature made with another key, or presented after the tolerance, are
// refused; the deprecated X-Linkaud-Signature still comes along; a retried
// batch carries the same webhook-id (so the receiver drops it).
func TestStandardWebhooksSignature(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	v := newSWVerifier(t, secret)
	var mu sync.Mutex
	var captured []capturedRequest
	var refusals []error
	fail := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		captured = append(captured, capturedRequest{r.Header.Clone(), body})
		if fail > 0 { // answer 500 before verifying: the retry is a new attempt
			fail--
			w.WriteHeader(500)
			return
		}
		if err := v.verify(r.Header, body); err != nil {
			refusals = append(refusals, err)
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
		"url": {Text: srv.URL}, "secret": {Secret: dsl.Secret{Env: "S"}}, "batch_size": {Text: "10"}}},
		sinks.OpenOptions{LookupEnv: env(map[string]string{"S": secret})})
	if err != nil {
		t.Fatal(err)
	}
	ob := sinktest.NewOutbox()
	msgs := ob.Append("hook", sinktest.Messages(sinktest.GenOptions{Profiles: 10, PerProfile: 3})...)
	fail = 1
	st, err := sinks.Deliver(context.Background(), ob, "hook", d, sinktest.FastOptions())
	if err != nil || st.Delivered != len(msgs) || len(refusals) != 0 {
		t.Fatalf("Deliver = %+v, %v; refusals %v", st, err, refusals)
	}
	if len(captured) != 4 {
		t.Fatalf("%d requests, want 3 batches and one retry", len(captured))
	}
	first, retry := captured[0], captured[1]
	if first.header.Get("webhook-id") != retry.header.Get("webhook-id") || string(first.body) != string(retry.body) {
		t.Errorf("the retried batch has webhook-id %q, the first attempt %q", retry.header.Get("webhook-id"), first.header.Get("webhook-id"))
	}
	ids := map[string]bool{}
	for _, c := range captured[1:] {
		ids[c.header.Get("webhook-id")] = true
		if !strings.HasPrefix(c.header.Get("webhook-signature"), "v1,") {
			t.Errorf("webhook-signature %q", c.header.Get("webhook-signature"))
		}
		if c.header.Get(sinks.SignatureHeader) != sinks.Sign(v.key, c.body) {
			t.Errorf("deprecated %s missing or wrong", sinks.SignatureHeader)
		}
	}
	if len(ids) != 3 {
		t.Errorf("%d distinct webhook-ids for 3 batches", len(ids))
	}

	good := captured[1]
	tampered := append([]byte(nil), good.body...)
	tampered[len(tampered)-3] ^= 1
	forged := good.header.Clone()
	mac := hmac.New(sha256.New, []byte("another key entirely"))
	fmt.Fprintf(mac, "%s.%s.%s", good.header.Get("webhook-id"), good.header.Get("webhook-timestamp"), good.body)
	forged.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	fresh := newSWVerifier(t, secret)
	fresh.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	for _, tc := range []struct {
		name   string
		v      *swVerifier
		header http.Header
		body   []byte
		want   error
	}{
		{"replayed", v, good.header, good.body, errReplay},
		{"tampered body", newSWVerifier(t, secret), good.header, tampered, errSignature},
		{"signed with another key", newSWVerifier(t, secret), forged, good.body, errSignature},
		{"presented 10 minutes later", fresh, good.header, good.body, errTooOld},
	} {
		if err := tc.v.verify(tc.header, tc.body); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if sinks.BatchID([]string{"a", "b"}) == sinks.BatchID([]string{"ab"}) {
		t.Errorf("BatchID does not separate ids")
	}
}
