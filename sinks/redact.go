package sinks

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/linkaud/linkaud/dsl"
)

// Redacted replaces a secret's value in text meant for people.
const Redacted = "[redacted]"

// MinSecretBytes is the shortest secret linkaud accepts: a shorter value
// is too likely to occur in ordinary text, so hiding it would garble
// messages ("Po[redacted]t") and, by the pattern of the holes, reveal it.
// Open and `linkaud check` refuse shorter secrets, and the password of a
// URL given as a secret.
const MinSecretBytes = 8

// Redactor removes secret values from strings and errors before they reach a
// log line, a dead-letter reason or an error message. Every value a
// destination reads from an env("…") setting is added to its Redactor; its
// errors pass through Error. The zero value is ready to use and safe for
// concurrent use.
//
// A secret is hidden in every form Go or a server may print it in: as
// given; quoted (%q, JSON); query- and path-escaped; and, for a URL, as
// net/url prints it again (scheme and host lower-cased, the path escaped:
// "café" as "caf%C3%A9", "{}", "^" and spaces escaped), with its password
// (and its query values of 8 bytes or more and path segments of 16 or more,
// which may be tokens) in each of those forms. ASCII secrets are matched
// without regard to case.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// Add registers secret values; empty strings are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range r.secrets {
		seen[s] = true
	}
	add := func(v string) {
		if len(v) >= MinSecretBytes {
			if !seen[v] {
				seen[v] = true
				r.secrets = append(r.secrets, v)
			}
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		// The value itself is hidden whatever its length (a short secret
		// was refused at Open; AddText skips short text); its forms only
		// from MinSecretBytes on.
		if !seen[s] {
			seen[s] = true
			r.secrets = append(r.secrets, s)
		}
		for _, f := range forms(s) {
			add(f)
		}
		for _, part := range urlCredentials(s) {
			for _, f := range append(forms(part), part) {
				add(f)
			}
		}
		for _, f := range urlForms(s) {
			add(f)
		}
	}
	// Longest first, so a secret that contains another is replaced whole.
	sortByLenDesc(r.secrets)
}

// forms are the escaped spellings of s that errors and logs produce.
func forms(s string) []string {
	var out []string
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		out = append(out, q[1:len(q)-1])
	}
	if q := strconv.QuoteToASCII(s); q[1:len(q)-1] != s {
		out = append(out, q[1:len(q)-1])
	}
	if b, err := json.Marshal(s); err == nil && string(b[1:len(b)-1]) != s {
		out = append(out, string(b[1:len(b)-1]))
	}
	out = append(out, url.QueryEscape(s), url.PathEscape(s), (&url.URL{Path: s}).EscapedPath())
	return out
}

// urlForms are the spellings net/url gives an absolute URL s when it
// prints it again: String (scheme lower-cased, path and user information
// escaped), Redacted (the password as "xxxxx"), and without the scheme.
func urlForms(s string) []string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil
	}
	out := []string{u.String(), u.Redacted()}
	if _, ok := u.User.Password(); ok {
		// net/http's errors print the password as "***".
		stripped := *u
		stripped.User = url.UserPassword(u.User.Username(), "***")
		out = append(out, stripped.String())
	}
	for _, v := range out {
		if _, rest, ok := strings.Cut(v, "://"); ok {
			out = append(out, rest)
		}
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery, u.Query().Encode())
	}
	if u.Path != "" && u.Path != "/" {
		out = append(out, u.EscapedPath())
	}
	return out
}

// urlCredentials returns the parts of an absolute URL that may hold a
// credential: the user name and password, query values of 8 bytes or
// more, and path segments of 16 bytes or more.
func urlCredentials(s string) []string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil
	}
	var parts []string
	if u.User != nil {
		if n := u.User.Username(); len(n) >= MinSecretBytes {
			parts = append(parts, n)
		}
		if p, ok := u.User.Password(); ok && p != "" {
			parts = append(parts, p)
			// net/http sends the user information as a Basic
			// Authorization header, which a server may echo.
			parts = append(parts, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+p)))
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= MinSecretBytes {
				parts = append(parts, v)
			}
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 16 {
			parts = append(parts, seg)
		}
	}
	return parts
}

// ShortSecret says why secret value v is too short to use, or "": shorter
// than MinSecretBytes, or a URL whose password is. For a setting that may be
// text or a secret (a URL, a broker list: whole is false) only the URL's
// password counts.
func ShortSecret(v string, whole bool) string {
	if whole && len(v) < MinSecretBytes {
		return fmt.Sprintf("is %d bytes: too short to redact safely (at least %d)", len(v), MinSecretBytes)
	}
	if u, err := url.Parse(strings.TrimSpace(v)); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && len(p) < MinSecretBytes {
			return fmt.Sprintf("is a URL whose password is %d bytes: too short to redact safely (at least %d)", len(p), MinSecretBytes)
		}
	}
	return ""
}

// CheckSecrets reports, at the position of each env("…") setting of the
// workspace's destinations, a secret whose variable is set to a value too
// short to redact safely (ShortSecret), an error, and a variable that is
// not set, a warning only: the environment of `linkaud check` may not be
// the worker's.
func CheckSecrets(ws *dsl.Workspace, lookupEnv func(string) (string, bool)) dsl.Diagnostics {
	var out dsl.Diagnostics
	for _, d := range ws.Destinations {
		t, known := lookupType(d.Type)
		kinds := map[string]KeyKind{}
		if known {
			for _, k := range t.Keys {
				kinds[k.Name] = k.Kind
			}
		}
		for key, s := range d.Settings {
			if !s.Secret.IsSet() {
				continue
			}
			v, ok := lookupEnv(s.Secret.Env)
			if !ok || v == "" {
				out = append(out, &dsl.Diagnostic{Severity: dsl.Warning, Subject: s.Range,
					Summary: fmt.Sprintf("destination %s: %s: the environment variable %s is not set: where it is unset, delivery to %s fails (%s); the other destinations are not affected", d.Name, key, s.Secret.Env, d.Name, activationsOf(ws, d))})
				continue
			}
			if why := ShortSecret(v, kinds[key] == Secret); why != "" {
				out = append(out, &dsl.Diagnostic{Severity: dsl.Error, Subject: s.Range,
					Summary: fmt.Sprintf("destination %s: %s: the value of %s %s", d.Name, key, s.Secret.Env, why)})
			}
		}
	}
	out.Sort()
	return out
}

func sortByLenDesc(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && len(s[j]) > len(s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// String returns s with every registered secret replaced by Redacted.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		s = replaceFold(s, sec)
	}
	return s
}

// replaceFold replaces sec in s; without regard to ASCII case when both
// are ASCII (lower-casing keeps byte offsets only then).
func replaceFold(s, sec string) string {
	if !isASCII(sec) || !isASCII(s) {
		return strings.ReplaceAll(s, sec, Redacted)
	}
	ls, lsec := strings.ToLower(s), strings.ToLower(sec)
	if !strings.Contains(ls, lsec) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(ls, lsec)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(Redacted)
		s, ls = s[i+len(sec):], ls[i+len(sec):]
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Error returns err with secrets removed from its text. The kinds Deliver
// looks at (BatchError, PermanentError, ThrottledError, HaltedError) keep
// their shape; errors.Is still matches the original chain
// (context.Canceled, …), but the original error, which may hold the
// secret, is not reachable by Unwrap.
func (r *Redactor) Error(err error) error {
	if err == nil || r == nil {
		return err
	}
	var be *BatchError
	if errors.As(err, &be) {
		out := NewBatchError(len(be.Errs))
		for i, e := range be.Errs {
			if e != nil {
				out.Errs[i] = r.Error(e)
			}
		}
		return out
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return &PermanentError{Err: r.redactOne(pe.Err)}
	}
	var te *ThrottledError
	if errors.As(err, &te) {
		return &ThrottledError{After: te.After, Err: r.redactOne(te.Err)}
	}
	var he *HaltedError
	if errors.As(err, &he) {
		return &HaltedError{Reason: r.String(he.Reason), Fix: he.Fix, Err: r.redactOne(he.Err)}
	}
	return r.redactOne(err)
}

func (r *Redactor) redactOne(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := r.String(msg); red != msg {
		return &redactedError{msg: red, orig: err}
	}
	return err
}

type redactedError struct {
	msg  string
	orig error
}

func (e *redactedError) Error() string { return e.msg }

// Is lets errors.Is see through to the original chain without exposing it.
func (e *redactedError) Is(target error) bool { return errors.Is(e.orig, target) }

// activationsOf names the activations delivering to d, for messages.
func activationsOf(ws *dsl.Workspace, d *dsl.Destination) string {
	var names []string
	for _, a := range ws.Activations {
		if a.Destination == d {
			names = append(names, a.Name)
		}
	}
	switch len(names) {
	case 0:
		return "no activation uses it"
	case 1:
		return "activation " + names[0]
	}
	return "activations " + strings.Join(names, ", ")
}
