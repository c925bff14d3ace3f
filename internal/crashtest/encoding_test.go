package crashtest

import (
	"bufio"
	"compress/gzip"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/clean-events.jsonl.gz from the clean run")

// cleanEvents holds every event of the clean run, one line each, sorted:
// the file destination's name and the bytes delivered. It was recorded by
// the linkaud of 3c3ad7d, which built each event's whole JSON at cycle time
// and stored it in the outbox; the outbox now stores what varies and
// renders the JSON at delivery, and a consumer must not see a byte change.
const cleanEvents = "testdata/clean-events.jsonl.gz"

// TestPayloadsUnchanged compares the clean run's events — every kind, the
// removals' looked-up values, changes, send_current — byte for byte with
// the recorded ones, messageIds included.
func TestPayloadsUnchanged(t *testing.T) {
	r := reference(t)
	got := slices.Sorted(maps.Values(r.events))
	if *rewrite {
		writeLines(t, cleanEvents, got)
		return
	}
	want := readLines(t, cleanEvents)
	if len(want) != len(got) {
		t.Errorf("the clean run delivered %d events; %d were recorded", len(got), len(want))
	}
	wantSet := map[string]bool{}
	for _, l := range want {
		wantSet[l] = true
	}
	diffs := 0
	for _, l := range got {
		if !wantSet[l] {
			if diffs++; diffs <= 5 {
				t.Errorf("delivered, not recorded:\n%s", l)
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d of %d delivered events differ from the recorded bytes (go test -run TestPayloadsUnchanged -rewrite ./internal/crashtest records them anew, for a change meant to show)", diffs, len(got))
	}
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if _, err := zw.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
