package sinks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/linkaud/linkaud/diff"
)

// SignatureHeader carries the webhook body's HMAC: "sha256=<hex>".
const SignatureHeader = "X-Linkaud-Signature"

func init() {
	Register(Type{
		Name: "webhook",
		Keys: []Key{
			{Name: "url", Kind: TextOrSecret, Required: true, Doc: "endpoint receiving POSTs (http or https)"},
			{Name: "secret", Kind: Secret, Doc: "HMAC-SHA256 key for the X-Linkaud-Signature header"},
			{Name: "timeout", Kind: Text, Doc: "per-request timeout (default 10s)"},
		},
		Open: openWebhook,
	})
}

// webhook POSTs batches as {"batch": [event, …]}, each event the outbox
// payload unchanged, signed with HMAC-SHA256 of the raw body.
type webhook struct {
	url    string
	secret []byte
	batch  int
	http   *httpSender
}

func openWebhook(c *Config) (Destination, error) {
	u := c.String("url", "")
	w := &webhook{
		url:    u,
		secret: []byte(c.String("secret", "")),
		batch:  c.Int("batch_size", 100, 1, 10000),
		http:   newHTTPSender(c, "webhook", c.Duration("timeout", 10*time.Second)),
	}
	if u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			c.Errorf("url", "want an http or https URL")
		}
	}
	return w, nil
}

// MaxBatch is the batch_size setting (default 100).
func (w *webhook) MaxBatch() int { return w.batch }

func (w *webhook) Send(ctx context.Context, batch []diff.Message) error {
	be := NewBatchError(len(batch))
	var body bytes.Buffer
	body.WriteString(`{"batch":[`)
	n := 0
	for i, m := range batch {
		if !json.Valid(m.Payload) {
			be.Fail(i, Permanent(fmt.Errorf("webhook: payload of %s is not valid JSON", m.ID)))
			continue
		}
		if n > 0 {
			body.WriteByte(',')
		}
		body.Write(m.Payload)
		n++
	}
	body.WriteString("]}")
	if n == 0 {
		return be.Err()
	}
	hdr := http.Header{}
	if len(w.secret) > 0 {
		hdr.Set(SignatureHeader, Sign(w.secret, body.Bytes()))
	}
	if _, _, err := w.http.do(ctx, http.MethodPost, w.url, "", body.Bytes(), hdr); err != nil {
		for i := range batch {
			if be.Errs[i] == nil {
				be.Fail(i, err)
			}
		}
	}
	return be.Err()
}

func (w *webhook) Close() error { return nil }

// Sign returns the X-Linkaud-Signature value for body: "sha256=" and the hex
// HMAC-SHA256 of the raw body keyed with secret. Receivers recompute it over
// the bytes they read and compare with hmac.Equal.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
