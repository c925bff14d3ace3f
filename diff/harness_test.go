package diff_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// world is the state of one datadriven file: a store, the audiences and
// activations defined so far (IR built by hand), and how far each
// destination's outbox has been printed.
type world struct {
	t       testing.TB
	fs      vfs.FS
	opts    diff.Options
	store   *diff.Store
	profile *dsl.Entity
	auds    map[string]*audienceDef
	acts    []*dsl.Activation
	dests   map[string]*dsl.Destination
	printed map[string]uint64 // last Seq printed per destination
	clock   time.Time
	logs    *bytes.Buffer
	// tables are the warehouse's entity tables the cycles' lookups read,
	// by audience and entity: key, then the step's enrichment values.
	tables  map[string][][]any
	lookups []string // the lookups of the current cycle
}

type audienceDef struct {
	aud   *dsl.Audience
	types []arrow.DataType // per enrichment column
}

func newWorld(t testing.TB) *world {
	w := &world{
		t:       t,
		profile: &dsl.Entity{Name: "profile", Key: "segment_id"},
		auds:    map[string]*audienceDef{},
		dests:   map[string]*dsl.Destination{},
		printed: map[string]uint64{},
		tables:  map[string][][]any{},
		clock:   time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		logs:    &bytes.Buffer{},
	}
	w.open(t, diff.Options{})
	return w
}

func (w *world) open(t testing.TB, o diff.Options) {
	if w.store != nil {
		if err := w.store.Close(); err != nil {
			t.Fatal(err)
		}
	}
	w.fs = vfs.NewMem()
	w.printed = map[string]uint64{}
	o.FS = w.fs
	o.Logger = slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o.Now = func() time.Time { return w.clock }
	w.opts = o
	s, err := diff.Open("state", o)
	if err != nil {
		t.Fatal(err)
	}
	w.store = s
	t.Cleanup(func() {
		if w.store != nil {
			w.store.Close()
			w.store = nil
		}
	})
}

func (w *world) reopen(t testing.TB) {
	if err := w.store.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := diff.Open("state", w.opts)
	if err != nil {
		t.Fatal(err)
	}
	w.store = s
}

func (w *world) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "open":
		var o diff.Options
		d.MaybeScanArgs(t, "max-event-bytes", &o.MaxEventBytes)
		d.MaybeScanArgs(t, "final-batch-bytes", &o.FinalBatchBytes)
		d.MaybeScanArgs(t, "stage-batch-bytes", &o.StageBatchBytes)
		d.MaybeScanArgs(t, "history", &o.HistoryRuns)
		w.open(t, o)
		return ""
	case "reopen":
		w.reopen(t)
		return ""
	case "audience":
		return w.defineAudience(t, d)
	case "activation":
		return w.defineActivation(t, d)
	case "drop-activation":
		var name string
		d.ScanArgs(t, "name", &name)
		w.acts = slices.DeleteFunc(w.acts, func(a *dsl.Activation) bool { return a.Name == name })
		return ""
	case "enable", "disable":
		var name string
		d.ScanArgs(t, "audience", &name)
		var err error
		if d.Cmd == "enable" {
			err = w.store.Enable(name)
		} else {
			err = w.store.Disable(name)
		}
		if err != nil {
			return "error: " + err.Error()
		}
		return w.status(name)
	case "cycle":
		return w.cycle(t, d)
	case "table":
		return w.defineTable(t, d)
	case "state":
		var name string
		d.ScanArgs(t, "audience", &name)
		return w.state(t, name)
	case "status":
		var name string
		d.ScanArgs(t, "audience", &name)
		return w.status(name)
	case "audiences":
		states, err := w.store.Audiences()
		if err != nil {
			return "error: " + err.Error()
		}
		var b strings.Builder
		for _, s := range states {
			fmt.Fprintf(&b, "%s: %s\n", s.Name, statusLine(s))
		}
		return b.String()
	case "runs":
		return w.runs(t, d)
	case "outbox":
		var dest string
		d.ScanArgs(t, "dest", &dest)
		after := uint64(0)
		d.MaybeScanArgs(t, "after", &after)
		max := 1000
		d.MaybeScanArgs(t, "max", &max)
		msgs, err := w.store.Pending(dest, after, max)
		if err != nil {
			return "error: " + err.Error()
		}
		return formatMessages(msgs, d.HasArg("payload"))
	case "ack", "deadletter":
		var dest string
		d.ScanArgs(t, "dest", &dest)
		n := 1
		d.MaybeScanArgs(t, "n", &n)
		msgs, err := w.store.Pending(dest, 0, n)
		if err != nil {
			return "error: " + err.Error()
		}
		if d.HasArg("twice") {
			msgs = append(msgs, msgs...)
		}
		if d.HasArg("wrong-id") {
			msgs[0].ID = "la-wrong"
		}
		if d.Cmd == "ack" {
			err = w.store.Ack(dest, msgs)
		} else {
			reason := "rejected"
			d.MaybeScanArgs(t, "reason", &reason)
			err = w.store.DeadLetter(dest, msgs, reason)
		}
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("%d messages", len(msgs))
	case "deadletters":
		dest := ""
		d.MaybeScanArgs(t, "dest", &dest)
		dls, err := w.store.DeadLetters(dest)
		if err != nil {
			return "error: " + err.Error()
		}
		var b strings.Builder
		for _, dl := range dls {
			fmt.Fprintf(&b, "%s ref=%d seq=%s %s %s %q at %s\n", dl.Destination, dl.Ref, seqText(dl.Seq), dl.Event, dl.ID, dl.Reason, dl.At.Format(time.RFC3339))
		}
		return b.String()
	case "retry":
		dest := ""
		d.MaybeScanArgs(t, "dest", &dest)
		var ids []string
		if arg, ok := d.Arg("ids"); ok {
			ids = arg.Vals
		}
		n, err := w.store.RetryDeadLetters(dest, ids)
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("%d moved", n)
	case "backlog":
		bl, err := w.store.Backlogs()
		if err != nil {
			return "error: " + err.Error()
		}
		var names []string
		for k := range bl {
			names = append(names, k)
		}
		slices.Sort(names)
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "%s: %d\n", n, bl[n])
		}
		return b.String()
	case "delivered":
		var name string
		var run uint64
		var n int64
		d.ScanArgs(t, "audience", &name)
		d.ScanArgs(t, "run", &run)
		d.ScanArgs(t, "n", &n)
		if err := w.store.RecordDelivery(name, run, n, time.Second); err != nil {
			return "error: " + err.Error()
		}
		return ""
	case "purge":
		var name string
		d.ScanArgs(t, "audience", &name)
		if err := w.store.Purge(name); err != nil {
			return "error: " + err.Error()
		}
		return w.state(t, name)
	case "logs":
		out := w.logs.String()
		w.logs.Reset()
		return scrubLogs(out)
	}
	d.Fatalf(t, "unknown command %s", d.Cmd)
	return ""
}

// scrubLogs drops the time= field of text-handler log lines.
func scrubLogs(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		if i := strings.Index(line, " level="); strings.HasPrefix(line, "time=") && i > 0 {
			line = line[i+1:]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// audience name=A version=V [path=(account:id,credit_card:id)]
// [enrich=(credit_card.balance:string,trait.email:string)]
func (w *world) defineAudience(t *testing.T, d *datadriven.TestData) string {
	var name string
	d.ScanArgs(t, "name", &name)
	version := "v1"
	d.MaybeScanArgs(t, "version", &version)
	a := &dsl.Audience{Name: name, Version: version}
	def := &audienceDef{aud: a}
	if arg, ok := d.Arg("path"); ok {
		a.Primary = &dsl.Path{}
		for i, v := range arg.Vals {
			ent, key, _ := strings.Cut(v, ":")
			a.Primary.Steps = append(a.Primary.Steps, &dsl.Step{
				Entity: &dsl.Entity{Name: ent, Key: key}, Level: i + 2,
			})
		}
	}
	if arg, ok := d.Arg("enrich"); ok {
		for _, v := range arg.Vals {
			ref, typ, _ := strings.Cut(v, ":")
			tbl, col, _ := strings.Cut(ref, ".")
			r := &dsl.ColumnRef{Column: col}
			if tbl == "trait" {
				r.Source, r.Entity = dsl.SourceTrait, w.profile
			} else {
				r.Source = dsl.SourceStep
				for i, s := range a.Primary.Steps {
					if s.Entity.Name == tbl {
						r.Step, r.StepIndex, r.Entity = s, i, s.Entity
					}
				}
				if r.Step == nil {
					d.Fatalf(t, "enrich %s: no step %s", ref, tbl)
				}
			}
			a.Enrich = append(a.Enrich, r)
			def.types = append(def.types, arrowType(t, d, typ))
		}
	}
	w.auds[name] = def
	// Activations follow their audience's new definition, as dsl.Check
	// would resolve them.
	for _, act := range w.acts {
		if act.Audience.Name == name {
			w.resolve(t, d, act, a)
		}
	}
	l := diff.LayoutOf(a)
	js, _ := json.Marshal(l)
	return string(js)
}

func arrowType(t *testing.T, d *datadriven.TestData, typ string) arrow.DataType {
	switch typ {
	case "", "string":
		return arrow.BinaryTypes.String
	case "int64":
		return arrow.PrimitiveTypes.Int64
	case "float64":
		return arrow.PrimitiveTypes.Float64
	case "bool":
		return arrow.FixedWidthTypes.Boolean
	case "date":
		return arrow.FixedWidthTypes.Date32
	}
	d.Fatalf(t, "unknown type %s", typ)
	return nil
}

// activation name=N audience=A event=entity_added [entity=E] dest=D
// [send_current] [properties=(a.b,…)]
func (w *world) defineActivation(t *testing.T, d *datadriven.TestData) string {
	var name, audName, event, dest string
	d.ScanArgs(t, "name", &name)
	d.ScanArgs(t, "audience", &audName)
	d.ScanArgs(t, "event", &event)
	d.ScanArgs(t, "dest", &dest)
	def := w.auds[audName]
	if def == nil {
		d.Fatalf(t, "no audience %s", audName)
	}
	kinds := map[string]dsl.EventKind{
		"entity_added": dsl.EntityAdded, "entity_removed": dsl.EntityRemoved,
		"audience_entered": dsl.AudienceEntered, "audience_exited": dsl.AudienceExited,
		"audience_membership_changed": dsl.AudienceMembershipChanged,
		"entity_changed":              dsl.EntityChanged,
	}
	kind, ok := kinds[event]
	if !ok {
		d.Fatalf(t, "unknown event %s", event)
	}
	if w.dests[dest] == nil {
		w.dests[dest] = &dsl.Destination{Name: dest, Type: "file"}
	}
	act := &dsl.Activation{Name: name, Destination: w.dests[dest], Event: kind, EntityStep: -1, SendCurrent: d.HasArg("send_current")}
	if arg, ok := d.Arg("entity"); ok {
		act.Entity = &dsl.Entity{Name: arg.SingleVal(t)}
	}
	if arg, ok := d.Arg("properties"); ok {
		act.Properties = []*dsl.ColumnRef{}
		for _, v := range arg.Vals {
			tbl, col, _ := strings.Cut(v, ".")
			act.Properties = append(act.Properties, &dsl.ColumnRef{Column: col, Entity: &dsl.Entity{Name: tbl}})
		}
	}
	w.resolve(t, d, act, def.aud)
	w.acts = slices.DeleteFunc(w.acts, func(a *dsl.Activation) bool { return a.Name == name })
	w.acts = append(w.acts, act)
	return ""
}

// resolve points an activation at (a new version of) its audience: entity
// step and property references, as the checker would.
func (w *world) resolve(t *testing.T, d *datadriven.TestData, act *dsl.Activation, a *dsl.Audience) {
	act.Audience = a
	if act.Entity != nil {
		act.EntityStep = -1
		if a.Primary != nil {
			for i, s := range a.Primary.Steps {
				if s.Entity.Name == act.Entity.Name {
					act.Entity, act.EntityStep = s.Entity, i
				}
			}
		}
		if act.EntityStep < 0 {
			d.Fatalf(t, "activation %s: %s is not on the path of %s", act.Name, act.Entity.Name, a.Name)
		}
	}
	for _, p := range act.Properties {
		if p.Entity.Name == "trait" {
			p.Source, p.Entity = dsl.SourceTrait, w.profile
			continue
		}
		p.Source = dsl.SourceStep
		for i, s := range a.Primary.Steps {
			if s.Entity.Name == p.Entity.Name {
				p.Step, p.StepIndex, p.Entity = s, i, s.Entity
			}
		}
	}
}

func (w *world) activationsOf(name string) []*dsl.Activation {
	var out []*dsl.Activation
	for _, a := range w.acts {
		if a.Audience.Name == name {
			out = append(out, a)
		}
	}
	return out
}

// cycle audience=A [at=RFC3339] [batch=N] [fail-after=N]
//
// Input: one row per line, `profile key_0 … key_n-1 [| enrich_0 …]`, with
// NULL for a NULL key or value; enrichment values are Go-quoted strings,
// numbers, true/false, or dates (2026-01-31).
func (w *world) cycle(t *testing.T, d *datadriven.TestData) string {
	var name string
	d.ScanArgs(t, "audience", &name)
	def := w.auds[name]
	if def == nil {
		d.Fatalf(t, "no audience %s", name)
	}
	w.clock = w.clock.Add(time.Hour)
	if arg, ok := d.Arg("at"); ok {
		ts, err := time.Parse(time.RFC3339, arg.SingleVal(t))
		if err != nil {
			d.Fatalf(t, "at: %v", err)
		}
		w.clock = ts
	}
	batch := 2
	d.MaybeScanArgs(t, "batch", &batch)
	failAfter := -1
	d.MaybeScanArgs(t, "fail-after", &failAfter)
	layout := diff.LayoutOf(def.aud)
	// rows-of=B shapes the rows as audience B's, to feed a layout the rows
	// do not match.
	shape := def
	if arg, ok := d.Arg("rows-of"); ok {
		shape = w.auds[arg.SingleVal(t)]
	}
	shapeLayout := diff.LayoutOf(shape.aud)
	rr := buildReader(t, shapeLayout, shape.types, parseRows(t, d, shapeLayout), batch)
	defer rr.Release()
	var reader array.RecordReader = rr
	if failAfter >= 0 {
		reader = &failingReader{RecordReader: rr, left: failAfter}
	}
	in := diff.CycleInput{
		Audience:    def.aud,
		Layout:      layout,
		Activations: w.activationsOf(name),
		Rows:        reader,
		Start:       w.clock,
	}
	w.lookups = nil
	if w.hasTables(name) {
		in.Lookup = w.lookup(t, def, layout)
	}
	res, err := w.store.Cycle(context.Background(), in)
	var b strings.Builder
	for _, l := range w.lookups {
		b.WriteString(l + "\n")
	}
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	} else {
		c := res.Counts
		fmt.Fprintf(&b, "generation %d: members=%d rows=%d entered=%d exited=%d added=%d removed=%d changed=%d",
			res.Generation, c.Members, c.Rows, c.Entered, c.Exited, c.Added, c.Removed, c.Changed)
		if c.Duplicates > 0 {
			fmt.Fprintf(&b, " duplicates=%d", c.Duplicates)
		}
		if c.Oversize > 0 {
			fmt.Fprintf(&b, " oversize=%d", c.Oversize)
		}
		if c.Staged {
			b.WriteString(" staged")
		}
		b.WriteString("\n")
	}
	b.WriteString(w.newEvents(t, d.HasArg("payload")))
	return b.String()
}

// table audience=A entity=E
//
// Input: the rows of entity E's table as the warehouse holds it now, one
// per line, `key | value …` (the values of the step's enrichment columns,
// in order). Once an audience has a table, its cycles look up removed
// entities in it, and print each lookup's keys.
func (w *world) defineTable(t *testing.T, d *datadriven.TestData) string {
	var name, ent string
	d.ScanArgs(t, "audience", &name)
	d.ScanArgs(t, "entity", &ent)
	rows := [][]any{}
	for _, line := range strings.Split(d.Input, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keyPart, valPart, _ := strings.Cut(line, "|")
		row := []any{strings.TrimSpace(keyPart)}
		for _, v := range tokens(t, d, valPart) {
			row = append(row, parseValue(t, d, v))
		}
		rows = append(rows, row)
	}
	w.tables[name+"/"+ent] = rows
	return ""
}

func (w *world) hasTables(aud string) bool {
	for k := range w.tables {
		if strings.HasPrefix(k, aud+"/") {
			return true
		}
	}
	return false
}

// lookup answers a cycle's lookups from the audience's tables; an entity
// without a table has no rows.
func (w *world) lookup(t testing.TB, def *audienceDef, l diff.Layout) diff.Lookup {
	return func(_ context.Context, step int, keys []string) (array.RecordReader, error) {
		ent := l.Steps[step].Entity
		w.lookups = append(w.lookups, "lookup "+ent+": "+strings.Join(keys, " "))
		fields := []arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}}
		for j, e := range l.Enrich {
			if e.Step == step {
				fields = append(fields, arrow.Field{Name: e.Name, Type: def.types[j], Nullable: true})
			}
		}
		schema := arrow.NewSchema(fields, nil)
		rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer rb.Release()
		for _, row := range w.tables[def.aud.Name+"/"+ent] {
			if !slices.Contains(keys, row[0].(string)) {
				continue
			}
			if len(row) != len(fields) {
				t.Fatalf("table %s: row %v has %d columns, want %d", ent, row, len(row), len(fields))
			}
			for c, v := range row {
				appendValue(t, rb.Field(c), v)
			}
		}
		rec := rb.NewRecordBatch()
		defer rec.Release()
		return array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	}
}

// newEvents prints the messages that became pending since the last print,
// per destination in name order.
func (w *world) newEvents(t testing.TB, payloads bool) string {
	bl, err := w.store.Backlogs()
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for k := range bl {
		dests = append(dests, k)
	}
	slices.Sort(dests)
	var b strings.Builder
	for _, dest := range dests {
		msgs, err := w.store.Pending(dest, w.printed[dest], 100000)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			w.printed[dest] = msgs[len(msgs)-1].Seq
		}
		b.WriteString(formatMessages(msgs, payloads))
	}
	return b.String()
}

func seqText(seq uint64) string {
	return fmt.Sprintf("%d.%d", seq>>32, seq&(1<<32-1))
}

func formatMessages(msgs []diff.Message, payloads bool) string {
	var b strings.Builder
	for _, m := range msgs {
		var p struct {
			Properties map[string]any `json:"properties"`
			Traits     map[string]any `json:"traits"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			fmt.Fprintf(&b, "INVALID JSON %v: %s\n", err, m.Payload)
			continue
		}
		fmt.Fprintf(&b, "%s %s %s/%s %s %q user=%s %s", m.Destination, seqText(m.Seq), m.Audience, m.Activation, m.Type, m.Event, m.UserID, m.ID)
		if ctx, ok := p.Properties["_entity_context"]; ok {
			js, _ := json.Marshal(ctx)
			fmt.Fprintf(&b, " %s", js)
		}
		b.WriteByte('\n')
		if payloads {
			fmt.Fprintf(&b, "  %s\n", m.Payload)
		}
	}
	return b.String()
}

func (w *world) status(name string) string {
	s, err := w.store.State(name)
	if err != nil {
		return "error: " + err.Error()
	}
	return statusLine(s)
}

func statusLine(s diff.AudienceState) string {
	line := fmt.Sprintf("%s enabled=%t generation=%d version=%q members=%d rows=%d runs=%d", s.Status, s.Enabled, s.Generation, s.Version, s.Members, s.Rows, s.Runs)
	if s.Error != "" {
		line += " error=" + strconv.Quote(s.Error)
	}
	return line
}

func (w *world) state(t *testing.T, name string) string {
	var b strings.Builder
	b.WriteString(w.status(name))
	b.WriteString("\n")
	err := w.store.Members(name, func(m diff.Member) error {
		fmt.Fprintf(&b, "%s", m.Profile)
		for _, c := range m.Chains {
			b.WriteString(" (")
			for i, k := range c {
				if i > 0 {
					b.WriteByte(' ')
				}
				if k == nil {
					b.WriteString("NULL")
				} else {
					b.WriteString(*k)
				}
			}
			b.WriteString(")")
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	return b.String()
}

func (w *world) runs(t *testing.T, d *datadriven.TestData) string {
	var name string
	d.ScanArgs(t, "audience", &name)
	runs, err := w.store.Runs(name)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, r := range runs {
		status := "ok"
		if !r.OK {
			status = "failed: " + r.Error
		}
		fmt.Fprintf(&b, "run %d generation %d %s %s: read=%d entered=%d exited=%d added=%d removed=%d changed=%d events=%d delivered=%d\n",
			r.Run, r.Generation, r.Version, status, r.RowsRead, r.Entered, r.Exited, r.Added, r.Removed, r.Changed, r.Events, r.Delivered)
	}
	return b.String()
}

// parseRows reads the cycle's input rows.
func parseRows(t *testing.T, d *datadriven.TestData, l diff.Layout) [][]any {
	var rows [][]any
	for _, line := range strings.Split(d.Input, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keyPart, valPart, _ := strings.Cut(line, "|")
		keys := strings.Fields(keyPart)
		if len(keys) != 1+len(l.Steps) {
			d.Fatalf(t, "row %q: %d keys, want %d", line, len(keys), 1+len(l.Steps))
		}
		var row []any
		for _, k := range keys {
			if k == "NULL" {
				row = append(row, nil)
			} else {
				row = append(row, k)
			}
		}
		vals := tokens(t, d, valPart)
		if len(vals) != len(l.Enrich) {
			d.Fatalf(t, "row %q: %d values, want %d", line, len(vals), len(l.Enrich))
		}
		for _, v := range vals {
			row = append(row, parseValue(t, d, v))
		}
		rows = append(rows, row)
	}
	return rows
}

// tokens splits on spaces outside double quotes.
func tokens(t *testing.T, d *datadriven.TestData, s string) []string {
	var out []string
	s = strings.TrimSpace(s)
	for s != "" {
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				d.Fatalf(t, "bad quoted value in %q", s)
			}
			out = append(out, q)
			s = strings.TrimSpace(s[len(q):])
			continue
		}
		i := strings.IndexFunc(s, unicode.IsSpace)
		if i < 0 {
			i = len(s)
		}
		out = append(out, s[:i])
		s = strings.TrimSpace(s[i:])
	}
	return out
}

func parseValue(t *testing.T, d *datadriven.TestData, v string) any {
	switch {
	case v == "NULL":
		return nil
	case v == "true" || v == "false":
		return v == "true"
	case strings.HasPrefix(v, `"`):
		s, err := strconv.Unquote(v)
		if err != nil {
			d.Fatalf(t, "value %s: %v", v, err)
		}
		return s
	}
	if ts, err := time.Parse(time.DateOnly, v); err == nil {
		return ts
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f
	}
	d.Fatalf(t, "value %s: not a string, number, bool or date", v)
	return nil
}

// buildReader makes the result rows of layout l as Arrow record batches of
// at most batch rows each.
func buildReader(t testing.TB, l diff.Layout, types []arrow.DataType, rows [][]any, batch int) array.RecordReader {
	fields := []arrow.Field{{Name: "profile_key", Type: arrow.BinaryTypes.String}}
	for i := range l.Steps {
		fields = append(fields, arrow.Field{Name: "key_" + strconv.Itoa(i), Type: arrow.BinaryTypes.String, Nullable: true})
	}
	for j := range l.Enrich {
		fields = append(fields, arrow.Field{Name: "enrich_" + strconv.Itoa(j), Type: types[j], Nullable: true})
	}
	schema := arrow.NewSchema(fields, nil)
	var recs []arrow.RecordBatch
	for start := 0; start < len(rows); start += batch {
		end := min(start+batch, len(rows))
		rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		for _, row := range rows[start:end] {
			for c, v := range row {
				appendValue(t, rb.Field(c), v)
			}
		}
		recs = append(recs, rb.NewRecordBatch())
		rb.Release()
	}
	rr, err := array.NewRecordReader(schema, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		r.Release()
	}
	return rr
}

func appendValue(t testing.TB, b array.Builder, v any) {
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Float64Builder:
		switch v := v.(type) {
		case float64:
			b.Append(v)
		case int64:
			b.Append(float64(v))
		}
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.Date32Builder:
		b.Append(arrow.Date32FromTime(v.(time.Time)))
	default:
		t.Fatalf("no builder for %T", b)
	}
}

// failingReader fails after left batches, as a warehouse connection lost
// mid-stream does.
type failingReader struct {
	array.RecordReader
	left int
	err  error
}

var errConnectionLost = errors.New("warehouse connection lost")

func (r *failingReader) Next() bool {
	if r.left == 0 {
		r.err = errConnectionLost
		return false
	}
	r.left--
	return r.RecordReader.Next()
}

func (r *failingReader) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.RecordReader.Err()
}

func TestCycles(t *testing.T) {
	datadriven.Walk(t, "testdata/cycles", func(t *testing.T, path string) {
		w := newWorld(t)
		datadriven.RunTest(t, path, w.run)
	})
}
