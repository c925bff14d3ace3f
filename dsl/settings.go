package dsl

import (
	"cmp"
	"slices"
	"strings"
)

// SettingInfo describes one setting, clause or item the checker accepts,
// for references and the test that holds docs/ to them
// (internal/doccheck): a setting the checker knows and the docs do not
// describe, or the reverse, fails that test.
type SettingInfo struct {
	// Block is where the setting is written: "workspace" (top-level
	// declarations), "warehouse duckdb", "warehouse snowflake", "graph",
	// "profile", "entity", "memberships", "events", "audience",
	// "destination" (every destination type), "destination kafka", …,
	// "activation", "activation event" (the event kinds).
	Block string
	Name  string
	// Value says how the value is written: "string", "name", "whole
	// number", "true or false", "duration", "env(\"NAME\")" for a secret,
	// "any" for a value the consumer parses; empty for a clause or item
	// with a syntax of its own.
	Value      string
	Secret     bool // only as env("NAME")
	Required   bool
	Repeatable bool
}

// Settings lists every setting the checker accepts, sorted by block and
// name. It reads the checker's own tables (warehouseSpecs,
// destinationSpecs, …), so a setting added there appears here at once.
func Settings() []SettingInfo {
	var out []SettingInfo
	add := func(block string, spec map[string]settingSpec, required ...string) {
		for name, sp := range spec {
			out = append(out, SettingInfo{
				Block: block, Name: name, Value: valueText(sp), Secret: sp.secret,
				Required: slices.Contains(required, name), Repeatable: sp.multi,
			})
		}
	}
	names := func(block string, list []string) {
		for _, n := range list {
			out = append(out, SettingInfo{Block: block, Name: n})
		}
	}
	names("workspace", []string{"warehouse", "state", "graph", "audience", "destination", "activation"})
	for typ, spec := range warehouseSpecs {
		var req []string
		if typ != "duckdb" {
			req = []string{"dsn"} // as warehouse() requires
		}
		add("warehouse "+typ, spec, req...)
	}
	add("state", stateSpec)
	names("graph", graphItems)
	add("profile", tableKeySpec, "table", "key")
	add("entity", tableKeySpec, "table", "key")
	add("memberships", membershipsSpec, "table", "profile", "audience")
	add("events", eventsSpec, "table", "profile", "name", "time")
	names("audience", []string{"description", "schedule", "match", "enrich", "enabled", "alert"})
	add("destination", destinationCommon, "type")
	for typ, spec := range destinationSpecs {
		add("destination "+typ, spec.settings, spec.required...)
	}
	names("activation", activationClauses)
	for kind := range eventKinds {
		out = append(out, SettingInfo{Block: "activation event", Name: kind})
	}
	slices.SortFunc(out, func(a, b SettingInfo) int {
		return cmp.Or(strings.Compare(a.Block, b.Block), strings.Compare(a.Name, b.Name))
	})
	return out
}

func valueText(sp settingSpec) string {
	if sp.secret {
		return `env("NAME")`
	}
	switch sp.kind {
	case "ident":
		return "name"
	case "int":
		return "whole number"
	case "bool":
		return "true or false"
	case "string", "duration":
		return sp.kind
	}
	return "any"
}
