package consistency

import (
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
)

// The checker must accept exactly the settings a destination type reads,
// with the same secrets and required keys: a setting the checker accepts
// but the sink ignores is a silent misconfiguration, and the reverse a
// setting no one can use.
func TestDestinationSettingsAgree(t *testing.T) {
	types := map[string]bool{}
	for _, typ := range sinks.Types() {
		types[typ.Name] = true
		checker := map[string]dsl.DestinationSetting{}
		for _, s := range dsl.DestinationSettings(typ.Name) {
			checker[s.Name] = s
		}
		if checker == nil {
			t.Errorf("%s: the checker does not know this destination type", typ.Name)
			continue
		}
		sink := map[string]sinks.Key{}
		for _, k := range append(append([]sinks.Key{}, sinks.DeliveryKeys...), typ.Keys...) {
			sink[k.Name] = k
		}
		for name, k := range sink {
			c, ok := checker[name]
			switch {
			case !ok:
				t.Errorf("%s: the sink reads %q but the checker rejects it", typ.Name, name)
			case c.Secret != (k.Kind == sinks.Secret):
				t.Errorf("%s.%s: checker secret=%v, sink kind %s", typ.Name, name, c.Secret, k.Kind)
			case c.Required != k.Required:
				t.Errorf("%s.%s: checker required=%v, sink required=%v", typ.Name, name, c.Required, k.Required)
			}
		}
		for name := range checker {
			if _, ok := sink[name]; !ok {
				t.Errorf("%s: the checker accepts %q but the sink does not read it", typ.Name, name)
			}
		}
	}
	for _, name := range dsl.DestinationTypes() {
		if !types[name] {
			t.Errorf("the checker accepts destination type %q but no sink implements it", name)
		}
	}
}
