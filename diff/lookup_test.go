package diff_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// TestLookupBatches removes 2500 accounts in one cycle: the current values
// are read in statements of at most diff.LookupBatch keys, each key once;
// an account the lookup finds carries its current values, one it does not
// its last ones. A lookup that fails fails the cycle: nothing is emitted
// and the previous generation stays.
func TestLookupBatches(t *testing.T) {
	w := newWorld(t)
	acct := &dsl.Entity{Name: "account", Key: "id"}
	aud := &dsl.Audience{Name: "accts", Version: "v1", Primary: &dsl.Path{Steps: []*dsl.Step{{Entity: acct, Level: 2}}}}
	aud.Enrich = []*dsl.ColumnRef{{Source: dsl.SourceStep, Step: aud.Primary.Steps[0], StepIndex: 0, Entity: acct, Column: "type"}}
	act := &dsl.Activation{Name: "closed", Audience: aud, Destination: &dsl.Destination{Name: "out", Type: "file"},
		Event: dsl.EntityRemoved, Entity: acct, EntityStep: 0}
	l := diff.LayoutOf(aud)
	types := []arrow.DataType{arrow.BinaryTypes.String}
	if err := w.store.Enable("accts"); err != nil {
		t.Fatal(err)
	}
	const n = 2500
	var rows [][]any
	for i := range n {
		rows = append(rows, []any{fmt.Sprintf("u%04d", i), fmt.Sprintf("a%04d", i), "checking"})
	}
	cycle := func(rows [][]any, lookup diff.Lookup) (*diff.CycleResult, error) {
		w.clock = w.clock.Add(time.Hour)
		rr := buildReader(t, l, types, rows, 512)
		defer rr.Release()
		return w.store.Cycle(context.Background(), diff.CycleInput{
			Audience: aud, Layout: l, Activations: []*dsl.Activation{act}, Rows: rr, Start: w.clock, Lookup: lookup,
		})
	}
	if _, err := cycle(rows, nil); err != nil {
		t.Fatal(err)
	}
	w.newEvents(t, false)

	// The warehouse holds the even accounts, now savings.
	var calls [][]string
	lookup := func(_ context.Context, step int, keys []string) (array.RecordReader, error) {
		if step != 0 {
			t.Errorf("lookup of step %d", step)
		}
		calls = append(calls, keys)
		schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "type", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
		rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer rb.Release()
		for _, k := range keys {
			var i int
			fmt.Sscanf(k, "a%d", &i)
			if i%2 == 0 {
				rb.Field(0).(*array.StringBuilder).Append(k)
				rb.Field(1).(*array.StringBuilder).Append("savings")
			}
		}
		rec := rb.NewRecordBatch()
		defer rec.Release()
		return array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	}

	failing := func(context.Context, int, []string) (array.RecordReader, error) {
		return nil, errors.New("warehouse down")
	}
	if _, err := cycle(nil, failing); err == nil || !strings.Contains(err.Error(), "warehouse down") {
		t.Fatalf("a failing lookup: %v", err)
	}
	if got := w.newEvents(t, false); got != "" {
		t.Fatalf("a failed cycle emitted:\n%s", got)
	}

	res, err := cycle(nil, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != n {
		t.Fatalf("%d events, want %d", res.Events, n)
	}
	seen := map[string]bool{}
	for _, c := range calls {
		if len(c) > diff.LookupBatch {
			t.Errorf("a lookup of %d keys", len(c))
		}
		for _, k := range c {
			if seen[k] {
				t.Errorf("key %s looked up twice", k)
			}
			seen[k] = true
		}
	}
	if len(calls) != 3 || len(seen) != n {
		t.Fatalf("%d lookups of %d keys, want 3 of %d", len(calls), len(seen), n)
	}
	msgs, err := w.store.Pending("out", 0, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		var ev struct {
			Properties struct {
				Reason        string                    `json:"reason"`
				EntityValues  string                    `json:"entity_values"`
				EntityContext map[string]map[string]any `json:"_entity_context"`
			}
		}
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		a := ev.Properties.EntityContext["account"]
		var i int
		fmt.Sscanf(a["id"].(string), "a%d", &i)
		want, values := "checking", "last_seen"
		if i%2 == 0 {
			want, values = "savings", "current"
		}
		if a["type"] != want || ev.Properties.EntityValues != values || ev.Properties.Reason != diff.ReasonProfileExited {
			t.Fatalf("account a%04d: %s", i, m.Payload)
		}
	}
}
