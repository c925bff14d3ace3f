package sinks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// UserAgent is sent by every HTTP destination.
const UserAgent = "linkaud/1 (+https://github.com/linkaud/linkaud)"

// httpSender sends requests for one HTTP destination and turns responses
// into the failure kinds Deliver understands:
//
//	2xx                 delivered
//	3xx                 retryable: redirects are never followed (a 301/302/303
//	                    would turn the POST into a body-less GET, a 307/308
//	                    would send the payload and credentials to another
//	                    host); the Location is logged without secrets
//	401, 403            Halted: the credential is refused
//	404                 Halted: no such account, region or API path
//	429                 Throttled, honouring Retry-After (seconds or a date)
//	408, 5xx, transport retryable (timeouts, refused connections, resets)
//	other 4xx           Permanent
//
// A vendor refines this with classifyBody (Iterable's and Braze's error
// bodies name key errors under other statuses).
type httpSender struct {
	vendor  string
	client  *http.Client
	timeout time.Duration
	redact  *Redactor
	// fix says which settings to check when the destination halts on a
	// refused credential.
	fix string
	// classifyBody, when set, may classify a non-2xx answer from its body
	// before the status rules; nil leaves it to them.
	classifyBody func(code int, body []byte, err error) error
	// limits holds a request limiter per endpoint path, for the vendor's
	// documented request rate limits (they count requests, while
	// DeliverOptions.RateLimit counts events).
	limits map[string]*rate.Limiter
	now    func() time.Time
}

func newHTTPSender(c *Config, vendor string, timeout time.Duration) *httpSender {
	var cl http.Client
	if c.HTTP != nil {
		cl = *c.HTTP
	}
	// Never follow a redirect: the answer to the request we sent is the
	// 3xx itself, a failure to retry (see classify).
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &httpSender{vendor: vendor, client: &cl, timeout: timeout, redact: c.Redactor,
		fix: "check the credentials", limits: map[string]*rate.Limiter{}, now: time.Now}
}

// limit sets a request rate limit for requests whose URL path ends in path.
func (h *httpSender) limit(path string, perSecond float64, burst int) {
	h.limits[path] = rate.NewLimiter(rate.Limit(perSecond), burst)
}

// requestRate reads the request_rate setting (requests per second), or the
// vendor's documented default.
func requestRate(c *Config, def float64) float64 {
	if !c.Has("request_rate") {
		return def
	}
	v := c.String("request_rate", "")
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		c.Errorf("request_rate", "want requests per second, got %q", v)
		return def
	}
	return f
}

// do sends one request and returns the response body (at most 1 MiB) and
// the classified failure, nil for a 2xx answer. Errors are redacted.
func (h *httpSender) do(ctx context.Context, method, url, limitKey string, body []byte, hdr http.Header) (int, []byte, error) {
	if lim := h.limits[limitKey]; lim != nil {
		if err := lim.Wait(ctx); err != nil {
			return 0, nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, Permanent(h.redact.Error(fmt.Errorf("%s: %w", h.vendor, err)))
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, h.redact.Error(fmt.Errorf("%s: %w", h.vendor, err))
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && resp.StatusCode/100 != 2 {
		return resp.StatusCode, nil, h.redact.Error(fmt.Errorf("%s: reading the response: %w", h.vendor, err))
	}
	return resp.StatusCode, respBody, h.classify(resp, respBody)
}

func (h *httpSender) classify(resp *http.Response, body []byte) error {
	code := resp.StatusCode
	if code/100 == 2 {
		return nil
	}
	// Redact the whole body before cutting it short: a secret the server
	// echoes across the cut would otherwise show its first part.
	err := h.redact.Error(fmt.Errorf("%s: HTTP %d %s%s", h.vendor, code, http.StatusText(code), snippet([]byte(h.redact.String(string(body))))))
	if h.classifyBody != nil {
		if c := h.classifyBody(code, body, err); c != nil {
			return c
		}
	}
	switch {
	case code/100 == 3:
		return h.redact.Error(fmt.Errorf("%s: HTTP %d %s: redirects are not followed (Location %s); set the endpoint to the final URL",
			h.vendor, code, http.StatusText(code), safeLocation(resp.Header.Get("Location"))))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return Halted(fmt.Sprintf("%s refused the credential (HTTP %d %s)", h.vendor, code, http.StatusText(code)), h.fix, err)
	case code == http.StatusNotFound:
		return Halted(fmt.Sprintf("%s answered HTTP 404 Not Found: no such account, region or API path", h.vendor),
			"check the endpoint or region", err)
	case code == http.StatusTooManyRequests:
		return Throttled(retryAfterHeader(resp.Header, h.now()), err)
	case code == http.StatusRequestTimeout || code/100 == 5:
		return err
	case code/100 == 4:
		return Permanent(err)
	}
	return err
}

// safeLocation is a redirect target fit for a log line: scheme, host and
// path, without the user information or the query, which may carry a
// token; the Redactor then hides any registered secret left in it.
func safeLocation(loc string) string {
	if loc == "" {
		return "none"
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "unparseable"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	return u.String()
}

// retryAfterHeader reads Retry-After (delay-seconds or an HTTP date), or
// Braze's X-RateLimit-Reset (a Unix time), as a wait from now.
func retryAfterHeader(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, t.Sub(now))
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return max(0, time.Unix(s, 0).Sub(now))
		}
	}
	return 0
}

// snippet is the start of a response body for an error message.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return ""
	}
	if len(s) > 300 {
		s = s[:300]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return ": " + s
}
