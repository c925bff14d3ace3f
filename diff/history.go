package diff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The size history of an audience (table 0x0b): one point per run, for
// every run rather than the last Options.HistoryRuns, in one value per
// audience read and rewritten with each run's record. It stays bounded in
// bytes: the newest HistoryFullRuns points keep one point per run; older
// ones are merged into one point per UTC day (the day's last size, its
// entered, exited and alerts summed); beyond HistoryMaxPoints points the
// oldest are dropped. A point takes 57 bytes at most (uvarints: about 12
// for a typical run), so an audience's history stays under
// HistoryMaxPoints × 57 ≈ 84 KiB whatever its schedule: with a run every
// minute, the last 1,000 runs at full resolution and about 500 days before
// them.
const (
	HistoryFullRuns  = 1000
	HistoryMaxPoints = 1500
	// historyMaxPointBytes bounds one encoded point: seven uvarints.
	historyMaxPointBytes = 57
	historyFormat        = 1
)

// HistoryPoint is one run of an audience, or the runs of one day merged
// (Runs > 1) once older than the newest HistoryFullRuns.
type HistoryPoint struct {
	// Run is the (last) run's number; Start its start.
	Run   uint64    `json:"run"`
	Start time.Time `json:"start"`
	// Members after the run (a failed run keeps the previous generation's).
	Members int64 `json:"members"`
	Entered int64 `json:"entered"`
	Exited  int64 `json:"exited"`
	// OK is false when the (last) run failed.
	OK bool `json:"ok"`
	// Alerts counts the drift alerts the run(s) fired.
	Alerts int `json:"alerts,omitempty"`
	// Runs is how many runs the point stands for.
	Runs int `json:"runs"`
}

func historyKey(aud string) []byte { return appendString([]byte{tHistory}, aud) }

func encodeHistory(pts []HistoryPoint) []byte {
	b := make([]byte, 0, 1+len(pts)*16)
	b = append(b, historyFormat)
	var prevRun uint64
	var prevStart int64
	for _, p := range pts {
		start := p.Start.Unix()
		flags := uint64(p.Alerts) << 1
		if p.OK {
			flags |= 1
		}
		b = binary.AppendUvarint(b, p.Run-prevRun)
		b = binary.AppendVarint(b, start-prevStart)
		b = binary.AppendUvarint(b, uint64(max(p.Members, 0)))
		b = binary.AppendUvarint(b, uint64(max(p.Entered, 0)))
		b = binary.AppendUvarint(b, uint64(max(p.Exited, 0)))
		b = binary.AppendUvarint(b, flags)
		b = binary.AppendUvarint(b, uint64(max(p.Runs, 1)))
		prevRun, prevStart = p.Run, start
	}
	return b
}

var errBadHistory = errors.New("diff: malformed size history")

func decodeHistory(b []byte) ([]HistoryPoint, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != historyFormat {
		return nil, fmt.Errorf("%w: format %d", errBadHistory, b[0])
	}
	b = b[1:]
	var out []HistoryPoint
	var run uint64
	var start int64
	bad := false
	next := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	for len(b) > 0 && !bad {
		run += next()
		d, n := binary.Varint(b)
		if n <= 0 {
			return nil, errBadHistory
		}
		b = b[n:]
		start += d
		p := HistoryPoint{Run: run, Start: time.Unix(start, 0).UTC()}
		p.Members, p.Entered, p.Exited = int64(next()), int64(next()), int64(next())
		flags := next()
		p.OK, p.Alerts = flags&1 == 1, int(flags>>1)
		p.Runs = int(next())
		out = append(out, p)
	}
	if bad {
		return nil, errBadHistory
	}
	return out, nil
}

// appendHistory adds p and downsamples: the point that p pushes out of
// the newest full ones merges into the point before it when both are of
// one UTC day (so points older than the full ones are one per day), and
// the oldest go beyond maxPoints.
func appendHistory(pts []HistoryPoint, p HistoryPoint, full, maxPoints int) []HistoryPoint {
	pts = append(pts, p)
	if n := len(pts) - full - 1; n >= 1 && sameDay(pts[n-1].Start, pts[n].Start) {
		m, q := &pts[n-1], pts[n]
		m.Run, m.Start, m.Members, m.OK = q.Run, q.Start, q.Members, q.OK
		m.Entered += q.Entered
		m.Exited += q.Exited
		m.Alerts += q.Alerts
		m.Runs += q.Runs
		pts = slices.Delete(pts, n, n+1)
	}
	if over := len(pts) - maxPoints; over > 0 {
		pts = slices.Delete(pts, 0, over)
	}
	return pts
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.UTC().Date()
	by, bm, bd := b.UTC().Date()
	return ay == by && am == bm && ad == bd
}

// putHistory adds run r to aud's size history in batch b; members is the
// size after the run. The caller holds the audience lock.
func (s *Store) putHistory(b *pebble.Batch, aud string, r *RunRecord, members int64) error {
	v, _, err := s.get(historyKey(aud))
	if err != nil {
		return err
	}
	pts, err := decodeHistory(v)
	if err != nil {
		// A damaged series is not worth failing a run for: start again.
		s.log.Warn("size history unreadable; starting it again", "audience", aud, "error", err)
		pts = nil
	}
	pts = appendHistory(pts, HistoryPoint{
		Run: r.Run, Start: r.Start, Members: members, Entered: r.Entered, Exited: r.Exited,
		OK: r.OK, Alerts: len(r.Alerts), Runs: 1,
	}, HistoryFullRuns, HistoryMaxPoints)
	return b.Set(historyKey(aud), encodeHistory(pts), nil)
}

// History returns aud's size history, oldest first: a point per run for
// the newest HistoryFullRuns runs, a point per day before them.
func (s *Store) History(aud string) (_ []HistoryPoint, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	v, _, err := s.get(historyKey(aud))
	if err != nil {
		return nil, err
	}
	pts, err := decodeHistory(v)
	if err != nil {
		return nil, fmt.Errorf("diff: history of %s: %w", aud, err)
	}
	return pts, nil
}
