package dsl

import "testing"

// Settings reads the checker's tables: spot-check that it covers each kind
// of block and reports secrets and required keys as the checker enforces.
func TestSettings(t *testing.T) {
	got := map[string]SettingInfo{}
	for _, s := range Settings() {
		key := s.Block + "." + s.Name
		if _, dup := got[key]; dup {
			t.Errorf("%s listed twice", key)
		}
		got[key] = s
	}
	for key, want := range map[string]SettingInfo{
		"warehouse snowflake.dsn":       {Block: "warehouse snowflake", Name: "dsn", Value: `env("NAME")`, Secret: true, Required: true},
		"warehouse duckdb.load":         {Block: "warehouse duckdb", Name: "load", Value: "string", Repeatable: true},
		"destination kafka.brokers":     {Block: "destination kafka", Name: "brokers", Value: "any", Required: true},
		"destination.rate_limit":        {Block: "destination", Name: "rate_limit", Value: "any"},
		"events.time":                   {Block: "events", Name: "time", Value: "name", Required: true},
		"graph.max_depth":               {Block: "graph", Name: "max_depth"},
		"activation.send_current":       {Block: "activation", Name: "send_current"},
		"activation event.entity_added": {Block: "activation event", Name: "entity_added"},
		"workspace.state":               {Block: "workspace", Name: "state"},
	} {
		if got[key] != want {
			t.Errorf("%s: got %+v, want %+v", key, got[key], want)
		}
	}
	for _, typ := range DestinationTypes() {
		if typ != "stdout" && !hasBlock(got, "destination "+typ) {
			t.Errorf("no settings for destination %s", typ)
		}
	}
}

func hasBlock(m map[string]SettingInfo, block string) bool {
	for _, s := range m {
		if s.Block == block {
			return true
		}
	}
	return false
}
