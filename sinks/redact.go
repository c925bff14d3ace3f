package sinks

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Redacted replaces a secret's value in text meant for people.
const Redacted = "[redacted]"

// Redactor removes secret values from strings and errors before they reach a
// log line, a dead-letter reason or an error message. Every value a
// destination reads from an env("…") setting is added to its Redactor; its
// errors pass through Error. The zero value is ready to use and safe for
// concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// Add registers secret values; empty strings are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		r.secrets = append(r.secrets, s)
		// A URL given as a secret carries its credential in one part
		// (user:password@, ?token=…, a token as a path segment); a
		// server echoing just that part must not reveal it either.
		// Short parts are left alone: hiding every "1" or "v2" would
		// garble messages and protect nothing.
		for _, part := range urlCredentials(s) {
			r.secrets = append(r.secrets, part)
			if e := url.QueryEscape(part); e != part {
				r.secrets = append(r.secrets, e)
			}
		}
		// Errors often quote values (%q, url.Error): also hide the quoted
		// spelling when it differs.
		if q := strconv.Quote(s); q[1:len(q)-1] != s {
			r.secrets = append(r.secrets, q[1:len(q)-1])
		}
		// A secret inside a URL may appear escaped.
		if e := url.QueryEscape(s); e != s {
			r.secrets = append(r.secrets, e)
		}
		if e := url.PathEscape(s); e != s {
			r.secrets = append(r.secrets, e)
		}
	}
	// Longest first, so a secret that contains another is replaced whole.
	sortByLenDesc(r.secrets)
}

// urlCredentials returns the parts of an absolute URL that may hold a
// credential: the password, query values of 8 bytes or more, and path
// segments of 16 bytes or more.
func urlCredentials(s string) []string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil
	}
	var parts []string
	if p, ok := u.User.Password(); ok && p != "" {
		parts = append(parts, p)
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 8 {
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
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	return s
}

// Error returns err with secrets removed from its text. The kinds Deliver
// looks at (BatchError, PermanentError, ThrottledError) keep their shape;
// errors.Is still matches the original chain (context.Canceled, …), but the
// original error, which may hold the secret, is not reachable by Unwrap.
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
	return r.redactOne(err)
}

func (r *Redactor) redactOne(err error) error {
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
