package diff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cockroachdb/pebble/v2"

	"github.com/linkaud/linkaud/executor"
)

// ErrUnsorted is returned (wrapped, with the offending keys) when the result
// rows are not in key order: a planner bug that must not reach the state.
var ErrUnsorted = errors.New("diff: result rows are not sorted by profile_key, key_0, …")

// ErrInvalidRows is returned (wrapped) for rows the contract rules out, such
// as a NULL profile_key.
var ErrInvalidRows = errors.New("diff: invalid result rows")

// Reason is implemented by a result stream's error that already says, for
// a person, why the cycle failed (a load file missing, a column the
// warehouse lacks): the differ records it as it is, without saying where
// it read it.
type Reason interface {
	error
	IsReason()
}

// item is one entry of a generation in key order: a member (key is the
// encoded profile key, val its trait values) or an entity row (key the
// encoded profile and entity keys, val its step values).
type item struct {
	key, val []byte
	member   bool
}

// row is one result row, encoded.
type row struct {
	full    []byte // profile_key, key_0 … key_n-1, encoded
	profEnd int    // end of profile_key in full
	entity  bool   // key_0 is not NULL: the row is a stored entity row
	steps   []byte // step enrichment values
	traits  []byte // trait enrichment values
}

// less orders rows with equal keys, so deduplication keeps the same row
// whatever order the warehouse returned duplicates in.
func (r *row) lessVals(o *row) bool {
	if c := bytes.Compare(r.steps, o.steps); c != 0 {
		return c < 0
	}
	return bytes.Compare(r.traits, o.traits) < 0
}

// rowReader turns a RecordReader into encoded rows. Decoding Arrow and
// encoding keys and JSON values is half of a cycle's work, so a producer
// goroutine does it batch by batch while the merge consumes the previous
// batch: the two halves run on two cores.
type rowReader struct {
	// Producer side.
	ctx       context.Context
	rr        array.RecordReader
	nkeys     int
	stepCols  []int
	traitCols []int
	keys      []executor.Cells // profile_key, key_0 …
	vals      []jsonCol        // per enrichment column
	scratch   []byte
	frag      []byte
	produced  int64
	blocked   time.Duration // time spent waiting in rr.Next; read after stop

	full chan *encBatch
	free chan *encBatch
	quit chan struct{}
	done chan struct{}

	// Consumer side.
	cur  *encBatch
	i    int
	read int64 // rows consumed
	err  error
}

// encBatch is one record batch, encoded: rows index into data.
type encBatch struct {
	data []byte
	rows []encRow
	err  error // after rows: the error that ended the stream
}

type encRow struct {
	start, profEnd, keysEnd, stepsEnd, end int
	entity                                 bool
}

func newRowReader(ctx context.Context, rr array.RecordReader, l Layout) (*rowReader, error) {
	if err := l.checkSchema(rr.Schema()); err != nil {
		return nil, err
	}
	return &rowReader{
		ctx: ctx, rr: rr, nkeys: len(l.Steps), stepCols: l.stepCols(), traitCols: l.traitCols(),
		full: make(chan *encBatch, 2), free: make(chan *encBatch, 4),
		quit: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// start starts the producer; stop must follow.
func (r *rowReader) start() { go r.produce() }

// stop ends the producer and waits for it: the RecordReader is not touched
// after stop returns.
func (r *rowReader) stop() {
	close(r.quit)
	<-r.done
}

func (r *rowReader) produce() {
	defer close(r.done)
	defer close(r.full)
	for {
		ok, err := r.nextRecord()
		var b *encBatch
		select {
		case b = <-r.free:
			b.data, b.rows, b.err = b.data[:0], b.rows[:0], nil
		default:
			b = &encBatch{}
		}
		if err == nil && ok {
			err = r.encode(b)
		}
		b.err = err
		if !ok && err == nil {
			return
		}
		select {
		case r.full <- b:
		case <-r.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// nextRecord advances to the next non-empty record batch.
func (r *rowReader) nextRecord() (bool, error) {
	for {
		if err := r.ctx.Err(); err != nil {
			return false, err
		}
		t := time.Now()
		ok := r.rr.Next()
		r.blocked += time.Since(t)
		if !ok {
			if err := r.rr.Err(); err != nil {
				var reason Reason
				if errors.As(err, &reason) {
					return false, err
				}
				return false, fmt.Errorf("diff: reading the result rows: %w", err)
			}
			return false, nil
		}
		rec := r.rr.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		r.keys = r.keys[:0]
		for c := 0; c <= r.nkeys; c++ {
			cells, err := executor.NewCells(rec.Column(c))
			if err != nil {
				return false, fmt.Errorf("%w: column %s: %v", ErrLayout, rec.ColumnName(c), err)
			}
			r.keys = append(r.keys, cells)
		}
		r.vals = r.vals[:0]
		for c := r.nkeys + 1; c < int(rec.NumCols()); c++ {
			jc, err := newJSONCol(rec.Column(c))
			if err != nil {
				return false, fmt.Errorf("%w: column %s: %v", ErrLayout, rec.ColumnName(c), err)
			}
			r.vals = append(r.vals, jc)
		}
		return true, nil
	}
}

// encode encodes every row of the current record batch into b.
func (r *rowReader) encode(b *encBatch) error {
	n := r.keys[0].Len()
	var ok bool
	var err error
	for i := range n {
		r.produced++
		e := encRow{start: len(b.data)}
		r.scratch, ok = r.keys[0].AppendText(r.scratch[:0], i)
		if !ok {
			return fmt.Errorf("%w: row %d has a NULL profile_key", ErrInvalidRows, r.produced)
		}
		b.data = appendText(b.data, r.scratch)
		e.profEnd = len(b.data)
		for k := 1; k <= r.nkeys; k++ {
			r.scratch, ok = r.keys[k].AppendText(r.scratch[:0], i)
			if !ok {
				b.data = append(b.data, tagNull)
				continue
			}
			if k == 1 {
				e.entity = true
			}
			b.data = appendText(b.data, r.scratch)
		}
		e.keysEnd = len(b.data)
		for _, j := range r.stepCols {
			r.frag, r.scratch, err = r.vals[j].appendJSON(r.frag[:0], r.scratch, i)
			if err != nil {
				return err
			}
			b.data = appendFragment(b.data, r.frag)
		}
		e.stepsEnd = len(b.data)
		for _, j := range r.traitCols {
			r.frag, r.scratch, err = r.vals[j].appendJSON(r.frag[:0], r.scratch, i)
			if err != nil {
				return err
			}
			b.data = appendFragment(b.data, r.frag)
		}
		e.end = len(b.data)
		b.rows = append(b.rows, e)
	}
	return nil
}

// next copies the next row into dst, reusing its buffers.
func (r *rowReader) next(dst *row) (bool, error) {
	for r.cur == nil || r.i >= len(r.cur.rows) {
		if r.cur != nil {
			if r.cur.err != nil {
				r.err = r.cur.err
			}
			select {
			case r.free <- r.cur:
			default:
			}
			r.cur = nil
		}
		if r.err != nil {
			return false, r.err
		}
		b, ok := <-r.full
		if !ok {
			return false, nil
		}
		r.cur, r.i = b, 0
	}
	e := r.cur.rows[r.i]
	d := r.cur.data
	r.i++
	r.read++
	dst.full = append(dst.full[:0], d[e.start:e.keysEnd]...)
	dst.profEnd = e.profEnd - e.start
	dst.entity = e.entity
	dst.steps = append(dst.steps[:0], d[e.keysEnd:e.stepsEnd]...)
	dst.traits = append(dst.traits[:0], d[e.stepsEnd:e.end]...)
	return true, nil
}

// newSide yields the items of the new generation from the result rows,
// checking that rows are sorted and dropping duplicates (rows with the same
// keys: the one with the smallest values stays).
type newSide struct {
	rd             *rowReader
	bufs           [3]row
	pending, look  *row
	out            *row
	havePending    bool
	lastProfile    []byte
	rowNext        bool // the current row's entity item is due
	dups           int64
	firstDup       string
	members, nrows int64
}

func newNewSide(rd *rowReader) *newSide {
	s := &newSide{rd: rd}
	s.pending, s.look, s.out = &s.bufs[0], &s.bufs[1], &s.bufs[2]
	return s
}

func (s *newSide) nextRow() (*row, bool, error) {
	if !s.havePending {
		ok, err := s.rd.next(s.pending)
		if !ok || err != nil {
			return nil, false, err
		}
		s.havePending = true
	}
	for {
		ok, err := s.rd.next(s.look)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			s.havePending = false
			s.out, s.pending = s.pending, s.out
			return s.out, true, nil
		}
		switch c := bytes.Compare(s.look.full, s.pending.full); {
		case c < 0:
			return nil, false, fmt.Errorf("%w: row %d %s comes after %s", ErrUnsorted, s.rd.read,
				fmtKey(s.look.full), fmtKey(s.pending.full))
		case c == 0:
			if s.dups == 0 {
				s.firstDup = fmtKey(s.look.full)
			}
			s.dups++
			if s.look.lessVals(s.pending) {
				s.look, s.pending = s.pending, s.look
			}
		default:
			s.out, s.pending, s.look = s.pending, s.look, s.out
			return s.out, true, nil
		}
	}
}

func (s *newSide) next() (item, bool, error) {
	if s.rowNext {
		s.rowNext = false
		s.nrows++
		return item{key: s.out.full, val: s.out.steps}, true, nil
	}
	for {
		r, ok, err := s.nextRow()
		if !ok || err != nil {
			return item{}, false, err
		}
		if !bytes.Equal(r.full[:r.profEnd], s.lastProfile) {
			s.lastProfile = append(s.lastProfile[:0], r.full[:r.profEnd]...)
			s.rowNext = r.entity
			s.members++
			return item{key: s.lastProfile, val: r.traits, member: true}, true, nil
		}
		if r.entity {
			s.nrows++
			return item{key: r.full, val: r.steps}, true, nil
		}
		// A chainless row of a profile already seen adds nothing.
	}
}

// oldSide yields the items of the current generation from the store.
type oldSide struct {
	it      *pebble.Iterator
	plen    int
	started bool
}

func (s *oldSide) next() (item, bool, error) {
	var ok bool
	if !s.started {
		s.started = true
		ok = s.it.First()
	} else {
		ok = s.it.Next()
	}
	if !ok {
		return item{}, false, s.it.Error()
	}
	key := s.it.Key()[s.plen:]
	val, err := s.it.ValueAndErr()
	if err != nil {
		return item{}, false, err
	}
	n, err := elemEnd(key)
	if err != nil {
		return item{}, false, err
	}
	return item{key: key, val: val, member: n == len(key)}, true, nil
}

// fmtKey renders an encoded tuple for error messages: (p, k0, NULL).
func fmtKey(b []byte) string {
	elems, err := decodeTuple(b)
	if err != nil {
		return fmt.Sprintf("%q", b)
	}
	var buf bytes.Buffer
	buf.WriteByte('(')
	for i, e := range elems {
		if i > 0 {
			buf.WriteString(", ")
		}
		if e == nil {
			buf.WriteString("NULL")
		} else {
			fmt.Fprintf(&buf, "%q", e)
		}
	}
	buf.WriteByte(')')
	return buf.String()
}
