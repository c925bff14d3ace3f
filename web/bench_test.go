package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// A console over a workspace of many audiences and one large one, its
// state on an in-memory file system, filled through the differ as cycles
// would (no warehouse: the rows are made here).

const benchRunsEach = 10

type bigConsole struct {
	h     http.Handler
	ws    *dsl.Workspace
	store *diff.Store
}

func buildBigConsole(tb testing.TB, audiences, bigMembers int) *bigConsole {
	tb.Helper()
	dir := tb.TempDir()
	var src strings.Builder
	src.WriteString(`warehouse { load "A.PROFILES" from "profiles.csv" load "A.ACCOUNTS" from "accounts.csv" }
graph {
  profile { table "A.PROFILES" key segment_id }
  entity account { table "A.ACCOUNTS" key id }
  relationship profile -> account on profile.segment_id = account.owner
}
audience big {
  description "Every profile with an account"
  match profile -> account
  alert size_change > 20%
}
`)
	for i := range audiences {
		fmt.Fprintf(&src, "audience a%04d {\n  schedule every 1h\n  match trait plan = \"p%d\"\n}\n", i, i%7)
	}
	for name, body := range map[string]string{
		"ws.la": src.String(), "profiles.csv": "segment_id,plan\n", "accounts.csv": "id,owner\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		tb.Fatal(diags)
	}
	store, err := diff.Open("state", diff.Options{FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, a := range ws.Audiences {
		if err := store.Enable(a.Name); err != nil {
			tb.Fatal(err)
		}
		runs, members := benchRunsEach, 0
		if a.Name == "big" {
			runs, members = 2, bigMembers
		}
		for r := range runs {
			n := members
			if a.Name != "big" {
				n = 3 + (r*7+len(a.Name))%5
			}
			cycleRows(tb, store, a, n, t0.Add(time.Duration(r)*time.Hour))
		}
	}
	// Let the compactions the cycles started finish, so that the pages are
	// timed on their own.
	if err := store.Flush(); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); store.Metrics().Compact.NumInProgress > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	return &bigConsole{h: NewReadOnly(fixedState{ws, store}, Options{}), ws: ws, store: store}
}

// cycleRows runs one cycle of a with n members (and, with a path, an
// account each).
func cycleRows(tb testing.TB, s *diff.Store, a *dsl.Audience, n int, start time.Time) {
	tb.Helper()
	l := diff.LayoutOf(a)
	fields := []arrow.Field{{Name: "profile_key", Type: arrow.BinaryTypes.String}}
	for i := range l.Steps {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("key_%d", i), Type: arrow.BinaryTypes.String, Nullable: true})
	}
	schema := arrow.NewSchema(fields, nil)
	var recs []arrow.RecordBatch
	const batch = 64 << 10
	for from := 0; from < n; from += batch {
		rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		for i := from; i < min(n, from+batch); i++ {
			id := fmt.Sprintf("u%07d", i)
			rb.Field(0).(*array.StringBuilder).Append(id)
			if len(l.Steps) > 0 {
				rb.Field(1).(*array.StringBuilder).Append("a" + id)
			}
		}
		recs = append(recs, rb.NewRecordBatch())
		rb.Release()
	}
	rr, err := array.NewRecordReader(schema, recs)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		r.Release()
	}
	defer rr.Release()
	if _, err := s.Cycle(context.Background(), diff.CycleInput{Audience: a, Layout: l, Rows: rr, Start: start}); err != nil {
		tb.Fatal(err)
	}
}

func (c *bigConsole) get(tb testing.TB, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String()[:min(rec.Body.Len(), 300)])
	}
	return rec
}

var (
	benchOnce    sync.Once
	benchConsole *bigConsole
)

// BenchmarkConsolePages measures the server time of each page with 1,000
// audiences (10 runs each) and one audience of 1,000,000 members.
func BenchmarkConsolePages(b *testing.B) {
	benchOnce.Do(func() {
		began := time.Now()
		benchConsole = buildBigConsole(b, 1000, 1_000_000)
		b.Logf("state built in %s", time.Since(began).Round(time.Millisecond))
	})
	c := benchConsole
	for _, p := range []struct{ name, path string }{
		{"audiences_1001", "/"},
		{"audience_1M", "/audience/big"},
		{"audience_small", "/audience/a0500"},
		{"members_1M_first", "/audience/big/members"},
		{"members_1M_middle", "/audience/big/members?after=u0500000"},
		{"members_1M_search", "/audience/big/members?q=u09999"},
		{"deliveries", "/deliveries"},
		{"history_json", "/audiences/big/history"},
	} {
		b.Run(p.name, func(b *testing.B) {
			var bytes int
			for b.Loop() {
				bytes = c.get(b, p.path).Body.Len()
			}
			b.ReportMetric(float64(bytes), "page-bytes")
		})
	}
}

// TestMembersPageDoesNotLoadAll: a members page costs the same on an
// audience of 10k members and on one of 200k (allocations per page, which
// loading every member would multiply by twenty), and shows 50.
func TestMembersPageDoesNotLoadAll(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an audience of 200k members")
	}
	allocs := map[int]float64{}
	for _, n := range []int{10_000, 200_000} {
		c := buildBigConsole(t, 1, n)
		body := c.get(t, "/audience/big/members?after=u0005000").Body.String()
		if got := strings.Count(body, "<tr data-profile="); got != MembersPageSize {
			t.Fatalf("%d members: the page shows %d, want %d", n, got, MembersPageSize)
		}
		if !strings.Contains(body, `data-profile="u0005001"`) || !strings.Contains(body, "after=u0005050") {
			t.Fatalf("%d members: the page after u0005000 does not start at u0005001 or link to the next", n)
		}
		allocs[n] = testing.AllocsPerRun(5, func() { c.get(t, "/audience/big/members?after=u0005000") })
	}
	t.Logf("allocations per members page: %.0f at 10k members, %.0f at 200k", allocs[10_000], allocs[200_000])
	if allocs[200_000] > allocs[10_000]*1.2+50 {
		t.Fatalf("a members page allocates %.0f times at 200k members, %.0f at 10k: it grows with the audience", allocs[200_000], allocs[10_000])
	}
}
