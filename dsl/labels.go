package dsl

import (
	"fmt"
	"regexp"
	"strings"
)

// BigQuery's rules for labels (https://cloud.google.com/bigquery/docs/labels-intro#requirements):
// at most 64; keys and values at most 63 characters of lower-case letters,
// international characters, digits, underscores and dashes; a key starts
// with a lower-case letter or an international character and is not empty.
var (
	labelKeyRE   = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]*$`)
	labelValueRE = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]*$`)
)

// MaxLabels is the most labels a BigQuery job takes.
const MaxLabels = 64

// ParseLabels reads the labels setting of a BigQuery warehouse,
// "key=value,key2=value2" (a value may be empty: "key="), checking them
// against BigQuery's rules.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("label %q is not KEY=VALUE", pair)
		}
		switch {
		case len([]rune(k)) > 63 || !labelKeyRE.MatchString(k):
			return nil, fmt.Errorf("label key %q: at most 63 lower-case letters, digits, _ and -, starting with a letter", k)
		case len([]rune(v)) > 63 || !labelValueRE.MatchString(v):
			return nil, fmt.Errorf("label %s: value %q: at most 63 lower-case letters, digits, _ and -", k, v)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %s given twice", k)
		}
		out[k] = v
	}
	if len(out) > MaxLabels {
		return nil, fmt.Errorf("%d labels: BigQuery takes at most %d", len(out), MaxLabels)
	}
	return out, nil
}
