package diff

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cockroachdb/pebble/v2"

	"github.com/linkaud/linkaud/dsl"
)

// CycleInput is one compute cycle of an audience.
type CycleInput struct {
	// Audience is the audience computed; its Name keys the state and its
	// Version is recorded.
	Audience *dsl.Audience
	// Layout describes Rows' columns.
	Layout Layout
	// Activations are the audience's activations; each gets the events it
	// names. An activation not seen by an earlier successful cycle (or
	// whose event, entity or destination changed) is in its first cycle:
	// it gets events only if it has SendCurrent, and then for everyone
	// currently in.
	Activations []*dsl.Activation
	// Rows are the result rows (contracts.md "Result rows"), sorted and
	// distinct. Cycle reads them to the end; the caller releases them.
	Rows array.RecordReader
	// Start is the cycle's start: the timestamp of its events.
	Start time.Time
	// QueryTime is how long the engine waited for the warehouse before
	// handing over Rows; it is added to the run's query time.
	QueryTime time.Duration
	// Lookup, when set, reads the current values of removed entities for
	// their Entity Removed events; without it they carry the last values
	// seen.
	Lookup Lookup
}

// Lookup reads entities of one step of the audience's path by key: a
// result whose first column is the key (as text) and whose other columns
// are the step's enrichment columns in Layout.Enrich order, for the keys
// given (at most LookupBatch), in any order; a key no row has is gone.
// Cycle calls it after the result rows ended, once per LookupBatch keys of
// a step with Entity Removed events, and releases the reader.
type Lookup func(ctx context.Context, step int, keys []string) (array.RecordReader, error)

// CycleResult describes a successful cycle.
type CycleResult struct {
	Audience   string
	Run        uint64
	Generation uint64
	Counts
	// Query is the time spent waiting for the warehouse; Diff the rest.
	Query, Diff time.Duration
	// Activations counts the events written per activation name.
	Activations map[string]int64
	// Alerts are the drift alerts the run fired (alerts.go).
	Alerts []FiredAlert
}

// Cycle merges the sorted result rows against the audience's current
// generation N-1 in one pass, writes only what changed, and commits
// generation N together with its events in the outbox, atomically. On any
// error (bad input, a failing reader, a storage failure, ctx done) N-1
// stays current, no event is emitted, and the audience is Failed with the
// error; the run is recorded either way.
func (s *Store) Cycle(ctx context.Context, in CycleInput) (_ *CycleResult, err error) {
	if err := s.checkWrite(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	switch {
	case in.Audience == nil || in.Audience.Name == "":
		return nil, errors.New("diff: CycleInput needs an audience")
	case in.Rows == nil:
		return nil, errors.New("diff: CycleInput needs rows")
	case in.Start.IsZero():
		return nil, errors.New("diff: CycleInput needs the cycle's start time")
	}
	aud := in.Audience.Name
	defer s.lock(aud)()
	m, _, err := s.loadMeta(aud)
	if err != nil {
		return nil, err
	}
	if !m.Enabled {
		return nil, fmt.Errorf("%w: %s", ErrDisabled, aud)
	}
	if m.PendingApply != 0 {
		if _, err := s.rollForward(aud, m); err != nil {
			return nil, err
		}
	}
	began := time.Now()
	c := &cycle{s: s, aud: aud, in: in, old: m, gen: m.Generation + 1, began: began}
	if err := s.begin(c); err != nil {
		return nil, err
	}
	defer c.close()
	err = c.run(ctx)
	var res *CycleResult
	if err == nil {
		res, err = c.commit(ctx)
	}
	if err != nil && !c.switched {
		c.close()
		rec := c.record(false)
		if aerr := s.abandon(c.id, c.marker, err, rec); aerr != nil {
			return nil, errors.Join(err, fmt.Errorf("diff: recording the failure: %w", aerr))
		}
		s.log.Error("audience cycle failed", "audience", aud, "run", c.runNo, "error", err)
		return nil, err
	}
	return res, err
}

// begin records the cycle as in progress (its staged writes are garbage if
// the process stops before the final batch) and the audience as Computing.
func (s *Store) begin(c *cycle) error {
	c.old.Runs++
	c.runNo = c.old.Runs
	c.marker = cycleMarker{Audience: c.aud, Run: c.runNo, Start: c.in.Start}
	meta := *c.old
	meta.Status = Computing
	meta.LastRun = c.in.Start
	mv, err := json.Marshal(c.marker)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.lastCycle + 1
	b := s.db.NewBatch()
	defer b.Close()
	if err := errors.Join(
		putUint(b, keyCycleCounter, id),
		b.Set(cycleKey(id), mv, nil),
		putMeta(b, c.aud, &meta),
	); err != nil {
		return err
	}
	// Sizes are taken before Commit: Pebble drops a large batch's data
	// once committed.
	size := int64(b.Len())
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	s.lastCycle = id
	c.id = id
	c.bytes += size
	return nil
}

// cycle is the state of one Cycle call.
type cycle struct {
	s      *Store
	aud    string
	in     CycleInput
	old    *audMeta // generation N-1's state
	gen    uint64   // N
	id     uint64
	runNo  uint64
	marker cycleMarker
	began  time.Time

	oldL, newL Layout
	// sameArity: N-1 and N have the same number of key columns, so every
	// item's key has the same number of elements.
	sameArity bool
	// switched is set once the final batch committed: generation N is
	// current, whatever happens next.
	switched bool
	acts     []*actSpec
	profActs []*actSpec
	// body is the entity events' body, reused.
	body   eventBody
	levels []*level
	seen   map[string]string // activation → signature, as stored

	dp   []byte
	rows *pebble.Batch // direct: data-table ops; staged: unused
	// rowStage receives the delta-table ops once the change is staged.
	rowStage stager
	staged   bool
	em       *emitter
	fired    []FiredAlert // drift alerts of the run (alerts.go)
	keyBuf   []byte
	valBuf   []byte
	ends     []int
	nulls    []bool
	frags    [4][][]byte
	idBuf    []byte

	prof struct {
		key                  []byte
		inOld, inNew         bool
		oldTraits, newTraits []byte
	}

	counts Counts
	bytes  int64
	rd     *rowReader
}

func (c *cycle) close() {
	c.rowStage.discard()
	for _, st := range c.em.stagers() {
		st.discard()
	}
	if c.rows != nil {
		c.rows.Close()
		c.rows = nil
	}
	if c.em != nil && c.em.batch != nil {
		c.em.batch.Close()
		c.em.batch = nil
	}
}

func (c *cycle) prepare() error {
	c.newL = c.in.Layout
	if err := c.newL.Validate(); err != nil {
		return err
	}
	c.oldL = c.newL
	if c.old.Layout != nil {
		c.oldL = *c.old.Layout
	}
	c.sameArity = len(c.oldL.Steps) == len(c.newL.Steps)
	if c.old.Version != "" && c.old.Version != c.in.Audience.Version {
		c.s.log.Info("audience definition changed: diffing against the previous version's membership",
			"audience", c.aud, "from", c.old.Version, "to", c.in.Audience.Version)
	}
	c.seen = map[string]string{}
	ap := activationPrefix(c.aud)
	err := c.s.scan(ap, func(k, v []byte) error {
		name, _, _, err := decodeElem(k[len(ap):])
		if err != nil {
			return err
		}
		c.seen[string(name)] = string(v)
		return nil
	})
	if err != nil {
		return err
	}
	byStep := map[int]*level{}
	names := map[string]bool{}
	for _, a := range c.in.Activations {
		sp, err := newActSpec(a, c.in.Audience, c.newL)
		if err != nil {
			return err
		}
		if names[sp.name] {
			return fmt.Errorf("diff: activation %s given twice", sp.name)
		}
		names[sp.name] = true
		sig, ok := c.seen[sp.name]
		sp.first = !ok || sig != sp.sig
		c.acts = append(c.acts, sp)
		if sp.step < 0 {
			c.profActs = append(c.profActs, sp)
			continue
		}
		l := byStep[sp.step]
		if l == nil {
			l = &level{k: sp.step, oldOK: c.old.Layout == nil || c.newL.sameChain(c.oldL, sp.step)}
			byStep[sp.step] = l
			c.levels = append(c.levels, l)
		}
		l.acts = append(l.acts, sp)
	}
	c.prepareLevels()
	c.dp = dataPrefix(c.aud)
	// Staged batches are committed and reset at StageBatchBytes: keep
	// their buffers rather than grow new ones each time.
	retain := pebble.WithMaxRetainedSizeBytes(2 * c.s.opts.StageBatchBytes)
	c.rows = c.s.db.NewBatch(retain)
	c.rowStage = stager{s: c.s}
	c.em = &emitter{
		s: c.s, aud: c.aud, gen: c.gen, cycle: c.id, maxBytes: c.s.opts.MaxEventBytes,
		batch: c.s.db.NewBatch(retain), next: map[string]uint32{}, stageAt: c.s.opts.StageBatchBytes,
	}
	c.em.prepareTemplates(c.in.Start.UTC().Format(time.RFC3339Nano), c.newL, c.oldL, c.acts)
	return nil
}

// ingestStaged finishes the cycle's staged sstables (rows and events) and
// ingests them, before the final batch makes them part of generation N.
func (c *cycle) ingestStaged(ctx context.Context) error {
	var paths []string
	for _, st := range append(c.em.stagers(), &c.rowStage) {
		p, err := st.finish()
		if err != nil {
			return err
		}
		paths = append(paths, p...)
		c.bytes += st.written
	}
	return c.s.ingest(ctx, paths)
}

// run is the merge: one pass over N-1 (a Pebble iterator over the data
// table) and N (the result rows), both in key order.
func (c *cycle) run(ctx context.Context) error {
	if err := c.prepare(); err != nil {
		return err
	}
	rd, err := newRowReader(ctx, c.in.Rows, c.newL)
	if err != nil {
		return err
	}
	c.rd = rd
	rd.start()
	defer rd.stop()
	ns := newNewSide(rd)
	it, err := c.s.db.NewIter(&pebble.IterOptions{LowerBound: c.dp, UpperBound: prefixEnd(c.dp)})
	if err != nil {
		return err
	}
	defer it.Close()
	os := &oldSide{it: it, plen: len(c.dp)}

	o, okO, err := os.next()
	if err != nil {
		return err
	}
	n, okN, err := ns.next()
	if err != nil {
		return err
	}
	for okO || okN {
		cmp := 0
		switch {
		case !okO:
			cmp = 1
		case !okN:
			cmp = -1
		default:
			cmp = bytes.Compare(o.key, n.key)
		}
		switch {
		case cmp < 0:
			err = c.item(o, true, n, false)
		case cmp > 0:
			err = c.item(o, false, n, true)
		default:
			err = c.item(o, true, n, true)
		}
		if err != nil {
			return err
		}
		if cmp <= 0 {
			if o, okO, err = os.next(); err != nil {
				return err
			}
		}
		if cmp >= 0 {
			if n, okN, err = ns.next(); err != nil {
				return err
			}
		}
	}
	if err := c.endProfile(); err != nil {
		return err
	}
	if err := c.flushRemovals(ctx); err != nil {
		return err
	}
	if ns.dups > 0 {
		c.s.log.Warn("duplicate result rows dropped (same keys; the smallest values kept)",
			"audience", c.aud, "duplicates", ns.dups, "first", ns.firstDup)
	}
	c.counts.RowsRead = rd.read
	c.counts.Duplicates = ns.dups
	c.counts.Members = ns.members
	c.counts.Rows = ns.nrows
	return nil
}

// item handles one key of the merged order, present in N-1 (hasO), in N
// (hasN) or both.
func (c *cycle) item(o item, hasO bool, n item, hasN bool) error {
	key, member := n.key, n.member
	if !hasN {
		key, member = o.key, o.member
	}
	if member {
		if err := c.endProfile(); err != nil {
			return err
		}
		if err := c.profile(key, hasO, o.val, hasN, n.val); err != nil {
			return err
		}
	} else {
		if hasN && !hasO {
			c.counts.Added++
		} else if hasO && !hasN {
			c.counts.Removed++
		}
		if err := c.row(key, hasO, o.val, hasN, n.val); err != nil {
			return err
		}
	}
	switch {
	case hasO && !hasN:
		return c.write(key, nil, true)
	case hasN && !hasO:
		return c.write(key, n.val, false)
	case !bytes.Equal(o.val, n.val):
		c.counts.Changed++
		return c.write(key, n.val, false)
	}
	return nil
}

// write records a change of the data table: directly in the final batch
// while it is small, else staged in the delta table (see doc.go).
func (c *cycle) write(key, val []byte, del bool) error {
	if !c.staged {
		c.keyBuf = append(append(c.keyBuf[:0], c.dp...), key...)
		var err error
		if del {
			err = c.rows.Delete(c.keyBuf, nil)
		} else {
			err = c.rows.Set(c.keyBuf, val, nil)
		}
		if err != nil {
			return err
		}
		if c.rows.Len() > c.s.opts.FinalBatchBytes {
			return c.stage()
		}
		return nil
	}
	return c.rowStage.set(c.deltaKey(key), c.deltaVal(val, del))
}

const (
	opSet    = 'S'
	opDelete = 'D'
)

func (c *cycle) deltaKey(key []byte) []byte {
	c.keyBuf = append(binary.BigEndian.AppendUint64(append(c.keyBuf[:0], tDelta), c.id), key...)
	return c.keyBuf
}

func (c *cycle) deltaVal(val []byte, del bool) []byte {
	if del {
		c.valBuf = append(c.valBuf[:0], opDelete)
	} else {
		c.valBuf = append(append(c.valBuf[:0], opSet), val...)
	}
	return c.valBuf
}

// stage moves the changes gathered for the final batch into the delta
// table: the change is too large to commit at once.
func (c *cycle) stage() error {
	r := c.rows.Reader()
	for {
		kind, ukey, val, ok, err := r.Next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		key := bytes.Clone(ukey[len(c.dp):])
		var v []byte
		switch kind {
		case pebble.InternalKeyKindSet:
			v = c.deltaVal(val, false)
		case pebble.InternalKeyKindDelete:
			v = c.deltaVal(nil, true)
		default:
			return fmt.Errorf("diff: unexpected operation %v while staging", kind)
		}
		if err := c.rowStage.set(c.deltaKey(key), v); err != nil {
			return err
		}
	}
	c.rows.Reset()
	c.staged = true
	c.counts.Staged = true
	return nil
}

// profile handles a member key: the audience events of the profile.
func (c *cycle) profile(key []byte, inOld bool, oldVal []byte, inNew bool, newVal []byte) error {
	p := &c.prof
	p.key = append(p.key[:0], key...)
	p.inOld, p.inNew = inOld, inNew
	if len(c.acts) > 0 {
		p.oldTraits = append(p.oldTraits[:0], oldVal...)
		p.newTraits = append(p.newTraits[:0], newVal...)
	}
	switch {
	case inNew && !inOld:
		c.counts.Entered++
	case inOld && !inNew:
		c.counts.Exited++
	}
	for _, a := range c.profActs {
		var err error
		switch a.kind {
		case dsl.AudienceEntered:
			if (a.first && a.sendCurrent && inNew) || (!a.first && inNew && !inOld) {
				err = c.audienceEvent(a, EventAudienceEntered, true)
			}
		case dsl.AudienceExited:
			if !a.first && inOld && !inNew {
				err = c.audienceEvent(a, EventAudienceExited, false)
			}
		case dsl.AudienceMembershipChanged:
			if (a.first && a.sendCurrent && inNew) || (!a.first && inNew != inOld) {
				in := inNew
				l, traits := c.newL, p.newTraits
				if !in {
					l, traits = c.oldL, p.oldTraits
				}
				if c.frags[0], err = splitFragments(traits, len(l.traitCols()), c.frags[0]); err == nil {
					err = c.em.emit(a, EventMembershipChanged, TypeIdentify, p.key, &eventBody{form: formIdentify, in: in, traits: traits})
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *cycle) audienceEvent(a *actSpec, event string, in bool) error {
	p := &c.prof
	l, traits := c.newL, p.newTraits
	if !in {
		l, traits = c.oldL, p.oldTraits
	}
	var err error
	if c.frags[0], err = splitFragments(traits, len(l.traitCols()), c.frags[0]); err != nil {
		return err
	}
	reason := ""
	if !in {
		reason = ReasonNoLongerMatches
		if c.old.Version != "" && c.old.Version != c.in.Audience.Version {
			reason = ReasonDefinitionChanged
		}
	}
	return c.em.emit(a, event, TypeTrack, p.key, &eventBody{form: formAudience, in: in, traits: traits, reason: reason})
}

// record is the run record of the cycle so far.
func (c *cycle) record(ok bool) *RunRecord {
	total := time.Since(c.began)
	var blocked time.Duration
	if c.rd != nil {
		blocked = c.rd.blocked
		c.counts.RowsRead = c.rd.read
	}
	counts := c.counts
	counts.BytesWritten = c.bytes
	if c.em != nil {
		counts.Events, counts.Oversize = c.em.events, c.em.over
	}
	if !ok {
		// Nothing of a failed cycle is kept: report what was read, not
		// what would have changed.
		counts = Counts{RowsRead: counts.RowsRead, Duplicates: counts.Duplicates, BytesWritten: counts.BytesWritten}
	}
	gen := c.gen
	if !ok {
		gen = c.old.Generation
	}
	return &RunRecord{
		Run: c.runNo, Start: c.in.Start, Generation: gen, Version: c.in.Audience.Version, OK: ok,
		Query: c.in.QueryTime + blocked, Diff: max(total-blocked, 0), Counts: counts,
	}
}

// commit makes generation N current: one batch holds the rest of the
// changes (or, when staged, the pointer to them), the outbox index entries
// that make the cycle's events visible, the audience state and the run
// record.
func (c *cycle) commit(ctx context.Context) (*CycleResult, error) {
	s := c.s
	if err := c.alerts(); err != nil {
		return nil, err
	}
	if err := c.ingestStaged(ctx); err != nil {
		return nil, err
	}
	var final *pebble.Batch
	if c.staged {
		final = c.em.batch
	} else {
		final = c.rows
		if err := final.Apply(c.em.batch, nil); err != nil {
			return nil, err
		}
	}
	meta := *c.old
	meta.Generation = c.gen
	meta.Version = c.in.Audience.Version
	l := c.newL
	meta.Layout = &l
	meta.Members, meta.Rows = c.counts.Members, c.counts.Rows
	meta.Status = Live
	if !meta.Enabled {
		meta.Status = Disabled
	}
	meta.Error = ""
	meta.LastRun, meta.LastSuccess = c.in.Start, c.in.Start
	if c.staged {
		meta.PendingApply = c.id
	}
	if err := putMeta(final, c.aud, &meta); err != nil {
		return nil, err
	}
	ap := activationPrefix(c.aud)
	keep := map[string]bool{}
	for _, a := range c.acts {
		keep[a.name] = true
		if c.seen[a.name] != a.sig {
			if err := final.Set(appendString(bytes.Clone(ap), a.name), []byte(a.sig), nil); err != nil {
				return nil, err
			}
		}
	}
	for name := range c.seen {
		if !keep[name] {
			if err := final.Delete(appendString(bytes.Clone(ap), name), nil); err != nil {
				return nil, err
			}
		}
	}
	if err := final.Delete(cycleKey(c.id), nil); err != nil {
		return nil, err
	}

	if err := c.em.putTemplates(final); err != nil {
		return nil, err
	}
	s.mu.Lock()
	commit := s.lastCommit
	for _, dest := range c.em.dests {
		commit++
		if err := checkCommit(commit); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		if err := final.Set(indexKey(dest, commit), newIndexEntry(c.id, uint64(c.em.next[dest])).encode(), nil); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	if commit != s.lastCommit {
		if err := putUint(final, keyCommitCounter, commit); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	// The run record goes last so that it counts the final batch (all but
	// the record itself).
	rec := c.record(true)
	rec.Alerts = c.fired
	if err := s.putHistory(final, c.aud, rec, c.counts.Members); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	rec.BytesWritten += int64(final.Len())
	if err := s.putRun(final, c.aud, rec); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	size := int64(final.Len())
	err := s.commitEpoch(final, map[string]uint64{c.aud: c.gen})
	if err == nil {
		s.setLastCommit(commit)
		c.switched = true
		s.maybeFlush()
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c.bytes += size
	if c.staged {
		n, err := s.rollForward(c.aud, &meta)
		c.bytes += n
		if err != nil {
			// Generation N is current and its events are out: the cycle
			// succeeded. The next cycle, Members or Open finishes moving
			// the rows (it is idempotent).
			s.log.Error("moving a committed generation's staged rows failed; they will be moved later",
				"audience", c.aud, "generation", c.gen, "error", err)
		}
	}
	res := &CycleResult{
		Audience: c.aud, Run: c.runNo, Generation: c.gen, Counts: rec.Counts,
		Query: rec.Query, Diff: rec.Diff, Activations: map[string]int64{}, Alerts: c.fired,
	}
	res.BytesWritten = c.bytes
	for _, a := range c.acts {
		res.Activations[a.name] = a.events
	}
	return res, nil
}

// rollForward moves a committed staged cycle's changes into the data table.
// It is idempotent: every change is an absolute set or delete, so a crash
// part way is finished by running it again.
func (s *Store) rollForward(aud string, m *audMeta) (written int64, err error) {
	dp := deltaPrefix(m.PendingApply)
	data := dataPrefix(aud)
	// The delta is in key order, and so are the data-table keys made from
	// it: written as sstables and ingested, like the delta itself.
	st := &stager{s: s}
	defer st.discard()
	var key []byte
	err = s.scan(dp, func(k, v []byte) error {
		key = append(append(key[:0], data...), k[len(dp):]...)
		switch {
		case len(v) >= 1 && v[0] == opSet:
			return st.set(key, v[1:])
		case len(v) == 1 && v[0] == opDelete:
			return st.delete(key)
		}
		return errBadValue
	})
	if err != nil {
		return written, err
	}
	paths, err := st.finish()
	if err != nil {
		return written, err
	}
	written += st.written
	if err := s.ingest(context.Background(), paths); err != nil {
		return written, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	m.PendingApply = 0
	if err := errors.Join(b.DeleteRange(dp, prefixEnd(dp), nil), putMeta(b, aud, m)); err != nil {
		return written, err
	}
	written += int64(b.Len())
	return written, b.Commit(pebble.NoSync)
}
