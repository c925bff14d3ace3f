package diff_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// TestConcurrentCycles runs cycles of several audiences at once, all
// sending to one destination, while a reader follows the outbox with a
// cursor the way delivery does. Messages must become pending in Seq order:
// once the reader has passed a Seq, no message below it may appear, or a
// cursor-based delivery (and a Kafka resumer acknowledging "everything up
// to Seq") would skip it. Staged cycles (tiny batches) make the window
// between a cycle's first write and its switch as wide as possible.
func TestConcurrentCycles(t *testing.T) {
	s, err := diff.Open("state", diff.Options{
		FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		FinalBatchBytes: 512, StageBatchBytes: 256,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dest := &dsl.Destination{Name: "events", Type: "kafka"}
	const audiences, cycles, profiles = 4, 12, 40

	var wg sync.WaitGroup
	errs := make(chan error, audiences+1)
	for a := range audiences {
		aud := &dsl.Audience{Name: fmt.Sprintf("aud%d", a), Version: "v1"}
		acts := []*dsl.Activation{{Name: "entered" + aud.Name, Audience: aud, Destination: dest, Event: dsl.AudienceEntered, EntityStep: -1, SendCurrent: true}}
		if err := s.Enable(aud.Name); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range cycles {
				// Every cycle the audience is a fresh set of profiles:
				// everyone enters.
				var rows [][]any
				for p := range profiles {
					rows = append(rows, []any{fmt.Sprintf("c%02d-p%03d", c, p)})
				}
				rr := buildReader(t, diff.Layout{}, []arrow.DataType{}, rows, 7)
				_, err := s.Cycle(context.Background(), diff.CycleInput{
					Audience: aud, Layout: diff.Layout{}, Activations: acts, Rows: rr, Start: time.Unix(int64(c), 0),
				})
				rr.Release()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done, stop := make(chan struct{}), make(chan struct{})
	var seen int
	go func() {
		defer close(done)
		var cursor uint64
		ids := map[uint64]string{}
		check := func() bool {
			msgs, err := s.Pending("events", 0, 1<<20)
			if err != nil {
				errs <- err
				return false
			}
			for i, m := range msgs {
				if i > 0 && m.Seq <= msgs[i-1].Seq {
					errs <- fmt.Errorf("Pending out of order: %d after %d", m.Seq, msgs[i-1].Seq)
					return false
				}
				if id, ok := ids[m.Seq]; ok {
					if id != m.ID {
						errs <- fmt.Errorf("seq %d was %s, now %s", m.Seq, id, m.ID)
						return false
					}
					continue
				}
				if m.Seq <= cursor {
					errs <- fmt.Errorf("seq %d (%s) appeared below the cursor %d", m.Seq, m.ID, cursor)
					return false
				}
				ids[m.Seq] = m.ID
			}
			if len(msgs) > 0 {
				cursor = msgs[len(msgs)-1].Seq
			}
			seen = len(ids)
			return true
		}
		for {
			select {
			case <-stop:
				check()
				return
			default:
			}
			if !check() {
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if want := audiences * cycles * profiles; seen != want {
		t.Fatalf("reader saw %d messages, want %d", seen, want)
	}
}
