// Package demo is `linkaud demo`: it writes a workspace with the seed's
// three use cases and their activations, fills an embedded DuckDB file
// with a small bank + household data set, starts an in-process Kafka
// development broker, and runs two compute cycles with a change to the
// data in between, printing the members and every event so that a newcomer
// sees what linkaud does. Everything runs in the process: no service.
//
// The output is reproducible: the cycles start at fixed times, the data is
// fixed, and nothing that varies (timings, the broker's port) is printed.
//
// Entry point: Run.
package demo

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/devbroker"
	"github.com/linkaud/linkaud/sinks"
)

//go:embed workspace/*.la
var workspaceFS embed.FS

//go:embed data.sql
var dataSQL string

// DefaultDir is where the demo goes unless told otherwise.
const DefaultDir = "linkaud-demo"

// marker marks a directory as the demo's, so a later run may replace it.
const marker = ".linkaud-demo"

// ErrDirInUse is returned by Run when its directory holds files an earlier
// demo did not make.
var ErrDirInUse = errors.New("demo: the directory is not an earlier demo's")

// Options configure Run.
type Options struct {
	// Dir is the demo's directory; default DefaultDir. It is replaced if
	// an earlier demo made it; any other non-empty directory is refused.
	Dir string
	// Out receives the story; default os.Stdout.
	Out io.Writer
	// Logger receives the engine's logs; default one that discards
	// everything below Error.
	Logger *slog.Logger
	// PostgresDSN, when set, puts the data set in that PostgreSQL database
	// (schemas analytics, bank and home, which it refuses to replace
	// unless an earlier demo made them) instead of bank.duckdb; the
	// workspace reads the DSN from the variable DSNEnv (default PG_DSN),
	// which must hold it.
	PostgresDSN string
	DSNEnv      string
}

// Start is the first cycle's start; the second is an hour later.
var Start = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// kafkaEnv names the variable the workspace's kafka destination reads its
// brokers from; the demo answers it with its broker's address.
const kafkaEnv = "LINKAUD_DEMO_KAFKA"

const kafkaTopic = "linked-audiences"

// change is one edit of the warehouse between the cycles.
type change struct {
	why string
	sql []string
}

var changes = []change{
	{"Ann pays off card c1 (she still owes on c3)", []string{
		"UPDATE BANK.CREDIT_CARDS SET balance = 'Paid' WHERE id = 'c1'"}},
	{"Eve pays off c6, her only outstanding card", []string{
		"UPDATE BANK.CREDIT_CARDS SET balance = 'Paid' WHERE id = 'c6'"}},
	{"Bob runs up a balance on card c4", []string{
		"UPDATE BANK.CREDIT_CARDS SET balance = 'Outstanding' WHERE id = 'c4'"}},
	{"Fay (platinum tier) adopts a cat, Luna", []string{
		"INSERT INTO HOME.PETS VALUES ('p5', 'Luna', 'cat')",
		"INSERT INTO HOME.HOUSEHOLD_PETS VALUES ('h4', 'p5')"}},
	{"Felix the cat moves from Bob's household to Cy's", []string{
		"UPDATE HOME.HOUSEHOLD_PETS SET household_id = 'h3' WHERE pet_id = 'p3'"}},
	{"Bob pays his premium subscription a sixth time", []string{
		"INSERT INTO BANK.TRANSACTIONS VALUES ('t13', 's2', 19.99)"}},
}

// Run runs the demo.
func Run(ctx context.Context, opts Options) error {
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	d := &demo{opts: opts, out: opts.Out, dir: opts.Dir}
	return d.run(ctx)
}

type demo struct {
	opts   Options
	out    io.Writer
	dir    string
	ws     *dsl.Workspace
	broker *devbroker.Broker
	kafka  *kgo.Client
	// fileOffset is how much of events.jsonl was shown already.
	fileOffset int64
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) run(ctx context.Context) error {
	if err := prepareDir(d.dir); err != nil {
		return err
	}
	if err := writeWorkspace(d.dir); err != nil {
		return err
	}
	if d.opts.PostgresDSN != "" {
		wh := fmt.Sprintf("# The demo's warehouse: the PostgreSQL database in %[1]s, which `linkaud demo\n# --warehouse postgres` filled with a small bank + household data set.\nwarehouse {\n  type postgres\n  dsn env(%[1]q)\n}\nstate \".linkaud\"\n", d.dsnEnv())
		if err := os.WriteFile(filepath.Join(d.dir, "warehouse.la"), []byte(wh), 0o644); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if d.opts.PostgresDSN != "" {
		if err := d.preparePostgres(ctx); err != nil {
			return err
		}
	}
	if err := d.exec(ctx, splitSQL(dataSQL)); err != nil {
		return fmt.Errorf("demo: building the data set: %w", err)
	}
	if d.opts.PostgresDSN != "" {
		if err := d.markPostgres(ctx); err != nil {
			return err
		}
	}
	b, err := devbroker.Start(devbroker.Options{Addr: "127.0.0.1:0", Partitions: 3, Topics: []string{kafkaTopic},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	d.broker = b
	defer b.Close()
	d.kafka, err = kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(kafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithLogger(nil))
	if err != nil {
		return fmt.Errorf("demo: kafka consumer: %w", err)
	}
	defer d.kafka.Close()

	ws, diags := dsl.Load(d.dir, dsl.Options{})
	if diags.HasErrors() {
		return fmt.Errorf("demo: the demo workspace does not check: %v", diags)
	}
	d.ws = ws

	if d.opts.PostgresDSN != "" {
		d.printf("linkaud demo: the seed's three use cases on a bank + household data set in PostgreSQL.\n\n")
		d.printf("Workspace %s:\n", d.dir)
		d.printf("  *.la          the warehouse, the data graph, three audiences, their destinations and activations\n")
		d.printf("  (PostgreSQL)  the warehouse: schemas analytics, bank and home of the database in %s\n", d.dsnEnv())
	} else {
		d.printf("linkaud demo: the seed's three use cases on an embedded DuckDB bank + household data set.\n\n")
		d.printf("Workspace %s:\n", d.dir)
		d.printf("  *.la          the warehouse, the data graph, three audiences, their destinations and activations\n")
		d.printf("  bank.duckdb   the warehouse: profiles, accounts, cards, subscriptions, transactions, households, pets\n")
	}
	d.printf("  .linkaud/     linkaud's state: memberships, the event outbox, the run history (Pebble)\n")
	d.printf("  events.jsonl  the file destination \"audit\"\n")
	d.printf("Kafka destination \"events\": topic %s on an in-process development broker\n(%s).\n\n", kafkaTopic, devbroker.Banner)

	for _, a := range ws.Audiences {
		d.printf("audience %s: %s\n  %s\n", a.Name, a.Description, matchLine(ws, a))
	}

	if err := d.cycle(ctx, 1, Start, "Every audience is new: only activations with send_current true send events,\nfor everyone in the audience now."); err != nil {
		return err
	}
	d.printf("\n== Changes in the warehouse ==\n")
	for _, c := range changes {
		d.printf("-- %s\n", c.why)
		for _, s := range c.sql {
			d.printf("%s;\n", s)
		}
		if err := d.exec(ctx, c.sql); err != nil {
			return fmt.Errorf("demo: changing the data: %w", err)
		}
	}
	if err := d.cycle(ctx, 2, Start.Add(time.Hour), "Each audience is diffed against the first cycle's membership: only the\nchanges become events."); err != nil {
		return err
	}
	d.printf("\n== Next ==\n")
	for _, c := range []string{
		"linkaud audiences %[1]s list",
		"linkaud audiences %[1]s runs outstanding_balance",
		"linkaud preview %[1]s --audience platinum_cat_owners",
		"linkaud plan %[1]s --audience premium_heavy_users",
		"linkaud why %[1]s --audience premium_heavy_users --profile bob",
		"linkaud test %[1]s",
		"cat %[1]s/events.jsonl",
	} {
		d.printf("  "+c+"\n", d.dir)
	}
	d.printf("To run cycles yourself, start `linkaud devbroker` and run\n  %s=127.0.0.1:9092 linkaud run %s\n", kafkaEnv, d.dir)
	return nil
}

// prepareDir creates dir, or empties it when an earlier demo made it.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("demo: %w", err)
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%w: %s holds other files; choose another --dir", ErrDirInUse, dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, marker), []byte("made by `linkaud demo`; the next demo replaces this directory\n"), 0o644)
}

func writeWorkspace(dir string) error {
	entries, err := workspaceFS.ReadDir("workspace")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := workspaceFS.ReadFile("workspace/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

// splitSQL splits a script into statements (the demo's own SQL: no
// semicolon inside a literal), dropping comments.
func splitSQL(script string) []string {
	var out []string
	for _, s := range strings.Split(script, ";") {
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	return out
}

// exec runs statements on the warehouse: bank.duckdb (the engine is closed
// meanwhile: a DuckDB file has one writer), or the PostgreSQL database.
func (d *demo) exec(ctx context.Context, stmts []string) error {
	path := filepath.Join(d.dir, "bank.duckdb")
	w := &dsl.Warehouse{Type: "duckdb", Path: path, Settings: map[string]string{"access_mode": "read_write"}}
	if d.opts.PostgresDSN != "" {
		w = &dsl.Warehouse{Type: "postgres", DSN: dsl.Secret{Env: d.dsnEnv()}, Settings: map[string]string{}}
	} else if err := executor.CreateDuckDBFile(path); err != nil {
		return err
	}
	wh, err := executor.Open(ctx, w, executor.Options{MaxConns: 1, Logger: d.opts.Logger,
		LookupEnv: func(n string) (string, bool) { return d.opts.PostgresDSN, n == d.dsnEnv() }})
	if err != nil {
		return err
	}
	defer wh.Close()
	for _, s := range stmts {
		rr, err := wh.Query(ctx, s, executor.QueryOptions{Tag: "demo"})
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		for rr.Next() {
		}
		err = rr.Err()
		rr.Release()
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// cycle opens the engine at time now, enables the audiences (the first
// time), runs one cycle of each and delivers, and prints what happened.
func (d *demo) cycle(ctx context.Context, n int, now time.Time, intro string) error {
	clock := func() time.Time { return now }
	e, err := engine.Open(ctx, d.ws, engine.Options{
		Logger: d.opts.Logger,
		Now:    clock,
		Store:  diff.Options{Now: clock},
		Sinks: sinks.OpenOptions{LookupEnv: func(name string) (string, bool) {
			if name == kafkaEnv {
				return d.broker.Addr(), true
			}
			return os.LookupEnv(name)
		}},
	})
	if err != nil {
		return err
	}
	defer e.Close()
	if n == 1 {
		for _, a := range d.ws.Audiences {
			if err := e.Store().Enable(a.Name); err != nil {
				return err
			}
		}
	}
	d.printf("\n== Cycle %d at %s ==\n%s\n\n", n, now.Format(time.RFC3339), intro)
	rep, err := e.RunOnce(ctx, engine.RunOptions{})
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("demo: cycle %d: %w", n, err)
	}
	if err := rep.WriteSummary(d.out, engine.SummaryOptions{}); err != nil {
		return err
	}
	d.printf("\nMembers after cycle %d:\n", n)
	for _, a := range d.ws.Audiences {
		if err := d.members(e.Store(), a); err != nil {
			return err
		}
	}
	d.printf("\nEvents of cycle %d:\n", n)
	if err := d.fileEvents(n == 1); err != nil {
		return err
	}
	var kafkaCount int
	for _, dr := range rep.Destinations {
		if dr.Name == "events" {
			kafkaCount = dr.Delivered
		}
	}
	return d.kafkaEvents(ctx, kafkaCount)
}

// members prints an audience's members with the keys of its lowest
// entity.
func (d *demo) members(store *diff.Store, a *dsl.Audience) error {
	var lines []string
	lowest := ""
	if a.Primary != nil {
		lowest = a.Primary.Steps[len(a.Primary.Steps)-1].Entity.Name
	}
	err := store.Members(a.Name, func(m diff.Member) error {
		var keys []string
		for _, c := range m.Chains {
			if k := c[len(c)-1]; k != nil && !slices.Contains(keys, *k) {
				keys = append(keys, *k)
			}
		}
		line := m.Profile
		if len(keys) > 0 {
			line += fmt.Sprintf(" (%s %s)", lowest, strings.Join(keys, ", "))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		lines = []string{"none"}
	}
	d.printf("  %-20s %s\n", a.Name, strings.Join(lines, "; "))
	return nil
}

// event is what the demo shows of a Segment event.
type event struct {
	Type       string         `json:"type"`
	Event      string         `json:"event"`
	UserID     string         `json:"userId"`
	MessageID  string         `json:"messageId"`
	Time       string         `json:"timestamp"`
	Properties map[string]any `json:"properties"`
	Traits     map[string]any `json:"traits"`
}

// timeOfDay is the event's time of day (the cycle's start).
func (ev *event) timeOfDay() string {
	if len(ev.Time) >= 16 {
		return ev.Time[11:16]
	}
	return ev.Time
}

// describe is one line: the event, the profile, and what it is about.
func (ev *event) describe() string {
	var about string
	switch {
	case ev.Traits != nil:
		var parts []string
		for k, v := range ev.Traits {
			parts = append(parts, fmt.Sprintf("trait %s = %v", k, v))
		}
		slices.Sort(parts)
		about = strings.Join(parts, ", ")
	default:
		about = fmt.Sprint(ev.Properties["audience_key"])
		if ctx, ok := ev.Properties["_entity_context"].(map[string]any); ok {
			about += ": " + entityPath(ctx)
		}
		if r, ok := ev.Properties["reason"].(string); ok {
			about += " — " + r
		}
	}
	name := ev.Event
	if ev.Type == "identify" {
		name = "Membership Changed (identify)"
	}
	return fmt.Sprintf("%-29s %-4s %s", name, ev.UserID, about)
}

// entityPath renders _entity_context as "account a1 > credit_card c1
// (balance Outstanding, …)".
func entityPath(ctx map[string]any) string {
	var parts []string
	for len(ctx) == 1 {
		var name string
		var obj map[string]any
		for k, v := range ctx {
			name = k
			obj, _ = v.(map[string]any)
		}
		if obj == nil {
			break
		}
		part := fmt.Sprintf("%s %v", name, obj["id"])
		var next map[string]any
		var attrs []string
		for k, v := range obj {
			switch sub := v.(type) {
			case map[string]any:
				next = map[string]any{k: sub}
			default:
				if k != "id" {
					if v == nil {
						v = "null"
					}
					attrs = append(attrs, fmt.Sprintf("%s %v", k, v))
				}
			}
		}
		slices.Sort(attrs)
		if len(attrs) > 0 {
			part += " (" + strings.Join(attrs, ", ") + ")"
		}
		parts = append(parts, part)
		ctx = next
	}
	return strings.Join(parts, " > ")
}

// fileEvents prints the lines events.jsonl gained, and the first in full
// when full is set.
func (d *demo) fileEvents(full bool) error {
	f, err := os.Open(filepath.Join(d.dir, "events.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		d.printf("  file events.jsonl: none\n")
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(d.fileOffset, io.SeekStart); err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	d.fileOffset += int64(len(b))
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var first []byte
	n := 0
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("demo: events.jsonl: %w", err)
		}
		if first == nil {
			first = bytes.Clone(sc.Bytes())
		}
		n++
		d.printf("  file   %s\n", ev.describe())
	}
	if n == 0 {
		d.printf("  file   none\n")
	}
	if full && first != nil {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, first, "    ", "  "); err != nil {
			return err
		}
		d.printf("  The first of them as written to events.jsonl (Segment-spec JSON; a redelivery\n  carries the same messageId):\n    %s\n", pretty.String())
	}
	return sc.Err()
}

// kafkaEvents consumes the want records the last delivery produced and
// prints them by key (per-profile order is what Kafka keeps).
func (d *demo) kafkaEvents(ctx context.Context, want int) error {
	type rec struct {
		key    string
		offset int64
		part   int32
		ev     event
		header string
	}
	var recs []rec
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for len(recs) < want {
		fs := d.kafka.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("demo: waiting for %d Kafka records, got %d: %w", want, len(recs), err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return fmt.Errorf("demo: consuming %s: %v", kafkaTopic, errs[0].Err)
		}
		for _, r := range fs.Records() {
			var ev event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				return fmt.Errorf("demo: a Kafka record is not an event: %w", err)
			}
			var hdr []string
			for _, h := range r.Headers {
				if h.Key != "message_id" {
					hdr = append(hdr, h.Key+"="+string(h.Value))
				}
			}
			recs = append(recs, rec{key: string(r.Key), offset: r.Offset, part: r.Partition, ev: ev, header: strings.Join(hdr, " ")})
		}
	}
	slices.SortFunc(recs, func(a, b rec) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.offset, b.offset))
	})
	if len(recs) == 0 {
		d.printf("  kafka  none\n")
	}
	for _, r := range recs {
		d.printf("  kafka  %s  [key %s, headers %s]\n", r.ev.describe(), r.key, r.header)
	}
	return nil
}

// matchLine is the audience's condition as written, on one line.
func matchLine(ws *dsl.Workspace, a *dsl.Audience) string {
	var r dsl.Range
	switch c := a.Match.(type) {
	case *dsl.And:
		r = c.Range
	case *dsl.Or:
		r = c.Range
	case *dsl.Not:
		r = c.Range
	case *dsl.Path:
		r = c.Range
	case *dsl.Trait:
		r = c.Range
	case *dsl.InAudience:
		r = c.Range
	case *dsl.Performed:
		r = c.Range
	}
	src := dsl.Sources(ws.Files)[r.Filename()]
	if r.End.Offset > len(src) || r.Start.Offset >= r.End.Offset {
		return ""
	}
	return "match " + strings.Join(strings.Fields(string(src[r.Start.Offset:r.End.Offset])), " ")
}
