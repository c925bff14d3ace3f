package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/internal/pgtest"
)

// The demo's story, checked on what was delivered rather than on how it is
// printed (the CLI test holds the printout): the file destination gets
// exactly these events, and the Kafka topic the cat campaign's.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	var out bytes.Buffer
	if err := Run(context.Background(), Options{Dir: dir, Out: &out}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.timeOfDay()+" "+ev.describe())
	}
	want := []string{
		"12:00 Entity Added                  ann  outstanding_balance: account a1 > credit_card c1 (balance Outstanding, due_date 2026-04-01)",
		"12:00 Entity Added                  ann  outstanding_balance: account a2 > credit_card c3 (balance Outstanding, due_date 2026-05-01)",
		"12:00 Entity Added                  eve  outstanding_balance: account a5 > credit_card c6 (balance Outstanding, due_date null)",
		"12:00 Membership Changed (identify) ann  trait platinum_cat_owners = true",
		"12:00 Membership Changed (identify) bob  trait platinum_cat_owners = true",
		"12:00 Audience Entered              ann  premium_heavy_users",
		"13:00 Entity Added                  bob  outstanding_balance: account a3 > credit_card c4 (balance Outstanding, due_date 2026-04-10)",
		"13:00 Entity Removed                ann  outstanding_balance: account a1 > credit_card c1 (balance Paid) — no_longer_matches",
		"13:00 Entity Removed                eve  outstanding_balance: account a5 > credit_card c6 (balance Paid) — profile_exited",
		"13:00 Membership Changed (identify) bob  trait platinum_cat_owners = false",
		"13:00 Membership Changed (identify) fay  trait platinum_cat_owners = true",
		"13:00 Audience Entered              bob  premium_heavy_users",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events.jsonl:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, line := range []string{
		"kafka  Audience Entered              ann  platinum_cat_owners",
		"kafka  Audience Entered              bob  platinum_cat_owners",
		"kafka  Audience Exited               bob  platinum_cat_owners",
		"kafka  Audience Entered              fay  platinum_cat_owners",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the output lacks %q:\n%s", line, out.String())
		}
	}

	// A second demo replaces the first and tells the same story.
	var again bytes.Buffer
	if err := Run(context.Background(), Options{Dir: dir, Out: &again}); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("the second demo's output differs:\n%s", again.String())
	}

	// A directory the demo did not make is left alone.
	mine := t.TempDir()
	if err := os.WriteFile(filepath.Join(mine, "notes"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), Options{Dir: mine, Out: &again}); !errors.Is(err, ErrDirInUse) {
		t.Errorf("a foreign directory: %v", err)
	}
}

// TestDemoPostgres runs the demo with its data set in PostgreSQL: the
// story (members, events, Kafka records) is the DuckDB demo's, line for
// line, but for the lines naming the warehouse; a second run replaces the
// demo's own schemas, and a database with a schema of that name the demo
// did not make is refused.
func TestDemoPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	t.Setenv("LINKAUD_DEMO_TEST_DSN", dsn)
	var duck, pg bytes.Buffer
	if err := Run(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "demo"), Out: &duck}); err != nil {
		t.Fatal(err)
	}
	opts := Options{Dir: filepath.Join(t.TempDir(), "demo"), Out: &pg, PostgresDSN: dsn, DSNEnv: "LINKAUD_DEMO_TEST_DSN"}
	for run := 1; run <= 2; run++ {
		pg.Reset()
		if err := Run(context.Background(), opts); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	// The lines naming the warehouse or the directory differ.
	strip := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, "DuckDB") && !strings.Contains(l, "PostgreSQL") && !strings.Contains(l, "bank.duckdb") && !strings.Contains(l, "/demo") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if got, want := strip(pg.String()), strip(duck.String()); got != want || !strings.Contains(got, "Entity Removed") {
		t.Errorf("the demo on PostgreSQL tells another story:\n%s\n---- DuckDB:\n%s", got, want)
	}
	c := pgtest.Connect(t, dsn)
	if _, err := c.Exec(context.Background(), "COMMENT ON SCHEMA bank IS 'our bank'"); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), opts); !errors.Is(err, ErrDirInUse) || !strings.Contains(err.Error(), "bank") {
		t.Errorf("a schema the demo did not make: %v", err)
	}
}
