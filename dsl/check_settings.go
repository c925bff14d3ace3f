package dsl

import (
	"regexp"
	"sort"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

// settingSpec describes the keys a block allows.
type settingSpec struct {
	kind   string // how the value is written: "string", "ident", "int", "bool", "any", "duration", "labels"
	secret bool   // must be env("…")
	multi  bool   // may repeat
	from   bool   // takes `from VALUE`
	// fromTrait: may take `from trait.COLUMN` (a destination's
	// identifier read from a profile trait).
	fromTrait bool
	required  bool // a warehouse of this type needs it
}

// settings validates a block's settings against spec and returns them by
// key (the first of each unless multi).
//
// A key given with an invalid value is reported once, here, and left out of
// the result; it still counts as present for required-key checks (see
// present), so that one mistake gives one diagnostic.
func (c *checker) settings(block string, ss []*grammar.Setting, spec map[string]settingSpec) map[string][]*grammar.Setting {
	out := map[string][]*grammar.Setting{}
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, s := range ss {
		sp, ok := spec[s.Key.Text]
		if !ok {
			d := c.errorf(s.Key, "unknown setting %q in %s", s.Key.Text, block)
			d.Suggestion = suggest(s.Key.Text, keys)
			if d.Suggestion == "" && len(keys) > 0 {
				d.Detail = "allowed: " + strings.Join(keys, ", ")
			}
			if d.Suggestion != "" && len(out[d.Suggestion]) == 0 {
				// Likely the misspelt required key: do not also report it missing.
				out[d.Suggestion] = append(out[d.Suggestion], nil)
			}
			continue
		}
		if len(out[s.Key.Text]) > 0 && !sp.multi {
			c.errorf(s.Key, "%s set twice in %s", s.Key.Text, block)
			continue
		}
		if s.From != nil && !sp.from && !sp.fromTrait {
			c.errorf(s.From, "%s does not take `from`", s.Key.Text)
			continue
		}
		if s.From != nil && sp.fromTrait && (s.From.Ref == nil || len(s.From.Ref.Parts) != 2 || s.From.Ref.Parts[0].Text != "trait") {
			c.errorf(s.From, "%s takes `from trait.COLUMN`, the profile trait holding the identifier", s.Key.Text)
			out[s.Key.Text] = append(out[s.Key.Text], nil)
			continue
		}
		if sp.from && s.From == nil {
			c.errorf(s, "%s needs `from \"FILE\"`", s.Key.Text)
			continue
		}
		if !c.settingValue(s.Key.Text, s.Value, sp) || (s.From != nil && !sp.fromTrait && !c.settingValue(s.Key.Text, s.From, settingSpec{kind: "string"})) {
			out[s.Key.Text] = append(out[s.Key.Text], nil)
			continue
		}
		out[s.Key.Text] = append(out[s.Key.Text], s)
	}
	return out
}

func (c *checker) settingValue(key string, v *grammar.Value, sp settingSpec) bool {
	if sp.secret {
		if v.Env == nil {
			c.errorf(v, "%s is a secret: give it as env(\"NAME\"), never as a literal", key)
			return false
		}
		return c.envName(v.Env)
	}
	if v.Env != nil {
		return c.envName(v.Env)
	}
	ok := true
	switch sp.kind {
	case "string":
		ok = v.Str != nil
	case "ident":
		ok = v.Ref != nil && len(v.Ref.Parts) == 1
	case "int":
		ok = v.Literal != nil && v.Literal.Number != "" && !strings.ContainsAny(v.Literal.Number, ".-")
	case "bool":
		ok = v.Literal != nil && v.Literal.Bool != ""
	case "labels":
		if ok = v.Str != nil; ok {
			if _, err := ParseLabels(v.Str.Value()); err != nil {
				c.errorf(v, "%s: %v", key, err)
				return false
			}
		}
	case "duration":
		if ok = v.Literal != nil && v.Literal.Duration != ""; ok {
			if _, err := parseDuration(v.Literal.Duration); err != nil {
				c.errorf(v, "%s: %v", key, err)
				return false
			}
		}
	}
	if !ok {
		c.errorf(v, "%s takes %s", key, kindText(sp.kind))
	}
	return ok
}

func (c *checker) envName(s *grammar.Str) bool {
	if !envNameRE.MatchString(s.Value()) {
		c.errorf(s, "env() takes the name of an environment variable, e.g. env(\"BRAZE_KEY\")")
		return false
	}
	return true
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func kindText(kind string) string {
	switch kind {
	case "string":
		return `a string, e.g. "text"`
	case "ident":
		return "a name"
	case "int":
		return "a whole number"
	case "bool":
		return "true or false"
	case "duration":
		return "a duration, e.g. 30s, 15m, 1h"
	case "labels":
		return `a string of KEY=VALUE pairs, e.g. "team=growth,env=prod"`
	}
	return "a value"
}

// valid drops the settings whose values were invalid.
func valid(ss []*grammar.Setting) []*grammar.Setting {
	out := ss[:0:0]
	for _, s := range ss {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// settingText is the literal text of a checked setting value.
func settingText(v *grammar.Value) string {
	switch {
	case v.Str != nil:
		return v.Str.Value()
	case v.Literal != nil:
		return v.Literal.Text()
	case v.Ref != nil:
		return v.Ref.String()
	}
	return ""
}

func toSetting(s *grammar.Setting) Setting {
	out := Setting{Range: rng(s.Value)}
	if s.Value.Env != nil {
		out.Secret = Secret{Env: s.Value.Env.Value()}
	} else {
		out.Text = settingText(s.Value)
	}
	if s.From != nil && s.From.Ref != nil && len(s.From.Ref.Parts) == 2 {
		out.FromTrait = s.From.Ref.Parts[1].Text
		out.FromRange = rng(s.From)
	}
	return out
}
