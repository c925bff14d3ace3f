package diff_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
)

// TestAckOrders acknowledges and dead-letters a few cycles' events in
// random orders — in Seq order (one range deletion per commit), out of
// order, after gaps, twice — against a model of what is pending. After
// every call Pending must be the model, Verify find nothing wrong, and a
// refused call (a message acknowledged twice, or a wrong ID at a run's
// end) change
// nothing.
func TestAckOrders(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { ackOrders(t, seed) })
	}
}

func ackOrders(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 20))
	s, cycle := enteredOutbox(t, vfs.NewMem())
	// Three cycles, each a fresh set of profiles: three commits.
	for c := range 3 {
		var profiles []string
		for p := range 5 + rng.IntN(20) {
			profiles = append(profiles, fmt.Sprintf("c%d-p%02d", c, p))
		}
		if err := cycle(int64(c), profiles...); err != nil {
			t.Fatal(err)
		}
	}
	model, err := s.Pending("events", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		got, err := s.Pending("events", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, model, func(a, b diff.Message) bool { return a.Seq == b.Seq && a.ID == b.ID }) {
			t.Fatalf("after %s: %d pending, want %d", what, len(got), len(model))
		}
		r, err := s.Verify()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Problems) > 0 || len(r.Damage) > 0 {
			t.Fatalf("after %s: verify: %v %v", what, r.Problems, r.Damage)
		}
	}
	for step := 0; len(model) > 0; step++ {
		// A run from the start (as delivery acknowledges), or a random
		// subset, sorted or shuffled.
		var pick []int
		switch rng.IntN(3) {
		case 0:
			for i := range min(len(model), 1+rng.IntN(12)) {
				pick = append(pick, i)
			}
		case 1:
			for i := range model {
				if rng.IntN(3) == 0 {
					pick = append(pick, i)
				}
			}
		default:
			pick = rng.Perm(len(model))[:1+rng.IntN(min(len(model), 8))]
		}
		if len(pick) == 0 {
			continue
		}
		if rng.IntN(2) == 0 {
			slices.Sort(pick)
		}
		var msgs []diff.Message
		for _, i := range pick {
			msgs = append(msgs, model[i])
		}
		// Sometimes a call that must be refused whole.
		bad := rng.IntN(5)
		switch bad {
		case 0:
			msgs = append(msgs, msgs[rng.IntN(len(msgs))])
		case 1:
			// Inside a run acknowledged in order only the run's ends
			// are read (see Store.Ack); the call's first and last
			// message are always one.
			if rng.IntN(2) == 0 {
				msgs[0].ID = "la-wrong"
			} else {
				msgs[len(msgs)-1].ID = "la-wrong"
			}
		}
		dead := rng.IntN(4) == 0
		what := fmt.Sprintf("step %d (%d messages, dead %t, bad %d)", step, len(msgs), dead, bad)
		if dead {
			err = s.DeadLetter("events", msgs, "rejected")
		} else {
			err = s.Ack("events", msgs)
		}
		if bad <= 1 {
			if !errors.Is(err, diff.ErrNotPending) {
				t.Fatalf("%s: %v, want ErrNotPending", what, err)
			}
			check(what)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		gone := map[uint64]bool{}
		for _, m := range msgs {
			gone[m.Seq] = true
		}
		model = slices.DeleteFunc(model, func(m diff.Message) bool { return gone[m.Seq] })
		check(what)
	}
}
