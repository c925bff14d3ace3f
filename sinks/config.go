package sinks

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// KeyKind says how a setting may be written.
type KeyKind uint8

const (
	// Text: a literal only ("…", a number, a word).
	Text KeyKind = iota
	// Secret: env("NAME") only; a literal is refused.
	Secret
	// TextOrSecret: either (a broker list or URL that may embed a token).
	TextOrSecret
)

func (k KeyKind) String() string {
	return [...]string{"text", "secret", "text or secret"}[k]
}

// Key describes one setting of a destination type.
type Key struct {
	Name     string
	Kind     KeyKind
	Required bool
	Doc      string
}

// Type is a registered destination type.
type Type struct {
	Name string
	// Keys are the settings of this type, besides the delivery keys every
	// type accepts (DeliveryKeys).
	Keys []Key
	Open func(c *Config) (Destination, error)
}

// DeliveryKeys are the settings every destination type accepts; they tune
// the delivery loop (DeliverOptionsFor), not the destination itself.
var DeliveryKeys = []Key{
	{Name: "batch_size", Doc: "most messages per Send (default 500, capped by the type's own limit)"},
	{Name: "rate_limit", Doc: `events per second per audience (default 500, as Segment); "unlimited" or 0 for none`},
	{Name: "max_event_bytes", Doc: "size cap of one event's JSON (default 32768); bigger events are dropped and logged"},
	{Name: "max_retries", Doc: "retries of a failing batch without progress before leaving it for the next cycle (default 8)"},
}

var (
	registryMu sync.RWMutex
	registry   = map[string]*Type{}
)

// Register makes a destination type available to Open. It panics on a
// duplicate name; types register from init.
func Register(t Type) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[t.Name]; dup {
		panic("sinks: duplicate destination type " + t.Name)
	}
	registry[t.Name] = &t
}

// Types lists the registered destination types, sorted by name.
func Types() []Type {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]Type, 0, len(registry))
	for _, t := range registry {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Type) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func lookupType(name string) (*Type, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	t, ok := registry[name]
	return t, ok
}

// OpenOptions are what Open needs besides the destination block.
type OpenOptions struct {
	// Dir resolves relative paths (file path, tls_ca); default the
	// current directory. linkaud passes the workspace directory.
	Dir string
	// LookupEnv reads env("…") settings; default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Stdout is where the stdout destination writes; default os.Stdout.
	Stdout io.Writer
	// HTTPClient is used by the HTTP destinations; default a client per
	// destination with the type's timeout.
	HTTPClient *http.Client
}

// Open builds the destination described by a checked destination block. It
// reads secrets from the environment now, so a missing variable is an error
// here rather than at the first delivery. Errors name the destination and
// the setting and never contain a secret's value.
func Open(d *dsl.Destination, opts OpenOptions) (Destination, error) {
	t, ok := lookupType(d.Type)
	if !ok {
		return nil, fmt.Errorf("destination %s: unknown type %q (known: %s)", d.Name, d.Type, strings.Join(typeNames(), ", "))
	}
	c := newConfig(d, t, opts)
	c.validate()
	// The type's Open runs even after a bad setting, so that its own checks
	// report too: every problem at once.
	dest, err := t.Open(c)
	if cerr := c.err(); cerr != nil {
		if dest != nil {
			_ = dest.Close()
		}
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", d.Name, c.Redactor.Error(err))
	}
	return dest, nil
}

func typeNames() []string {
	var names []string
	for _, t := range Types() {
		names = append(names, t.Name)
	}
	return names
}

// Config gives a destination type's Open its settings. Accessors record
// problems instead of returning them, so that Open reports every bad
// setting at once.
type Config struct {
	Name     string
	Type     string
	Dir      string
	Logger   *slog.Logger
	Stdout   io.Writer
	HTTP     *http.Client
	Redactor *Redactor

	settings  map[string]dsl.Setting
	keys      map[string]Key
	lookupEnv func(string) (string, bool)
	errs      []error
}

func newConfig(d *dsl.Destination, t *Type, opts OpenOptions) *Config {
	c := &Config{
		Name:      d.Name,
		Type:      d.Type,
		Dir:       opts.Dir,
		Logger:    opts.Logger,
		Stdout:    opts.Stdout,
		HTTP:      opts.HTTPClient,
		Redactor:  &Redactor{},
		settings:  d.Settings,
		keys:      map[string]Key{},
		lookupEnv: opts.LookupEnv,
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("destination", d.Name)
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.lookupEnv == nil {
		c.lookupEnv = os.LookupEnv
	}
	if t != nil {
		for _, k := range DeliveryKeys {
			c.keys[k.Name] = k
		}
		for _, k := range t.Keys {
			c.keys[k.Name] = k
		}
	}
	return c
}

// validate checks the block against the type's keys: unknown keys, missing
// required keys, and secrets written as literals (or the reverse).
func (c *Config) validate() {
	names := make([]string, 0, len(c.settings))
	for k := range c.settings {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		s := c.settings[name]
		k, ok := c.keys[name]
		if !ok {
			c.errorf(name, "unknown setting for type %s", c.Type)
			continue
		}
		isSecret := s.Secret.IsSet()
		switch {
		case k.Kind == Secret && !isSecret:
			c.errorf(name, `must be given as env("NAME"): a literal secret is not allowed`)
		case k.Kind == Text && isSecret:
			c.errorf(name, "must be a literal, not env(…)")
		}
	}
	var missing []string
	for _, k := range c.keys {
		if _, ok := c.settings[k.Name]; k.Required && !ok {
			missing = append(missing, k.Name)
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		c.errorf(name, "required setting is missing")
	}
}

// at is "file:line:col: " for a setting's position, "" when unknown.
func at(r dsl.Range) string {
	if r.Start.Line == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d: ", r.Start.Filename, r.Start.Line, r.Start.Column)
}

func (c *Config) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("destination %s: %s: %s", c.Name, key, fmt.Sprintf(format, args...)))
}

func (c *Config) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &configError{errors.Join(c.errs...)}
}

// ErrConfig is matched by the error of a destination whose block cannot
// be used as the environment is (an env() variable unset, a secret too
// short to redact, a bad setting): the workspace's or the deployment's
// to fix, a user error. Only that destination fails.
var ErrConfig = errors.New("sinks: the destination's settings cannot be used")

type configError struct{ err error }

func (e *configError) Error() string   { return e.err.Error() }
func (e *configError) Unwrap() []error { return []error{e.err, ErrConfig} }

// Has reports whether the block sets key.
func (c *Config) Has(key string) bool {
	_, ok := c.settings[key]
	return ok
}

// String returns the value of key — the literal, or the environment
// variable's value for env("…"), which is then registered as a secret — or
// def when the key is absent.
func (c *Config) String(key, def string) string {
	s, ok := c.settings[key]
	if !ok {
		return def
	}
	if !s.Secret.IsSet() {
		return s.Text
	}
	v, ok := c.lookupEnv(s.Secret.Env)
	if !ok || v == "" {
		c.errorf(key, "environment variable %s is not set", s.Secret.Env)
		return ""
	}
	secret := c.keys[key].Kind == Secret
	if secret || len(v) >= MinSecretBytes {
		c.Redactor.Add(v)
	} else {
		// A short text-or-secret value (a site id, a host) is hidden
		// only in the credential parts a URL may carry: hiding the
		// whole would garble every message it occurs in.
		c.Redactor.Add(urlCredentials(v)...)
	}
	if why := ShortSecret(v, secret); why != "" {
		c.errorf(key, "%sthe value of %s %s", at(s.Range), s.Secret.Env, why)
	}
	return v
}

// FromTrait returns the trait of `KEY VALUE from trait.COLUMN`, or "".
func (c *Config) FromTrait(key string) string { return c.settings[key].FromTrait }

// Bool parses key as true/false.
func (c *Config) Bool(key string, def bool) bool {
	if !c.Has(key) {
		return def
	}
	v := c.String(key, "")
	b, err := strconv.ParseBool(v)
	if err != nil {
		c.errorf(key, "want true or false, got %q", v)
	}
	return b
}

// Int parses key as an integer in [lo, hi].
func (c *Config) Int(key string, def, lo, hi int) int {
	if !c.Has(key) {
		return def
	}
	v := c.String(key, "")
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		c.errorf(key, "want an integer from %d to %d, got %q", lo, hi, v)
		return def
	}
	return n
}

// Duration parses key as a Go duration ("10s", "1m30s").
func (c *Config) Duration(key string, def time.Duration) time.Duration {
	if !c.Has(key) {
		return def
	}
	v := c.String(key, "")
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		c.errorf(key, "want a positive duration such as 10s, got %q", v)
		return def
	}
	return d
}

// OneOf returns key's value, which must be one of choices (compared
// case-insensitively; the choice's spelling is returned).
func (c *Config) OneOf(key, def string, choices ...string) string {
	if !c.Has(key) {
		return def
	}
	v := c.String(key, "")
	for _, ch := range choices {
		if strings.EqualFold(v, ch) {
			return ch
		}
	}
	c.errorf(key, "want one of %s, got %q", strings.Join(choices, ", "), v)
	return def
}

// Path returns key as a file path, resolved against Dir when relative.
func (c *Config) Path(key string) string {
	p := c.String(key, "")
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// LocalPath returns key as a file path that stays inside Dir unless
// written as an absolute path: a relative path that leaves Dir, as written
// or through a symbolic link, is recorded as a problem and "" returned
// (dsl.WorkspacePath; the checker reports the same at check time, and this
// catches what changed on disk since).
func (c *Config) LocalPath(key string) string {
	p := c.String(key, "")
	if p == "" {
		return ""
	}
	dir := c.Dir
	if dir == "" {
		dir = "."
	}
	full, err := dsl.WorkspacePath(dir, p)
	if err != nil {
		c.errorf(key, "%v: write a path inside the workspace, or an absolute path", err)
		return ""
	}
	return full
}

// Errorf records a problem with key found by the type's own checks.
func (c *Config) Errorf(key, format string, args ...any) { c.errorf(key, format, args...) }

// DeliverOptionsFor reads the delivery keys of a destination block
// (batch_size, rate_limit, max_event_bytes, max_retries) into DeliverOptions;
// unset keys stay zero so Deliver applies its defaults, except that kafka,
// file and stdout are not rate limited unless rate_limit says so.
func DeliverOptionsFor(d *dsl.Destination) (DeliverOptions, error) {
	c := newConfig(d, nil, OpenOptions{})
	for _, k := range DeliveryKeys {
		c.keys[k.Name] = k
	}
	var o DeliverOptions
	o.BatchSize = c.Int("batch_size", 0, 1, 100000)
	switch d.Type {
	case "kafka", "file", "stdout":
		// Segment's 500 events/s protects marketing APIs; a log or a
		// broker the user runs has no such limit to respect, and a large
		// send_current would otherwise take hours.
		o.RateLimit = Unlimited
	}
	if c.Has("rate_limit") {
		v := c.String("rate_limit", "")
		if strings.EqualFold(v, "unlimited") {
			o.RateLimit = Unlimited
		} else if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 || math.IsNaN(f) {
			c.errorf("rate_limit", `want events per second or "unlimited", got %q`, v)
		} else if f == 0 {
			o.RateLimit = Unlimited
		} else {
			o.RateLimit = f
		}
	}
	o.MaxEventBytes = c.Int("max_event_bytes", 0, 1, 1<<30)
	if c.Has("max_retries") {
		o.MaxRetries = c.Int("max_retries", 0, 0, 1000)
		if o.MaxRetries == 0 {
			o.MaxRetries = NoRetries
		}
	}
	return o, c.err()
}
