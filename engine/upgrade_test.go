package engine

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// untar extracts a .tar.gz of testdata into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(z)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

var messageIDs = regexp.MustCompile(`"messageId":"(la-[0-9a-f]+)"`)

// TestUpgradeFromMainState opens a state directory written by linkaud
// before entity events were per (profile, entity) — testdata/
// state-eb68a96.tar.gz, made by the binary of commit eb68a96 with `linkaud
// run` on the workspace inside it: traveller t1 has product p1 on two
// wishlists, so that version sent two Entity Added for p1, and the
// webhook was down, so its two Audience Entered are still in the outbox.
// The stored rows are what they were (every chain), so the upgrade needs
// no rewrite of the state: the first cycle after it re-sends nothing for
// the pairs that did not change, sends what did change, delivers the old
// version's pending events as they were; then losing one of p1's chains
// sends nothing and losing the other one Entity Removed.
func TestUpgradeFromMainState(t *testing.T) {
	dir := t.TempDir()
	untar(t, "testdata/state-eb68a96.tar.gz", dir)
	var mu sync.Mutex
	var hooked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		for _, m := range messageIDs.FindAllStringSubmatch(string(b), -1) {
			hooked = append(hooked, m[1])
		}
		mu.Unlock()
	}))
	defer srv.Close()
	t.Setenv("HOOK_URL", srv.URL)
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	now := time.Date(2026, 3, 15, 13, 0, 0, 0, time.UTC)
	e, err := Open(context.Background(), ws, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	pending, err := e.Store().Pending("hook", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var oldIDs []string
	for _, m := range pending {
		oldIDs = append(oldIDs, m.ID)
	}
	if len(oldIDs) != 2 {
		t.Fatalf("the fixture's outbox holds %d events for hook, want its 2 Audience Entered", len(oldIDs))
	}
	jsonl := filepath.Join(dir, "events.jsonl")
	old := readLines(t, jsonl)
	if len(old) != 4 {
		t.Fatalf("the fixture's events.jsonl has %d lines, want the old version's 4 Entity Added", len(old))
	}
	run := func(files map[string]string) []string {
		t.Helper()
		writeFiles(t, dir, files)
		now = now.Add(time.Hour)
		rep, err := e.RunOnce(ctx, RunOptions{})
		if err != nil || rep.Err() != nil {
			t.Fatal(err, rep.Err())
		}
		lines := readLines(t, jsonl)
		added := lines[len(old):]
		old = lines
		return added
	}

	// t3's lamp is back in stock; nothing else changed.
	got := run(map[string]string{"products.csv": "id,name,stock\np1,Tent,4\np2,Stove,2\np3,Lamp,5\np9,Kayak,1\n"})
	if len(got) != 1 || !strings.Contains(got[0], `"event":"Entity Added","userId":"t3"`) || !strings.Contains(got[0], `"id":"p3"`) {
		t.Fatalf("the first cycle after the upgrade wrote:\n%s\nwant only t3's Entity Added p3", strings.Join(got, "\n"))
	}
	mu.Lock()
	if len(hooked) != 3 || !slices.Equal(hooked[:2], oldIDs) {
		t.Errorf("the webhook got %v, want the old version's pending %v and t3's Audience Entered", hooked, oldIDs)
	}
	mu.Unlock()

	// One of the two junction rows of p1 goes: p1 is still on w2.
	got = run(map[string]string{"wishlist_items.csv": "wishlist_id,product_id\nw1,p9\nw2,p1\nw3,p2\nw3,p2\nw4,p3\n"})
	if len(got) != 0 {
		t.Fatalf("losing one of two chains to p1 sent:\n%s", strings.Join(got, "\n"))
	}

	// The other goes: one Entity Removed, t1 still in through p9, p1 still
	// in the product table.
	got = run(map[string]string{"wishlist_items.csv": "wishlist_id,product_id\nw1,p9\nw3,p2\nw3,p2\nw4,p3\n"})
	if len(got) != 1 {
		t.Fatalf("losing the last chain to p1 sent:\n%s", strings.Join(got, "\n"))
	}
	var ev struct {
		Event, UserID string
		Properties    struct {
			Reason        string                    `json:"reason"`
			EntityValues  string                    `json:"entity_values"`
			EntityContext map[string]map[string]any `json:"_entity_context"`
		}
	}
	if err := json.Unmarshal([]byte(got[0]), &ev); err != nil {
		t.Fatal(err)
	}
	p, _ := ev.Properties.EntityContext["wishlist"]["product"].(map[string]any)
	if ev.Event != "Entity Removed" || ev.UserID != "t1" || ev.Properties.Reason != "no_longer_matches" ||
		ev.Properties.EntityValues != "current" || p["id"] != "p1" || p["stock"] != float64(4) {
		t.Fatalf("the removal of p1: %s", got[0])
	}
}
