package diff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// CommitRecordFile is the name, in the state directory, of the commit
// record: the last epoch the store committed and each audience's
// generation at that epoch (see doc.go, "Rollback detection").
const CommitRecordFile = "COMMITTED"

// keyEpoch counts the store's decisions: every batch that makes a
// generation current, enables, disables or purges an audience, or moves
// messages between the outbox and the dead-letter store on an operator's
// word carries the next epoch.
var keyEpoch = globalKey("epoch")

// commitRecord is the decoded commit record.
type commitRecord struct {
	Format      int               `json:"format"`
	Epoch       uint64            `json:"epoch"`
	Generations map[string]uint64 `json:"generations"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeRecord is the record's file contents: one line of JSON, then its
// CRC-32C.
func encodeRecord(r *commitRecord) []byte {
	body, _ := json.Marshal(r) // maps of strings and numbers: cannot fail
	out := append(body, '\n')
	return fmt.Appendf(out, "crc32c %08x\n", crc32.Checksum(body, crcTable))
}

// errBadRecord is a commit record that fails its checksum or cannot be
// decoded.
var errBadRecord = errors.New("commit record damaged (checksum mismatch or not a commit record)")

func decodeRecord(b []byte) (*commitRecord, error) {
	body, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return nil, errBadRecord
	}
	sum, ok := strings.CutPrefix(strings.TrimSpace(string(rest)), "crc32c ")
	if !ok {
		return nil, errBadRecord
	}
	want, err := strconv.ParseUint(sum, 16, 32)
	if err != nil || uint32(want) != crc32.Checksum(body, crcTable) {
		return nil, errBadRecord
	}
	r := &commitRecord{}
	if err := json.Unmarshal(body, r); err != nil || r.Format != 1 {
		return nil, errBadRecord
	}
	if r.Generations == nil {
		r.Generations = map[string]uint64{}
	}
	return r, nil
}

// readRecord reads dir's commit record; nil when there is none.
func readRecord(fs vfs.FS, dir string) (*commitRecord, error) {
	path := fs.PathJoin(dir, CommitRecordFile)
	f, err := fs.Open(path)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, &CorruptionError{Dir: dir, File: CommitRecordFile, Err: err}
	}
	return r, nil
}

// writeRecord replaces dir's commit record atomically and durably: a new
// file, synced, renamed over the old one, the directory synced.
func writeRecord(fs vfs.FS, dir string, r *commitRecord) error {
	path := fs.PathJoin(dir, CommitRecordFile)
	tmp := path + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(encodeRecord(r)); err != nil {
		f.Close()
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// record is the store's current decisions as a commit record. The caller
// holds s.mu.
func (s *Store) record() *commitRecord {
	return &commitRecord{Format: 1, Epoch: s.epoch, Generations: maps.Clone(s.gens)}
}

// commitEpoch commits b — a batch holding one of the store's decisions —
// with the next epoch, synced, then records the epoch and the audience
// generations set in gens (0: the audience is gone) in the commit record.
// The caller holds s.mu.
//
// A failure to write the record once the batch committed is logged, not
// returned: the decision is durable, only the record lags (the next
// decision, or the next Open, writes it again). Detection then guards the
// previous epoch, which is what a crash between the two writes leaves too.
func (s *Store) commitEpoch(b *pebble.Batch, gens map[string]uint64) error {
	next := s.epoch + 1
	if err := putUint(b, keyEpoch, next); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.epoch = next
	for aud, g := range gens {
		if g == 0 {
			delete(s.gens, aud)
		} else {
			s.gens[aud] = g
		}
	}
	if err := writeRecord(s.opts.FS, s.dir, s.record()); err != nil {
		s.log.Error("writing the commit record failed; rollback detection guards the previous epoch until the next commit",
			"dir", s.dir, "epoch", next, "error", oneLine(err))
	}
	return nil
}

// loadEpoch reads the epoch and every audience's generation from the
// state, and compares them with the commit record rec (nil: none).
func (s *Store) loadEpoch(rec *commitRecord) error {
	var err error
	if s.epoch, err = s.getUint(keyEpoch); err != nil {
		return err
	}
	s.gens = map[string]uint64{}
	err = s.scan([]byte{tMeta}, func(k, v []byte) error {
		name, _, _, err := decodeElem(k[1:])
		if err != nil {
			return err
		}
		var m audMeta
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("diff: state of audience %s: %w", name, err)
		}
		if m.Generation > 0 {
			s.gens[string(name)] = m.Generation
		}
		return nil
	})
	if err != nil || rec == nil {
		return err
	}
	var missing []string
	for _, aud := range slices.Sorted(maps.Keys(rec.Generations)) {
		if g := rec.Generations[aud]; s.gens[aud] < g && s.epoch <= rec.Epoch {
			missing = append(missing, fmt.Sprintf("%s (generation %d of %d)", aud, s.gens[aud], g))
		}
	}
	switch {
	case s.epoch < rec.Epoch:
		return &RollbackError{Dir: s.dir, Recorded: rec.Epoch, Found: s.epoch, Audiences: missing}
	case s.epoch == rec.Epoch && len(missing) > 0:
		// Same epoch, older generations: the record and the state
		// disagree about one decision, which only damage explains.
		return &RollbackError{Dir: s.dir, Recorded: rec.Epoch, Found: s.epoch, Audiences: missing}
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, iofs.ErrNotExist)
}
