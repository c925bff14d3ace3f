package diff

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// RunRecord is one cycle of an audience in its history (the last
// Options.HistoryRuns are kept).
type RunRecord struct {
	Run        uint64    `json:"run"`
	Start      time.Time `json:"start"`
	Generation uint64    `json:"generation"` // the generation made current; N-1's number when failed
	Version    string    `json:"version,omitempty"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	// Query is the time spent waiting for the warehouse (CycleInput.QueryTime
	// plus the time blocked reading the stream); Diff the rest of the cycle;
	// Delivery what RecordDelivery reported.
	Query    time.Duration `json:"query"`
	Diff     time.Duration `json:"diff"`
	Delivery time.Duration `json:"delivery,omitempty"`
	Counts
	// Delivered is what RecordDelivery reported.
	Delivered int64 `json:"delivered,omitempty"`
	// Alerts are the drift alerts the run fired: the run is marked.
	Alerts []FiredAlert `json:"alerts,omitempty"`
}

// Counts are the changes of one cycle.
type Counts struct {
	// Rows read from the stream (before deduplication).
	RowsRead int64 `json:"rows_read"`
	// Duplicates are rows dropped because an earlier one had the same keys.
	Duplicates int64 `json:"duplicates,omitempty"`
	// Members and Rows of the new generation.
	Members int64 `json:"members"`
	Rows    int64 `json:"rows"`
	// Entered and Exited count profiles; Added and Removed (profile, entity
	// chain) rows; Changed rows and members whose enrichment values changed.
	Entered int64 `json:"entered"`
	Exited  int64 `json:"exited"`
	Added   int64 `json:"added"`
	Removed int64 `json:"removed"`
	Changed int64 `json:"changed"`
	// Events were written to the outbox; Oversize were over the size cap
	// and dropped.
	Events   int64 `json:"events"`
	Oversize int64 `json:"oversize,omitempty"`
	// BytesWritten is the size of the batches the cycle committed; the
	// run record's copy leaves out the record itself.
	BytesWritten int64 `json:"bytes_written"`
	// Staged is set when the change was too large for one batch.
	Staged bool `json:"staged,omitempty"`
}

func (s *Store) putRun(b *pebble.Batch, aud string, r *RunRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := b.Set(runKey(aud, r.Run), v, nil); err != nil {
		return err
	}
	if keep := uint64(s.opts.HistoryRuns); r.Run > keep {
		// Runs are numbered without gaps, so everything at or below
		// Run-keep is out of the window; one range deletion covers runs a
		// smaller HistoryRuns in the past left behind.
		return b.DeleteRange(runKey(aud, 0), runKey(aud, r.Run-keep+1), nil)
	}
	return nil
}

// Runs returns aud's run history, newest first.
func (s *Store) Runs(aud string) (_ []RunRecord, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	var out []RunRecord
	err = s.scan(runPrefix(aud), func(k, v []byte) error {
		var r RunRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("diff: run record of %s: %w", aud, err)
		}
		out = append(out, r)
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// RecordDelivery adds delivery figures to a run's record: the engine
// delivers after the cycle, so they arrive later. A run no longer in the
// history is ignored.
func (s *Store) RecordDelivery(aud string, run uint64, delivered int64, took time.Duration) (err error) {
	if err := s.checkWrite(); err != nil {
		return err
	}
	defer s.classifyInto(&err)
	defer s.lock(aud)()
	v, ok, err := s.get(runKey(aud, run))
	if err != nil || !ok {
		return err
	}
	var r RunRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return fmt.Errorf("diff: run record of %s: %w", aud, err)
	}
	r.Delivered += delivered
	r.Delivery += took
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.putRun(b, aud, &r); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}
