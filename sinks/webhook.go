package sinks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/linkaud/linkaud/diff"
)

// Standard Webhooks headers (https://www.standardwebhooks.com/, the spec
// at github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md).
const (
	WebhookIDHeader        = "webhook-id"
	WebhookTimestampHeader = "webhook-timestamp"
	WebhookSignatureHeader = "webhook-signature"
)

// SignatureHeader carries the legacy signature of the body alone,
// "sha256=<hex HMAC-SHA256>". Deprecated: it covers no timestamp or id, so
// a captured request can be replayed; verify webhook-signature instead.
// It is sent alongside for one release.
const SignatureHeader = "X-Linkaud-Signature"

func init() {
	Register(Type{
		Name: "webhook",
		Keys: []Key{
			{Name: "url", Kind: TextOrSecret, Required: true, Doc: "endpoint receiving POSTs (http or https)"},
			{Name: "secret", Kind: Secret, Doc: "signing secret: whsec_<base64> as Standard Webhooks specifies (any other value is used as raw key bytes)"},
			{Name: "timeout", Kind: Text, Doc: "per-request timeout (default 10s)"},
		},
		Open: openWebhook,
	})
}

// webhook POSTs batches as {"batch": [event, …]}, each event the outbox
// payload unchanged. With a secret, each request is signed as Standard
// Webhooks specifies: webhook-id is the batch's id (derived from its
// messageIds, so a retry of the same batch carries the same id and a
// receiver can drop the duplicate), webhook-timestamp the attempt's Unix
// time, webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>";
// the deprecated X-Linkaud-Signature goes along.
type webhook struct {
	url    string
	key    []byte // the HMAC key: the decoded whsec_ secret, or the raw secret
	signer *standardwebhooks.Webhook
	batch  int
	http   *httpSender
	now    func() time.Time
}

func openWebhook(c *Config) (Destination, error) {
	u := c.String("url", "")
	w := &webhook{
		url:   u,
		batch: c.Int("batch_size", 100, 1, 10000),
		http:  newHTTPSender(c, "webhook", c.Duration("timeout", 10*time.Second)),
		now:   time.Now,
	}
	w.http.fix = "check the receiver's authentication (the secret, its allowlist) and the url"
	if u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			c.Errorf("url", "want an http or https URL")
		}
	}
	if secret := c.String("secret", ""); secret != "" {
		if enc, ok := strings.CutPrefix(secret, "whsec_"); ok {
			key, err := base64.StdEncoding.DecodeString(enc)
			if err != nil || len(key) == 0 {
				c.Errorf("secret", "a whsec_ secret is whsec_ then base64 of the key bytes")
			}
			w.key = key
			c.Redactor.Add(string(key))
		} else {
			w.key = []byte(secret)
		}
		w.signer, _ = standardwebhooks.NewWebhookRaw(w.key)
	}
	return w, nil
}

// MaxBatch is the batch_size setting (default 100).
func (w *webhook) MaxBatch() int { return w.batch }

func (w *webhook) Send(ctx context.Context, batch []diff.Message) error {
	be := NewBatchError(len(batch))
	var body bytes.Buffer
	body.WriteString(`{"batch":[`)
	var ids []string
	for i, m := range batch {
		if !json.Valid(m.Payload) {
			be.Fail(i, Permanent(fmt.Errorf("webhook: payload of %s is not valid JSON", m.ID)))
			continue
		}
		if len(ids) > 0 {
			body.WriteByte(',')
		}
		body.Write(m.Payload)
		ids = append(ids, m.ID)
	}
	body.WriteString("]}")
	if len(ids) == 0 {
		return be.Err()
	}
	hdr := http.Header{}
	if w.signer != nil {
		id := BatchID(ids)
		ts := w.now()
		sig, err := w.signer.Sign(id, ts, body.Bytes())
		if err != nil {
			return fmt.Errorf("webhook: signing: %w", err)
		}
		hdr.Set(WebhookIDHeader, id)
		hdr.Set(WebhookTimestampHeader, strconv.FormatInt(ts.Unix(), 10))
		hdr.Set(WebhookSignatureHeader, sig)
		hdr.Set(SignatureHeader, Sign(w.key, body.Bytes()))
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

// BatchID is the webhook-id of a batch: "msg_" and the first 16 bytes,
// hex, of the SHA-256 of its messageIds. The same batch always has the
// same id, so a receiver that remembers the ids it processed drops a
// retried delivery; after a crash the batches may be cut differently, so
// a receiver deduplicates events by messageId as well.
func BatchID(messageIDs []string) string {
	h := sha256.New()
	for _, id := range messageIDs {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Sign returns the deprecated X-Linkaud-Signature value for body:
// "sha256=" and the hex HMAC-SHA256 of the raw body keyed with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
