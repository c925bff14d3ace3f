package diff

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The state tools behind `linkaud state DIR verify|backup|restore|export`:
// they read what they can of a damaged state and say what they could not.

// Damage is a key range a tool could not read.
type Damage struct {
	// File is the damaged file, when Pebble said ("" otherwise); From is
	// the first key skipped (as a table name and a quoted key).
	File, From string
	Err        string
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Dir   string
	Epoch uint64
	// Keys counts the keys read per table.
	Keys map[string]int64
	// Audiences, Members, Pending and DeadLetters count what the state
	// holds.
	Audiences, Members, Pending, DeadLetters int64
	// Problems are the inconsistencies found: undecodable values, outbox
	// counts that disagree with the events stored, damaged ranges.
	Problems []string
	Damage   []Damage
}

// OK reports whether nothing was found wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 && len(r.Damage) == 0 }

var tableNames = map[byte]string{
	tGlobal: "counters", tMeta: "audiences", tData: "members", tDelta: "staged",
	tActivation: "activations", tRun: "runs", tCycle: "cycles", tIndex: "outbox index",
	tEvent: "outbox", tDead: "dead letters", tHistory: "history", tTemplate: "event templates",
}

func tableName(k []byte) string {
	if len(k) == 0 {
		return "?"
	}
	if n, ok := tableNames[k[0]]; ok {
		return n
	}
	return fmt.Sprintf("table 0x%02x", k[0])
}

// walk calls fn for each key of the store it can read, in order. A range
// it cannot read (a block failing its checksum) is reported to damaged and
// skipped: the walk goes on past the damaged file's key range (Pebble's
// corruption event gives it), or past the table, so that a salvage reads
// everything that is still readable.
func (s *Store) walk(fn func(k, v []byte) error, damaged func(Damage)) error {
	var lower []byte
	for tries := 0; tries < 10000; tries++ {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower})
		if err != nil {
			return err
		}
		var last []byte
		ok := it.First()
		for ; ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				break
			}
			last = append(last[:0], it.Key()...)
			if err := fn(it.Key(), v); err != nil {
				it.Close()
				return err
			}
		}
		ierr := it.Error()
		if ierr == nil && ok {
			_, ierr = it.ValueAndErr()
		}
		it.Close()
		if ierr == nil {
			return nil
		}
		if !IsCorrupt(ierr) {
			return ierr
		}
		from := lower
		if last != nil {
			from = append(slices.Clone(last), 0)
		}
		d := Damage{File: corruptFile(ierr), From: describeKey(from), Err: oneLine(ierr)}
		next := s.health.skipPast(from)
		if next == nil {
			// Past the table of the last key read.
			t := byte(0)
			if len(from) > 0 {
				t = from[0]
			}
			if t == 0xff {
				damaged(d)
				return nil
			}
			next = []byte{t + 1}
		}
		damaged(d)
		lower = next
	}
	return errors.New("diff: too many damaged ranges")
}

func describeKey(k []byte) string {
	if len(k) == 0 {
		return "the start"
	}
	return fmt.Sprintf("%s %q", tableName(k), k[1:])
}

// skipPast returns the end of the key range of the last damaged file
// reported, when it lies beyond from; nil otherwise.
func (h *health) skipPast(from []byte) []byte {
	b := h.lastBounds.Load()
	if b == nil {
		return nil
	}
	end := append(slices.Clone(*b), 0)
	if bytes.Compare(end, from) > 0 {
		return end
	}
	return nil
}

// Verify reads every key of the store, which checks every block's
// checksum on the way, decodes every value, and checks that the outbox
// index agrees with the events stored. It reads what it can past a
// damaged range and reports it.
func (s *Store) Verify() (*VerifyReport, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	r := &VerifyReport{Dir: s.dir, Epoch: s.epoch, Keys: map[string]int64{}}
	if s.openProblem != nil {
		r.Problems = append(r.Problems, oneLine(s.openProblem))
	}
	if err := s.db.CheckLevels(nil); err != nil {
		if IsCorrupt(err) {
			r.Damage = append(r.Damage, Damage{File: corruptFile(err), From: "the LSM check", Err: oneLine(err)})
		} else {
			r.Problems = append(r.Problems, "LSM check: "+oneLine(err))
		}
	}
	type cd struct {
		cycle uint64
		dest  string
	}
	indexed := map[cd]uint64{}
	events := map[cd]uint64{}
	templated := map[cd]bool{}
	tmpl := s.templates()
	// The idx range of each indexed entry (first..total-1) and of the
	// events stored under it.
	spans, eventIdx := map[cd][2]uint64{}, map[cd][2]uint64{}
	problem := func(k []byte, err error) {
		if len(r.Problems) < 100 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %v", describeKey(k), err))
		}
	}
	err := s.walk(func(k, v []byte) error {
		r.Keys[tableName(k)]++
		switch k[0] {
		case tGlobal:
			if len(v) != 8 {
				problem(k, errBadValue)
			}
		case tMeta:
			var m audMeta
			if err := json.Unmarshal(v, &m); err != nil {
				problem(k, err)
			}
			r.Audiences++
		case tData:
			elems, err := decodeTuple(k[1:])
			if err != nil {
				problem(k, err)
			} else if len(elems) == 2 {
				r.Members++
			}
		case tRun, tCycle:
			if !json.Valid(v) {
				problem(k, errBadValue)
			}
		case tHistory:
			if _, err := decodeHistory(v); err != nil {
				problem(k, err)
			}
		case tIndex:
			d, _, n, err := decodeElem(k[1:])
			if err != nil || len(k) != 1+n+8 {
				problem(k, errBadKey)
				return nil
			}
			e, err := decodeIndex(v)
			if err != nil {
				problem(k, err)
				return nil
			}
			indexed[cd{e.cycle, string(d)}] += e.remaining
			if e.total > 0 {
				spans[cd{e.cycle, string(d)}] = [2]uint64{e.first, e.total}
			}
			r.Pending += int64(e.remaining)
		case tEvent:
			if len(k) < 9 {
				problem(k, errBadKey)
				return nil
			}
			d, _, _, err := decodeElem(k[9:])
			if err != nil {
				problem(k, err)
				return nil
			}
			c := cd{binary.BigEndian.Uint64(k[1:9]), string(d)}
			var m Message
			render, err := tmpl.renderer(c.cycle, c.dest)
			if err == nil {
				_, err = decodeMessageWith(v, &m, nil, nil, render)
				if _, ok := indexed[c]; !ok && errors.Is(err, errNoTemplate) {
					// Staged by a cycle that has not committed: its
					// template comes with its index entries.
					err = decodeHeader(v, &m)
				}
			}
			if err != nil {
				problem(k, err)
			}
			events[c]++
			if len(k) >= 4 {
				idx := uint64(binary.BigEndian.Uint32(k[len(k)-4:]))
				if r, ok := eventIdx[c]; !ok {
					eventIdx[c] = [2]uint64{idx, idx}
				} else {
					eventIdx[c] = [2]uint64{min(r[0], idx), max(r[1], idx)}
				}
			}
		case tTemplate:
			if len(k) < 9 {
				problem(k, errBadKey)
				return nil
			}
			d, _, n, err := decodeElem(k[9:])
			if err != nil || len(k) != 9+n {
				problem(k, errBadKey)
				return nil
			}
			if _, err := decodeTemplate(v, string(d)); err != nil {
				problem(k, err)
			}
			templated[cd{binary.BigEndian.Uint64(k[1:9]), string(d)}] = true
		case tDead:
			var dl DeadLetter
			if _, _, err := decodeDeadKey(k); err != nil {
				problem(k, err)
			} else if err := decodeDead(v, &dl); err != nil {
				problem(k, err)
			}
			r.DeadLetters++
		}
		return nil
	}, func(d Damage) { r.Damage = append(r.Damage, d) })
	if err != nil {
		return r, err
	}
	if len(r.Damage) == 0 {
		for k, n := range indexed {
			if events[k] != n {
				r.Problems = append(r.Problems, fmt.Sprintf("outbox of %s, cycle %d: the index counts %d pending events, %d are stored", k.dest, k.cycle, n, events[k]))
			}
		}
		for k := range templated {
			if _, ok := indexed[k]; !ok {
				r.Problems = append(r.Problems, fmt.Sprintf("outbox of %s, cycle %d: an event template without its index entry", k.dest, k.cycle))
			}
		}
		for k, span := range spans {
			if got, ok := eventIdx[k]; ok && (got[0] < span[0] || got[1] >= span[1]) {
				r.Problems = append(r.Problems, fmt.Sprintf("outbox of %s, cycle %d: events stored at idx %d..%d, the index says %d..%d", k.dest, k.cycle, got[0], got[1], span[0], span[1]-1))
			}
		}
	}
	slices.Sort(r.Problems)
	return r, nil
}

// BackupReport describes a backup.
type BackupReport struct {
	Out       string
	Epoch     uint64
	Audiences int
	Pending   int64
	Bytes     int64
	Took      time.Duration
}

// Backup writes a consistent copy of the store to out, a directory that
// must not exist yet, as a state directory of its own (with its commit
// record) that Open, Restore or a worker's `state` can use. A read-write
// store takes a Pebble checkpoint (hard links, a moment), a read-only one
// a snapshot; either is then copied file by file into out, so that the
// backup shares no disk block with the state, verified, and opened once so
// that cycles in progress at the time are discarded in the copy as a
// restart would.
func (s *Store) Backup(out string) (*BackupReport, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	began := time.Now()
	fs := s.opts.FS
	if _, err := fs.Stat(out); err == nil {
		return nil, fmt.Errorf("diff: backup: %s exists; give a new directory", out)
	}
	src := s.snapshot
	if src == "" {
		if s.readOnly {
			src = s.dir // nobody writes it: copied as it is
		} else {
			ck, _, err := snapshotDir(fs, s.dir)
			if err != nil {
				return nil, s.fail(err)
			}
			// Checkpoint wants a directory that does not exist yet.
			if err := fs.RemoveAll(ck); err != nil {
				return nil, err
			}
			defer fs.RemoveAll(ck)
			if err := s.db.Checkpoint(ck, pebble.WithFlushedWAL()); err != nil {
				return nil, s.fail(fmt.Errorf("diff: checkpoint: %w", err))
			}
			// The copy gets a commit record of its own, from its
			// contents, when finishCopy opens it.
			src = ck
		}
	}
	if err := fs.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if err := takeSnapshot(fs, src, out, false); err != nil {
		fs.RemoveAll(out)
		return nil, s.fail(err)
	}
	rep, err := finishCopy(fs, out, s.opts)
	if err != nil {
		fs.RemoveAll(out)
		return nil, err
	}
	rep.Took = time.Since(began)
	return rep, nil
}

// finishCopy opens a copied state once (recovery, a flush, its commit
// record), verifies it and describes it.
func finishCopy(fs vfs.FS, dir string, opts Options) (*BackupReport, error) {
	o := opts
	o.Logger = slog.New(slog.DiscardHandler)
	o.Pebble = nil
	c, err := Open(dir, o)
	if err != nil {
		return nil, fmt.Errorf("diff: the copy in %s does not open: %w", dir, err)
	}
	defer c.Close()
	v, err := c.Verify()
	if err != nil {
		return nil, err
	}
	if !v.OK() {
		return nil, fmt.Errorf("diff: the copy in %s does not verify: %s", dir, firstProblem(v))
	}
	rep := &BackupReport{Out: dir, Epoch: c.epoch, Audiences: int(v.Audiences), Pending: v.Pending}
	names, _ := fs.List(dir)
	for _, n := range names {
		if st, err := fs.Stat(fs.PathJoin(dir, n)); err == nil && !st.IsDir() {
			rep.Bytes += st.Size()
		}
	}
	return rep, nil
}

func firstProblem(v *VerifyReport) string {
	if len(v.Damage) > 0 {
		d := v.Damage[0]
		return fmt.Sprintf("%s damaged from %s: %s", d.File, d.From, d.Err)
	}
	if len(v.Problems) > 0 {
		return v.Problems[0]
	}
	return ""
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	Options
	// Replace allows restoring over a state that exists (and that no
	// process holds): it is moved aside to DIR.replaced-TIME, not deleted.
	Replace bool
}

// Restore copies the backup in from (a state directory, such as Backup
// writes) to dir, the state directory to restore. It refuses while a
// process holds dir (a running worker: stop it first), over an existing
// state unless Replace, and from a backup that does not verify. It
// returns where the replaced state went ("" when there was none).
func Restore(from, dir string, opts RestoreOptions) (replaced string, err error) {
	o := opts.Options
	o.EnsureDefaults()
	fs := o.FS
	src, err := OpenReadOnly(from, o)
	if err != nil {
		return "", fmt.Errorf("diff: the backup %s: %w", from, err)
	}
	v, err := src.Verify()
	src.Close()
	if err != nil {
		return "", fmt.Errorf("diff: the backup %s: %w", from, err)
	}
	if !v.OK() {
		return "", fmt.Errorf("diff: the backup %s does not verify: %s", from, firstProblem(v))
	}
	if names, err := fs.List(dir); err == nil && len(pebbleFiles(names)) > 0 {
		lock, err := fs.Lock(fs.PathJoin(dir, "LOCK"))
		if err != nil {
			if isHeld(err) {
				return "", fmt.Errorf("%w: %s is live; stop the process that holds it (the worker) before restoring", ErrLocked, dir)
			}
			return "", classify(dir, err)
		}
		lock.Close()
		if !opts.Replace {
			return "", fmt.Errorf("diff: %s already holds a state; restore into a new directory, or pass replace to move it aside", dir)
		}
		replaced = fmt.Sprintf("%s.replaced-%s", filepath.Clean(dir), time.Now().UTC().Format("20060102T150405Z"))
		if err := fs.Rename(dir, replaced); err != nil {
			return "", err
		}
	}
	tmp := filepath.Clean(dir) + ".restoring"
	_ = fs.RemoveAll(tmp)
	if err := fs.MkdirAll(tmp, 0o755); err != nil {
		return replaced, err
	}
	if err := takeSnapshot(fs, from, tmp, false); err != nil {
		fs.RemoveAll(tmp)
		return replaced, err
	}
	if err := fs.RemoveAll(dir); err != nil {
		return replaced, err
	}
	if err := fs.Rename(tmp, dir); err != nil {
		return replaced, err
	}
	if _, err := finishCopy(fs, dir, o); err != nil {
		return replaced, err
	}
	return replaced, nil
}

func pebbleFiles(names []string) []string {
	var out []string
	for _, n := range names {
		if pebbleFileKind(n) != "" {
			out = append(out, n)
		}
	}
	return out
}

// ExportReport counts what Export wrote and names what it could not read.
type ExportReport struct {
	Audiences, Members, Pending, DeadLetters int64
	Damage                                   []Damage
}

// Export writes what the store holds as JSON lines, salvaging what still
// reads from a damaged state: audiences.jsonl (each audience's state),
// memberships.jsonl (each member of each audience's current generation,
// with its entity key chains), outbox.jsonl (the pending events, payload
// included) and deadletters.jsonl, in dir (created; files there are
// replaced).
func (s *Store) Export(dir string) (*ExportReport, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := map[string]*os.File{}
	encs := map[string]*json.Encoder{}
	for _, n := range []string{"audiences", "memberships", "outbox", "deadletters"} {
		f, err := os.Create(filepath.Join(dir, n+".jsonl"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		files[n], encs[n] = f, json.NewEncoder(f)
	}
	rep := &ExportReport{}
	// The outbox index first (pending events are those indexed): its
	// commit numbers give the events their Seq.
	type cd struct {
		cycle uint64
		dest  string
	}
	commits := map[cd][]uint64{}
	tmpl := s.templates()
	type member struct {
		Audience string      `json:"audience"`
		Profile  string      `json:"profile"`
		Chains   [][]*string `json:"chains,omitempty"`
	}
	var cur *member
	flush := func() error {
		if cur == nil {
			return nil
		}
		rep.Members++
		err := encs["memberships"].Encode(cur)
		cur = nil
		return err
	}
	err := s.walk(func(k, v []byte) error {
		switch k[0] {
		case tMeta:
			name, _, _, err := decodeElem(k[1:])
			if err != nil {
				return nil
			}
			var m audMeta
			if json.Unmarshal(v, &m) != nil {
				return nil
			}
			rep.Audiences++
			st := m.state(string(name))
			return encs["audiences"].Encode(struct {
				AudienceState
				Layout *Layout `json:"layout,omitempty"`
			}{st, m.Layout})
		case tData:
			elems, err := decodeTuple(k[1:])
			if err != nil || len(elems) < 2 {
				return nil
			}
			aud, prof := string(elems[0]), string(elems[1])
			if cur == nil || cur.Audience != aud || cur.Profile != prof {
				if err := flush(); err != nil {
					return err
				}
				cur = &member{Audience: aud, Profile: prof}
			}
			if len(elems) > 2 {
				chain := make([]*string, len(elems)-2)
				for i, e := range elems[2:] {
					if e != nil {
						t := string(e)
						chain[i] = &t
					}
				}
				cur.Chains = append(cur.Chains, chain)
			}
		case tIndex:
			d, _, n, err := decodeElem(k[1:])
			if err != nil || len(k) != 1+n+8 {
				return nil
			}
			e, err := decodeIndex(v)
			if err != nil {
				return nil
			}
			key := cd{e.cycle, string(d)}
			commits[key] = append(commits[key], binary.BigEndian.Uint64(k[1+n:]))
		case tEvent:
			if len(k) < 9 {
				return nil
			}
			d, _, n, err := decodeElem(k[9:])
			if err != nil || len(k) != 9+n+4 {
				return nil
			}
			key := cd{binary.BigEndian.Uint64(k[1:9]), string(d)}
			cs := commits[key]
			if len(cs) == 0 {
				return nil // staged by a cycle that never committed
			}
			var m Message
			render, err := tmpl.renderer(key.cycle, key.dest)
			if err != nil {
				return nil
			}
			if _, err := decodeMessageWith(v, &m, nil, nil, render); err != nil {
				return nil
			}
			m.Destination = string(d)
			m.Seq = makeSeq(cs[0], binary.BigEndian.Uint32(k[9+n:]))
			rep.Pending++
			return encs["outbox"].Encode(exportMessage(m))
		case tDead:
			dest, ref, err := decodeDeadKey(k)
			if err != nil {
				return nil
			}
			dl := DeadLetter{Ref: ref}
			if decodeDead(v, &dl) != nil {
				return nil
			}
			dl.Destination = dest
			rep.DeadLetters++
			return encs["deadletters"].Encode(struct {
				exported
				Reason string    `json:"reason"`
				At     time.Time `json:"at"`
			}{exportMessage(dl.Message), dl.Reason, dl.At})
		}
		return nil
	}, func(d Damage) { rep.Damage = append(rep.Damage, d) })
	if err == nil {
		err = flush()
	}
	for _, f := range files {
		if serr := f.Sync(); err == nil {
			err = serr
		}
	}
	return rep, err
}

// exported is a message as Export writes it.
type exported struct {
	Destination string          `json:"destination"`
	Seq         uint64          `json:"seq"`
	ID          string          `json:"message_id"`
	Audience    string          `json:"audience"`
	Activation  string          `json:"activation"`
	Event       string          `json:"event"`
	UserID      string          `json:"user_id"`
	Payload     json.RawMessage `json:"payload"`
}

func exportMessage(m Message) exported {
	p := json.RawMessage(m.Payload)
	if !json.Valid(p) {
		p, _ = json.Marshal(string(m.Payload))
	}
	return exported{m.Destination, m.Seq, m.ID, m.Audience, m.Activation, m.Event, m.UserID, p}
}
