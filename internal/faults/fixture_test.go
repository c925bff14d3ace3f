package faults

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
)

// audience is the fixture's one audience; dest its one destination.
const (
	audience = "outstanding"
	dest     = "out"
)

// Cycle starts: the events carry them, so a clean run and a run that
// recovered from a fault must use the same ones to compare byte for byte.
var (
	start1 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	start2 = time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)
)

// fixture describes a bank workspace: profiles with an account each and
// zero to two credit cards; the audience is the profiles owing on a card,
// with five activations (every event kind) to one destination.
type fixture struct {
	// profiles is the number of profiles.
	profiles int
	// destination is the body of the destination block; default a file
	// destination writing events.jsonl.
	destination string
	// warehouse lines added to the warehouse block (settings, path).
	warehouse []string
	// rawCards loads cards.csv as RAW.CARDS instead of BANK.CREDIT_CARDS,
	// which the warehouse file must then define (a view).
	rawCards bool
	// traitOnly makes the audience `trait tier = "gold"`, with only the
	// audience-level activations and none sending the current members: a
	// query without joins, whose memory goes to the sort alone, and a
	// first cycle without events.
	traitOnly bool
	// parquet stores the tables as Parquet rather than CSV (DuckDB's CSV
	// reader wants 32 MB of buffer, more than a small memory_limit).
	parquet bool
}

// file is the name of a table's data file.
func (f fixture) file(table string) string {
	if f.parquet {
		return table + ".parquet"
	}
	return table + ".csv"
}

func (f fixture) workspaceText() string {
	var b strings.Builder
	b.WriteString("warehouse {\n")
	for _, l := range f.warehouse {
		b.WriteString("  " + l + "\n")
	}
	fmt.Fprintf(&b, "  load \"ANALYTICS.PROFILES\" from %q\n", f.file("profiles"))
	fmt.Fprintf(&b, "  load \"BANK.ACCOUNTS\" from %q\n", f.file("accounts"))
	if f.rawCards {
		fmt.Fprintf(&b, "  load \"RAW.CARDS\" from %q\n", f.file("cards"))
	} else {
		fmt.Fprintf(&b, "  load \"BANK.CREDIT_CARDS\" from %q\n", f.file("cards"))
	}
	b.WriteString("}\n")
	destination := f.destination
	if destination == "" {
		destination = `type file path "events.jsonl"`
	}
	match := `profile -> account -> credit_card where balance = "Outstanding"`
	enrich := "credit_card.balance, credit_card.due_date, account.type, trait.email"
	if f.traitOnly {
		match, enrich = `trait tier = "gold"`, "trait.email, trait.since"
	}
	fmt.Fprintf(&b, `state "state"
graph {
  profile { table "ANALYTICS.PROFILES" key segment_id }
  entity account { table "BANK.ACCOUNTS" key id }
  entity credit_card { table "BANK.CREDIT_CARDS" key id }
  relationship profile -> account on profile.email = account.email
  relationship account -> credit_card on account.id = credit_card.account_id
}
audience %[1]s {
  match %[2]s
  enrich %[3]s
}
destination %[4]s { %[5]s }
activation entered { audience %[1]s destination %[4]s event audience_entered send_current %[6]t }
activation exited  { audience %[1]s destination %[4]s event audience_exited }
activation synced  { audience %[1]s destination %[4]s event audience_membership_changed }
`, audience, match, enrich, dest, destination, !f.traitOnly)
	if !f.traitOnly {
		fmt.Fprintf(&b, `activation added   { audience %[1]s destination %[2]s event entity_added credit_card send_current true }
activation removed { audience %[1]s destination %[2]s event entity_removed credit_card }
`, audience, dest)
	}
	return b.String()
}

// data returns the CSV files of generation gen (1 or 2). Between the two,
// profiles leave (a card paid off), enter (a new card owed), gain and lose
// cards, and enrichment values change: every event kind fires.
func (f fixture) data(gen int) map[string]string {
	var p, a, c strings.Builder
	p.WriteString("segment_id,email,tier,since\n")
	a.WriteString("id,email,type\n")
	c.WriteString("id,account_id,balance,due_date\n")
	for i := range f.profiles {
		email := fmt.Sprintf("u%05d@example.com", i)
		tier, since := "gold", "2020-01-01"
		if i%4 == 0 {
			tier = "silver"
		}
		if gen == 2 {
			switch {
			case i%7 == 1:
				tier = "silver"
			case i%4 == 0 && i%3 == 0:
				tier = "gold"
			case i%6 == 5:
				since = "2021-06-01"
			}
		}
		fmt.Fprintf(&p, "u%05d,%s,%s,%s\n", i, email, tier, since)
		kind := "checking"
		if i%3 == 0 {
			kind = "savings"
		}
		fmt.Fprintf(&a, "a%05d,%s,%s\n", i, email, kind)
		bal1, due1 := "Outstanding", "2026-12-01"
		if i%4 == 0 {
			bal1 = "Paid"
		}
		bal2 := ""
		if i%5 == 0 {
			bal2 = "Outstanding"
		}
		if gen == 2 {
			switch {
			case i%7 == 1: // paid off: removed, and exited without a second card
				bal1 = "Paid"
			case i%4 == 0 && i%3 == 0: // owes now: entered, added
				bal1 = "Outstanding"
			case i%6 == 5: // the due date moves: a changed value, no event
				due1 = "2026-12-15"
			}
			switch {
			case i%5 == 0 && i%2 == 0: // a second card closed: removed
				bal2 = ""
			case i%5 == 3: // a second card opened: added
				bal2 = "Outstanding"
			}
		}
		fmt.Fprintf(&c, "c%05d-1,a%05d,%s,%s\n", i, i, bal1, due1)
		if bal2 != "" {
			fmt.Fprintf(&c, "c%05d-2,a%05d,%s,2027-01-01\n", i, i, bal2)
		}
	}
	return map[string]string{"profiles.csv": p.String(), "accounts.csv": a.String(), "cards.csv": c.String()}
}

// write creates the workspace in a new temporary directory with the data
// of generation 1 and returns the directory.
func (f fixture) write(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ws.la": f.workspaceText()})
	f.writeData(t, dir, f.data(1))
	return dir
}

// writeData writes CSV texts named *.csv as the fixture's data files.
func (f fixture) writeData(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if !f.parquet {
		writeFiles(t, dir, files)
		return
	}
	tmp := t.TempDir()
	writeFiles(t, tmp, files)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name := range files {
		table := strings.TrimSuffix(name, ".csv")
		// Every column is text, as the CSV reader would not guess.
		q := fmt.Sprintf("COPY (SELECT * FROM read_csv('%s', all_varchar = true)) TO '%s' (FORMAT parquet)",
			filepath.Join(tmp, name), filepath.Join(dir, f.file(table)))
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func load(t testing.TB, dir string) *dsl.Workspace {
	t.Helper()
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatalf("workspace does not check:\n%v", diags)
	}
	return ws
}

// clock is the engine's clock; tests move it between cycles.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// quietLogger discards logs unless LINKAUD_FAULTS_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("LINKAUD_FAULTS_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// open opens an engine on ws with opts (Logger and Now filled in when
// unset) and enables the audience. The engine is closed at cleanup unless
// the test closed it (or abandoned it: see disk_test.go).
func open(t testing.TB, ws *dsl.Workspace, clk *clock, opts engine.Options) *engine.Engine {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	e, err := engine.Open(context.Background(), ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store().Enable(audience); err != nil {
		t.Fatal(err)
	}
	return e
}

// compute runs a cycle of the audience starting at start.
func compute(e *engine.Engine, clk *clock, start time.Time) (*diff.CycleResult, error) {
	clk.set(start)
	return e.Compute(context.Background(), e.Workspace().Audience(audience))
}

func mustCompute(t testing.TB, e *engine.Engine, clk *clock, start time.Time) *diff.CycleResult {
	t.Helper()
	res, err := compute(e, clk, start)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// snapshot is what the state holds as far as users and destinations can
// tell: the audience's status line, its members with their entity chains,
// every pending message (Seq, messageId, activation, payload) and every
// dead letter.
type snapshot struct {
	status  string
	members string
	outbox  string
	dead    string
}

func take(t testing.TB, s *diff.Store) snapshot {
	t.Helper()
	st, err := s.State(audience)
	if err != nil {
		t.Fatal(err)
	}
	var m strings.Builder
	err = s.Members(audience, func(mb diff.Member) error {
		m.WriteString(mb.Profile)
		for _, c := range mb.Chains {
			for _, k := range c {
				if k == nil {
					m.WriteString(" NULL")
				} else {
					m.WriteString(" " + *k)
				}
			}
			m.WriteString(";")
		}
		m.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var o strings.Builder
	for _, msg := range pending(t, s) {
		fmt.Fprintf(&o, "%d %s %s %s\n", msg.Seq, msg.ID, msg.Activation, msg.Payload)
	}
	dls, err := s.DeadLetters("")
	if err != nil {
		t.Fatal(err)
	}
	var d strings.Builder
	for _, dl := range dls {
		fmt.Fprintf(&d, "%s %s %q\n", dl.ID, dl.Destination, dl.Reason)
	}
	return snapshot{
		status:  fmt.Sprintf("%s gen=%d members=%d rows=%d", st.Status, st.Generation, st.Members, st.Rows),
		members: m.String(),
		outbox:  o.String(),
		dead:    d.String(),
	}
}

// pending is the destination's whole outbox, in Seq order.
func pending(t testing.TB, s *diff.Store) []diff.Message {
	t.Helper()
	msgs, err := s.Pending(dest, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// diffSnapshots describes how got differs from want, or "" when equal.
func diffSnapshots(got, want snapshot) string {
	var b strings.Builder
	field := func(name, g, w string) {
		if g == w {
			return
		}
		gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var gi, wi string
			if i < len(gl) {
				gi = gl[i]
			}
			if i < len(wl) {
				wi = wl[i]
			}
			if gi != wi {
				fmt.Fprintf(&b, "%s differs at line %d (%d lines, want %d):\n  got  %.300s\n  want %.300s\n", name, i+1, len(gl), len(wl), gi, wi)
				return
			}
		}
	}
	field("status", got.status, want.status)
	field("members", got.members, want.members)
	field("outbox", got.outbox, want.outbox)
	field("dead letters", got.dead, want.dead)
	return b.String()
}

// lastRun is the audience's latest run record.
func lastRun(t testing.TB, s *diff.Store) diff.RunRecord {
	t.Helper()
	runs, err := s.Runs(audience)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) == 0 {
		t.Fatal("no run recorded")
	}
	last := runs[0]
	for _, r := range runs {
		if r.Run > last.Run {
			last = r
		}
	}
	return last
}

// checkFailed verifies the audience is Failed with a reason matching
// reason, in its status and its latest run record, and that the state is
// otherwise exactly before (generation, members, outbox, dead letters).
func checkFailed(t testing.TB, s *diff.Store, before snapshot, reason string) {
	t.Helper()
	st, err := s.State(audience)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != diff.Failed || !strings.Contains(st.Error, reason) {
		t.Fatalf("status %s, error %q; want Failed with %q", st.Status, st.Error, reason)
	}
	if r := lastRun(t, s); r.OK || !strings.Contains(r.Error, reason) {
		t.Fatalf("latest run %+v; want a failed run with %q", r, reason)
	}
	got := take(t, s)
	want := before
	want.status = strings.Replace(want.status, "Live ", "Failed ", 1)
	if d := diffSnapshots(got, want); d != "" {
		t.Fatalf("a failed cycle changed the state:\n%s", d)
	}
}

// cleanRun computes generation 1 at start1 and generation 2 at start2 on a
// fresh engine with no fault and returns the snapshots after each: what
// every faulty run must end up with.
func cleanRun(t testing.TB, f fixture, opts engine.Options) (snap1, snap2 snapshot) {
	t.Helper()
	f.destination = ""
	f.warehouse, f.rawCards = nil, false
	dir := f.write(t)
	clk := &clock{}
	e := open(t, load(t, dir), clk, opts)
	defer e.Close()
	mustCompute(t, e, clk, start1)
	snap1 = take(t, e.Store())
	f.writeData(t, dir, f.data(2))
	res := mustCompute(t, e, clk, start2)
	if res.Entered == 0 || res.Exited == 0 || res.Changed == 0 || !f.traitOnly && (res.Added == 0 || res.Removed == 0) {
		t.Fatalf("generation 2 does not change everything events see: %+v", res.Counts)
	}
	snap2 = take(t, e.Store())
	return snap1, snap2
}

// fileIDs reads a file destination's JSONL and returns the messageIds in
// the order they were written.
func fileIDs(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			MessageID string `json:"messageId"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.MessageID == "" {
			t.Fatalf("%s: not an event: %.200s (%v)", path, sc.Text(), err)
		}
		ids = append(ids, ev.MessageID)
	}
	return ids
}

// checkLeftovers opens the closed state in dir read-only and fails if an
// interrupted or failed cycle left anything behind where the store's API
// cannot see it: staged row changes (table 0x04), in-progress cycle records
// (0x07), outbox messages (0x09) no index entry makes pending, or event
// templates (0x0c) without theirs. The tables are those of diff/doc.go,
// "Keys".
func checkLeftovers(t testing.TB, fs vfs.FS, dir string) {
	t.Helper()
	count := map[byte]int{}
	func() {
		db, err := pebble.Open(dir, &pebble.Options{FS: fs, ReadOnly: true, Logger: quietPebble{}})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		it, err := db.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			count[it.Key()[0]]++
		}
		if err := it.Error(); err != nil {
			t.Fatal(err)
		}
	}()
	s, err := diff.Open(dir, diff.Options{FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	backlog, err := s.Backlogs()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, b := range backlog {
		n += b
	}
	// An event template (0x0c) goes with its index entry (0x08).
	if count[0x04] != 0 || count[0x07] != 0 || int64(count[0x09]) != n || count[0x0c] > count[0x08] {
		t.Fatalf("left behind: %d staged row changes, %d in-progress cycle records, %d outbox messages for %d pending, %d event templates for %d index entries",
			count[0x04], count[0x07], count[0x09], n, count[0x0c], count[0x08])
	}
}

// quietPebble drops Pebble's own logs of the read-only look.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)         {}
func (quietPebble) Errorf(string, ...any)        {}
func (quietPebble) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
