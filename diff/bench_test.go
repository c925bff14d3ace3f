package diff_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cockroachdb/pebble/v2"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// benchRows is the size of the benchmark audience: 250k profiles with 4
// (account, card) rows each.
const benchRows = 1_000_000

// benchGen builds one generation as DuckDB hands it over: record batches of
// 2048 rows. When changed, every 10th row's card key differs (a card
// removed and another added: 10% of the rows change).
func benchGen(changed bool) (*arrow.Schema, []arrow.RecordBatch) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "profile_key", Type: arrow.BinaryTypes.String},
		{Name: "key_0", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "key_1", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "enrich_0", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "enrich_1", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "enrich_2", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	var recs []arrow.RecordBatch
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	var buf []byte
	for i := range benchRows {
		p := i / 4
		buf = strconv.AppendInt(append(buf[:0], 'u'), int64(10_000_000+p), 10)
		profile := string(buf)
		rb.Field(0).(*array.StringBuilder).Append(profile)
		rb.Field(1).(*array.StringBuilder).Append("a" + profile)
		card := "c" + profile + "-" + strconv.Itoa(i%4)
		if changed && i%10 == 0 {
			card += "x"
		}
		rb.Field(2).(*array.StringBuilder).Append(card)
		rb.Field(3).(*array.StringBuilder).Append("Outstanding")
		rb.Field(4).(*array.Int64Builder).Append(int64(1000 + i%5000))
		rb.Field(5).(*array.StringBuilder).Append(profile + "@example.com")
		if (i+1)%2048 == 0 || i == benchRows-1 {
			recs = append(recs, rb.NewRecordBatch())
		}
	}
	return schema, recs
}

func benchAudience() (*dsl.Audience, []*dsl.Activation) {
	account := &dsl.Entity{Name: "account", Key: "id"}
	card := &dsl.Entity{Name: "credit_card", Key: "id"}
	s0 := &dsl.Step{Entity: account, Level: 2}
	s1 := &dsl.Step{Entity: card, Level: 3}
	aud := &dsl.Audience{
		Name: "bench", Version: "v1",
		Primary: &dsl.Path{Steps: []*dsl.Step{s0, s1}},
		Enrich: []*dsl.ColumnRef{
			{Source: dsl.SourceStep, Step: s1, StepIndex: 1, Entity: card, Column: "balance"},
			{Source: dsl.SourceStep, Step: s1, StepIndex: 1, Entity: card, Column: "limit"},
			{Source: dsl.SourceTrait, Entity: &dsl.Entity{Name: "profile", Key: "id"}, Column: "email"},
		},
	}
	dest := &dsl.Destination{Name: "events", Type: "kafka"}
	acts := []*dsl.Activation{
		{Name: "added", Audience: aud, Destination: dest, Event: dsl.EntityAdded, Entity: card, EntityStep: 1},
		{Name: "removed", Audience: aud, Destination: dest, Event: dsl.EntityRemoved, Entity: card, EntityStep: 1},
		{Name: "entered", Audience: aud, Destination: dest, Event: dsl.AudienceEntered, EntityStep: -1},
	}
	return aud, acts
}

type benchStore struct {
	s      *diff.Store
	aud    *dsl.Audience
	acts   []*dsl.Activation
	schema *arrow.Schema
	a, b   []arrow.RecordBatch
	start  time.Time
	// current is the generation stored (its first batch).
	current *arrow.RecordBatch
}

func newBenchStore(b *testing.B, filled bool) *benchStore {
	s, err := diff.Open(b.TempDir(), diff.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	aud, acts := benchAudience()
	schema, ga := benchGen(false)
	_, gb := benchGen(true)
	bs := &benchStore{s: s, aud: aud, acts: acts, schema: schema, a: ga, b: gb, start: time.Unix(1_800_000_000, 0)}
	if err := s.Enable(aud.Name); err != nil {
		b.Fatal(err)
	}
	if filled {
		bs.cycle(b, bs.a)
	}
	return bs
}

func (bs *benchStore) cycle(b *testing.B, recs []arrow.RecordBatch) *diff.CycleResult {
	rr, err := array.NewRecordReader(bs.schema, recs)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	bs.start = bs.start.Add(time.Hour)
	res, err := bs.s.Cycle(context.Background(), diff.CycleInput{
		Audience: bs.aud, Layout: diff.LayoutOf(bs.aud), Activations: bs.acts, Rows: rr, Start: bs.start,
	})
	if err != nil {
		b.Fatal(err)
	}
	bs.current = &recs[0]
	return res
}

// BenchmarkCycle measures the merge diff on a 1M-row audience stored on
// disk: a cycle where nothing changed (reads only: the figure to hold
// against Pebble's ~12M keys/s scan), and cycles where 10% of the rows
// change (100k Entity Removed + 100k Entity Added events each).
//
//	go test -tags duckdb_arrow ./diff -run XXX -bench Cycle -benchtime 5x
func BenchmarkCycle(b *testing.B) {
	bs := newBenchStore(b, true)
	b.Run("nochange", func(b *testing.B) {
		if bs.current != &bs.a[0] {
			bs.cycle(b, bs.a)
		}
		var res *diff.CycleResult
		before := bs.s.Metrics()
		cpu := cpuTime()
		for b.Loop() {
			res = bs.cycle(b, bs.a)
		}
		cpu = cpuTime() - cpu
		after := bs.s.Metrics()
		if res.Events != 0 || res.Added+res.Removed+res.Changed != 0 {
			b.Fatalf("a no-change cycle changed something: %+v", res.Counts)
		}
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(res.BytesWritten), "batch-bytes/cycle")
		b.ReportMetric(float64(after.WAL.BytesWritten-before.WAL.BytesWritten)/float64(b.N), "wal-bytes/cycle")
		b.ReportMetric(float64(benchRows)*float64(b.N)/cpu.Seconds(), "rows/cpu-s")
	})
	changed := func(b *testing.B, acts []*dsl.Activation) {
		if bs.current != &bs.a[0] {
			bs.cycle(b, bs.a)
		}
		saved := bs.acts
		bs.acts = acts
		defer func() { bs.acts = saved }()
		gens := [][]arrow.RecordBatch{bs.b, bs.a}
		var events, written int64
		i := 0
		cpu := cpuTime()
		for b.Loop() {
			res := bs.cycle(b, gens[i%2])
			i++
			if res.Removed != benchRows/10 || res.Added != benchRows/10 {
				b.Fatalf("cycle changed %d/%d rows, want %d", res.Added, res.Removed, benchRows/10)
			}
			events += res.Events
			written += res.BytesWritten
		}
		cpu = cpuTime() - cpu
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		// Process CPU: includes Pebble's background flushes and
		// compactions of what the cycles wrote.
		b.ReportMetric(float64(benchRows)*float64(b.N)/cpu.Seconds(), "rows/cpu-s")
		b.ReportMetric(float64(events)/float64(b.N), "events/cycle")
		b.ReportMetric(float64(written)/float64(b.N), "batch-bytes/cycle")
	}
	// A first cycle on an empty state: every row new and, with
	// send_current, an Entity Added for every row and an Audience Entered
	// for every member — the heaviest cycle there is.
	b.Run("first", func(b *testing.B) {
		first := make([]*dsl.Activation, len(bs.acts))
		for i, a := range bs.acts {
			c := *a
			c.SendCurrent = true
			first[i] = &c
		}
		var events, written int64
		var elapsed time.Duration
		for b.Loop() {
			b.StopTimer()
			fresh := newBenchStore(b, false)
			fresh.acts = first
			b.StartTimer()
			began := time.Now()
			res := fresh.cycle(b, fresh.a)
			elapsed += time.Since(began)
			events += res.Events
			written += res.BytesWritten
		}
		b.ReportMetric(float64(benchRows)*float64(b.N)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(events)/float64(b.N), "events/cycle")
		b.ReportMetric(float64(written)/float64(b.N), "batch-bytes/cycle")
	})
	b.Run("10pct", func(b *testing.B) { changed(b, bs.acts) })
	// The same change without activations: the merge and the row writes
	// alone, no payloads to build and store.
	b.Run("10pct-noevents", func(b *testing.B) { changed(b, nil) })
}

// BenchmarkPebbleScan is the physical limit the merge is held against: a
// plain iterator over 1M keys of the same shape, in the same kind of
// store.
//
//	go test -tags duckdb_arrow ./diff -run XXX -bench PebbleScan
func BenchmarkPebbleScan(b *testing.B) {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{CacheSize: diff.DefaultCacheBytes, MemTableSize: diff.DefaultMemTableBytes, Logger: quietPebble{}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := db.NewBatch()
	for i := range benchRows {
		key := fmt.Appendf(nil, "\x03\x01bench\x00\x01\x01u%d\x00\x01\x01au%d\x00\x01\x01cu%d-%d\x00\x01", i/4, i/4, i/4, i%4)
		if err := batch.Set(key, []byte("\x0d\"Outstanding\"\x04 1234"), nil); err != nil {
			b.Fatal(err)
		}
		if batch.Len() > 4<<20 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				b.Fatal(err)
			}
			batch = db.NewBatch()
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		b.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	cpu := cpuTime()
	for b.Loop() {
		it, err := db.NewIter(nil)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			if _, err := it.ValueAndErr(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := it.Close(); err != nil || n != benchRows {
			b.Fatalf("scanned %d keys: %v", n, err)
		}
	}
	cpu = cpuTime() - cpu
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	b.ReportMetric(float64(benchRows)*float64(b.N)/cpu.Seconds(), "keys/cpu-s")
}

// cpuTime is the process's user and system CPU time: on a machine shared
// with other work, rows per CPU second vary less than rows per second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// quietPebble drops Pebble's informational logs in the baseline.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)         {}
func (quietPebble) Errorf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (quietPebble) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// BenchmarkOutboxDrain is delivery's side of the outbox: a first cycle's
// 200k events, flushed to sstables, read with Pending 10,000 at a time and
// acknowledged batch by batch, as the Kafka destination does. It reports
// messages per CPU second (the process's).
//
//	go test -tags duckdb_arrow ./diff -run XXX -bench OutboxDrain
func BenchmarkOutboxDrain(b *testing.B) {
	const profiles, batch = 100_000, 10_000
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := diff.Open(b.TempDir(), diff.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		aud := &dsl.Audience{Name: "drain", Version: "v1"}
		dest := &dsl.Destination{Name: "events", Type: "kafka"}
		acts := []*dsl.Activation{
			{Name: "entered", Audience: aud, Destination: dest, Event: dsl.AudienceEntered, EntityStep: -1, SendCurrent: true},
			{Name: "synced", Audience: aud, Destination: dest, Event: dsl.AudienceMembershipChanged, EntityStep: -1, SendCurrent: true},
		}
		if err := s.Enable(aud.Name); err != nil {
			b.Fatal(err)
		}
		schema := arrow.NewSchema([]arrow.Field{{Name: "profile_key", Type: arrow.BinaryTypes.String}}, nil)
		rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		var recs []arrow.RecordBatch
		for p := range profiles {
			rb.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("u%08d", p))
			if (p+1)%2048 == 0 || p == profiles-1 {
				recs = append(recs, rb.NewRecordBatch())
			}
		}
		rb.Release()
		rr, err := array.NewRecordReader(schema, recs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Cycle(context.Background(), diff.CycleInput{
			Audience: aud, Layout: diff.LayoutOf(aud), Activations: acts, Rows: rr, Start: time.Unix(1_800_000_000, 0),
		}); err != nil {
			b.Fatal(err)
		}
		rr.Release()
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		began := cpuTime()
		var after uint64
		n := 0
		for {
			msgs, err := s.Pending("events", after, batch)
			if err != nil {
				b.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			if err := s.Ack("events", msgs); err != nil {
				b.Fatal(err)
			}
			after = msgs[len(msgs)-1].Seq
			n += len(msgs)
		}
		cpu += cpuTime() - began
		b.StopTimer()
		if n != 2*profiles {
			b.Fatalf("drained %d messages, want %d", n, 2*profiles)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*profiles)*float64(b.N)/cpu.Seconds(), "msgs/cpu-s")
	b.ReportMetric(cpu.Seconds()*1e9/float64(2*profiles*b.N), "cpu-ns/msg")
}
