package sinks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// TestKcatProduce is the producing half of sinks/testdata/kcat-e2e.sh: with
// LINKAUD_KCAT_BROKERS set (a running `linkaud devbroker`), it delivers
// generated events through linkaud's Kafka sink, plainly to topic
// linkaud-e2e and transactionally to linkaud-e2e-txn (created by the sink,
// create_topic true), and writes what a
// consumer must see, one "key TAB headers TAB value" line per record in
// delivery order, to LINKAUD_KCAT_EXPECT/{plain,txn}. The script then reads
// the topics with kcat (librdkafka) and compares.
func TestKcatProduce(t *testing.T) {
	brokers := os.Getenv("LINKAUD_KCAT_BROKERS")
	if brokers == "" {
		t.Skip("set LINKAUD_KCAT_BROKERS (see sinks/testdata/kcat-e2e.sh)")
	}
	dir := os.Getenv("LINKAUD_KCAT_EXPECT")
	for _, mode := range []struct{ name, topic, txn string }{
		{"plain", "linkaud-e2e", "false"},
		{"txn", "linkaud-e2e-txn", "true"},
	} {
		d, err := sinks.Open(&dsl.Destination{Name: "e2e_" + mode.name, Type: "kafka", Settings: map[string]dsl.Setting{
			"brokers":       {Secret: dsl.Secret{Env: "LINKAUD_KCAT_BROKERS"}},
			"topic":         {Text: mode.topic},
			"transactional": {Text: mode.txn},
			// linkaud creates the topics: devbroker starts with none.
			"create_topic": {Text: "true"},
		}}, sinks.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ob := sinktest.NewOutbox()
		msgs := ob.Append("e2e", sinktest.Messages(sinktest.GenOptions{Profiles: 12, PerProfile: 5, Audiences: []string{"outstanding_balance", "platinum_cat_owners"}})...)
		o := sinktest.FastOptions()
		o.BatchSize = 16
		st, err := sinks.Deliver(context.Background(), ob, "e2e", d, o)
		d.Close()
		if err != nil || st.Delivered != len(msgs) {
			t.Fatalf("%s: Deliver = %+v, %v", mode.name, st, err)
		}
		var b strings.Builder
		for _, m := range msgs {
			fmt.Fprintf(&b, "%s\t%s=%s,%s=%s,%s=%s\t%s\n", m.UserID,
				sinks.HeaderEvent, m.Event, sinks.HeaderAudience, m.Audience, sinks.HeaderMessageID, m.ID, m.Payload)
		}
		if err := os.WriteFile(filepath.Join(dir, mode.name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
