package diff_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// walHoldFS holds every sync of a write-ahead log while armed, until
// released: the window in which Pebble has published a synced batch to
// readers but the batch is not yet on disk.
type walHoldFS struct {
	vfs.FS
	armed   atomic.Bool
	held    chan struct{} // receives when a sync is being held
	release chan struct{}
}

func (fs *walHoldFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &walHoldFile{File: f, fs: fs}, nil
}

func (fs *walHoldFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *walHoldFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, c)
	return fs.wrap(name, f, err)
}

type walHoldFile struct {
	vfs.File
	fs *walHoldFS
}

func (f *walHoldFile) hold() {
	if f.fs.armed.Load() {
		f.fs.held <- struct{}{}
		<-f.fs.release
	}
}

func (f *walHoldFile) Sync() error {
	f.hold()
	return f.File.Sync()
}

// SyncData is how Pebble syncs its log (vfs.NewSyncingFile).
func (f *walHoldFile) SyncData() error {
	f.hold()
	return f.File.SyncData()
}

// TestPendingOnlyDurable: delivery must not see a cycle's events before the
// batch that committed them is on disk. Pebble publishes a synced batch to
// readers before its sync returns; an event sent in that window, then lost
// with the batch in a crash, would be computed again by the next cycle,
// under the same messageId with another timestamp (a worker killed at a
// random time did exactly that).
func TestPendingOnlyDurable(t *testing.T) {
	fs := &walHoldFS{FS: vfs.NewMem(), held: make(chan struct{}), release: make(chan struct{})}
	s, cycle := enteredOutbox(t, fs)
	if err := cycle(1, "p1"); err != nil {
		t.Fatal(err)
	}
	if msgs, err := s.Pending("events", 0, 10); err != nil || len(msgs) != 1 {
		t.Fatalf("after a committed cycle: %d pending, %v; want 1", len(msgs), err)
	}

	fs.armed.Store(true)
	var wg sync.WaitGroup
	var cycleErr error
	wg.Go(func() { cycleErr = cycle(2, "p1", "p2") })
	// Every sync of the second cycle is held; the final batch's is the
	// one after which Pebble shows the batch while its sync waits.
	published := func() bool {
		// Pebble applies and publishes the batch beside the sync:
		// give it a moment.
		for range 400 {
			st, err := s.State("aud")
			if err != nil {
				t.Fatal(err)
			}
			if st.Generation == 2 {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
		return false
	}
	deadline := time.After(time.Minute)
	for {
		select {
		case <-fs.held:
		case <-deadline:
			t.Fatal("the cycle did not reach its final sync within a minute")
		}
		if published() {
			break // the final batch is readable, its sync held
		}
		fs.release <- struct{}{}
	}
	msgs, err := s.Pending("events", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		t.Errorf("while the final batch's sync is held, %d messages are pending (%s), want the 1 on disk", len(msgs), strings.Join(ids, ", "))
	}
	fs.armed.Store(false)
	close(fs.release)
	wg.Wait()
	if cycleErr != nil {
		t.Fatal(cycleErr)
	}
	if msgs, err := s.Pending("events", 0, 10); err != nil || len(msgs) != 2 {
		t.Fatalf("once synced: %d pending, %v; want 2", len(msgs), err)
	}
}

// enteredOutbox opens a store on fs with one audience, "aud", whose
// activation "entered" sends Audience Entered (send_current) to the
// destination "events", and returns it with a function running a cycle
// of it (started at second start) in which the profiles are the members.
func enteredOutbox(t *testing.T, fs vfs.FS) (*diff.Store, func(start int64, profiles ...string) error) {
	t.Helper()
	s, err := diff.Open("state", diff.Options{FS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	aud := &dsl.Audience{Name: "aud", Version: "v1"}
	dest := &dsl.Destination{Name: "events", Type: "kafka"}
	acts := []*dsl.Activation{{Name: "entered", Audience: aud, Destination: dest, Event: dsl.AudienceEntered, EntityStep: -1, SendCurrent: true}}
	if err := s.Enable(aud.Name); err != nil {
		t.Fatal(err)
	}
	return s, func(start int64, profiles ...string) error {
		var rows [][]any
		for _, p := range profiles {
			rows = append(rows, []any{p})
		}
		rr := buildReader(t, diff.Layout{}, []arrow.DataType{}, rows, 7)
		defer rr.Release()
		_, err := s.Cycle(context.Background(), diff.CycleInput{
			Audience: aud, Layout: diff.Layout{}, Activations: acts, Rows: rr, Start: time.Unix(start, 0),
		})
		return err
	}
}
