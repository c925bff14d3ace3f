package sinks_test

import (
	"context"
	"os"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// TestLiveVendors sends a few generated events (profiles "u0000"…) to the
// real APIs when credentials are given, and requires them delivered with
// nothing dead-lettered: the fakes above follow the documentation, this
// checks the documentation against the vendor. Skipped without the
// variables (CI has none):
//
//	LINKAUD_LIVE_BRAZE_URL, LINKAUD_LIVE_BRAZE_KEY
//	LINKAUD_LIVE_ITERABLE_KEY
//	LINKAUD_LIVE_CIO_SITE, LINKAUD_LIVE_CIO_KEY
func TestLiveVendors(t *testing.T) {
	for _, v := range []struct {
		typ      string
		need     []string
		settings map[string]dsl.Setting
	}{
		{"braze", []string{"LINKAUD_LIVE_BRAZE_URL", "LINKAUD_LIVE_BRAZE_KEY"}, map[string]dsl.Setting{
			"endpoint": {Secret: dsl.Secret{Env: "LINKAUD_LIVE_BRAZE_URL"}}, "api_key": {Secret: dsl.Secret{Env: "LINKAUD_LIVE_BRAZE_KEY"}}}},
		{"iterable", []string{"LINKAUD_LIVE_ITERABLE_KEY"}, map[string]dsl.Setting{
			"api_key": {Secret: dsl.Secret{Env: "LINKAUD_LIVE_ITERABLE_KEY"}}}},
		{"customerio", []string{"LINKAUD_LIVE_CIO_SITE", "LINKAUD_LIVE_CIO_KEY"}, map[string]dsl.Setting{
			"site_id": {Secret: dsl.Secret{Env: "LINKAUD_LIVE_CIO_SITE"}}, "api_key": {Secret: dsl.Secret{Env: "LINKAUD_LIVE_CIO_KEY"}}}},
	} {
		t.Run(v.typ, func(t *testing.T) {
			for _, name := range v.need {
				if os.Getenv(name) == "" {
					t.Skipf("set %v to run against the real %s API", v.need, v.typ)
				}
			}
			d, err := sinks.Open(&dsl.Destination{Name: "live", Type: v.typ, Settings: v.settings}, sinks.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ob := sinktest.NewOutbox()
			msgs := ob.Append("live", sinktest.Messages(sinktest.GenOptions{Profiles: 2, PerProfile: 5, Audiences: []string{"linkaud_live_test"}})...)
			st, err := sinks.Deliver(context.Background(), ob, "live", d, sinktest.FastOptions())
			if err != nil || st.Delivered != len(msgs) || st.DeadLettered != 0 {
				t.Fatalf("Deliver = %+v, %v; dead letters %v", st, err, ob.DeadLetters("live"))
			}
		})
	}
}
