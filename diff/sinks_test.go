package diff_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

var _ sinks.Outbox = (*diff.Store)(nil)

// TestDeliverFromStore runs the sinks delivery loop on the store's outbox
// with a real webhook destination: delivered events leave the outbox, a
// permanently rejected one goes to the dead-letter store with the reason,
// and a retry sends it again with the same messageId.
func TestDeliverFromStore(t *testing.T) {
	var (
		mu       sync.Mutex
		received []string // messageIds
		reject   = "u2"
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Batch []struct {
				UserID    string `json:"userId"`
				MessageID string `json:"messageId"`
			} `json:"batch"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Batch) == 0 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range req.Batch {
			if e.UserID == reject {
				http.Error(w, "unknown user "+e.UserID, http.StatusBadRequest)
				return
			}
		}
		for _, e := range req.Batch {
			received = append(received, e.MessageID)
		}
	}))
	defer srv.Close()

	s, err := diff.Open("state", diff.Options{FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dest := &dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
		"url": {Text: srv.URL}, "batch_size": {Text: "1"},
	}}
	aud := &dsl.Audience{Name: "vip", Version: "v1"}
	acts := []*dsl.Activation{{Name: "welcome", Audience: aud, Destination: dest, Event: dsl.AudienceEntered, EntityStep: -1, SendCurrent: true}}
	if err := s.Enable("vip"); err != nil {
		t.Fatal(err)
	}
	rr := buildReader(t, diff.Layout{}, []arrow.DataType{}, [][]any{{"u1"}, {"u2"}, {"u3"}}, 2)
	defer rr.Release()
	if _, err := s.Cycle(context.Background(), diff.CycleInput{
		Audience: aud, Layout: diff.LayoutOf(aud), Activations: acts, Rows: rr, Start: time.Unix(1_800_000_000, 0),
	}); err != nil {
		t.Fatal(err)
	}
	pending, err := s.Pending("hook", 0, 10)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending = %d, %v", len(pending), err)
	}

	d, err := sinks.Open(dest, sinks.OpenOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	opts := sinktest.FastOptions()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sinks.Deliver(context.Background(), s, "hook", d, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Delivered != 2 || st.DeadLettered != 1 {
		t.Fatalf("stats %+v: want 2 delivered, 1 dead-lettered", st)
	}
	if want := []string{pending[0].ID, pending[2].ID}; !slices.Equal(received, want) {
		t.Fatalf("received %v, want %v", received, want)
	}
	if n, err := s.Backlog("hook"); err != nil || n != 0 {
		t.Fatalf("backlog %d, %v", n, err)
	}
	dls, err := s.DeadLetters("")
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v, %v", dls, err)
	}
	if dl := dls[0]; dl.ID != pending[1].ID || dl.Seq != pending[1].Seq || !strings.Contains(dl.Reason, "400") {
		t.Fatalf("dead letter %+v (reason %q), want %s seq %d with the HTTP status", dl.Message, dl.Reason, pending[1].ID, pending[1].Seq)
	}

	mu.Lock()
	reject = ""
	mu.Unlock()
	if n, err := s.RetryDeadLetters("hook", nil); err != nil || n != 1 {
		t.Fatalf("retry moved %d, %v", n, err)
	}
	retried, err := s.Pending("hook", 0, 10)
	if err != nil || len(retried) != 1 || retried[0].ID != pending[1].ID || retried[0].Seq <= pending[2].Seq {
		t.Fatalf("after retry pending %+v, %v: want %s with a Seq above %d", retried, err, pending[1].ID, pending[2].Seq)
	}
	st, err = sinks.Deliver(context.Background(), s, "hook", d, opts)
	if err != nil || st.Delivered != 1 {
		t.Fatalf("second delivery %+v, %v", st, err)
	}
	if want := []string{pending[0].ID, pending[2].ID, pending[1].ID}; !slices.Equal(received, want) {
		t.Fatalf("received %v, want %v", received, want)
	}
	if dls, _ := s.DeadLetters(""); len(dls) != 0 {
		t.Fatalf("dead letters left: %v", dls)
	}
}
