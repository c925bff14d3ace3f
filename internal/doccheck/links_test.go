package doccheck

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// Every relative link of README.md and docs/ resolves: the file or
// directory exists in the repository, and a #fragment names a heading of
// the page.
func TestLinks(t *testing.T) {
	byPath := map[string]*Page{}
	ps := pages(t)
	for _, p := range ps {
		byPath[p.Path] = p
	}
	resolved := 0
	for _, p := range ps {
		for _, l := range p.Links {
			if u, err := url.Parse(l.Target); err == nil && u.Scheme != "" {
				continue // http(s), mailto: not checked here
			}
			target, frag, _ := strings.Cut(l.Target, "#")
			target, _ = url.PathUnescape(target)
			rel := p.Path
			if target != "" {
				rel = path.Clean(path.Join(path.Dir(p.Path), target))
				if rel == ".." || strings.HasPrefix(rel, "../") {
					t.Errorf("%s:%d: %s leaves the repository (links must work in a clone)", p.Path, l.Line, l.Target)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
					t.Errorf("%s:%d: %s: no such file in the repository", p.Path, l.Line, l.Target)
					continue
				}
			}
			if frag != "" {
				tp := byPath[rel]
				if tp == nil && strings.HasSuffix(rel, ".md") {
					var err error
					if tp, err = ParsePage(root, rel); err != nil {
						t.Errorf("%s:%d: %v", p.Path, l.Line, err)
						continue
					}
				}
				if tp == nil || !tp.Anchors[frag] {
					t.Errorf("%s:%d: %s: no heading #%s in %s", p.Path, l.Line, l.Target, frag, rel)
					continue
				}
			}
			resolved++
		}
	}
	t.Logf("%d relative links resolved in %d pages", resolved, len(ps))
	if resolved == 0 {
		t.Fatal("no relative link found: the parser is broken")
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"The worker":                   "the-worker",
		"`in audience NAME`":           "in-audience-name",
		"Paths, bottom up.":            "paths-bottom-up",
		"HTTP API (`/audiences`)":      "http-api-audiences",
		"at least / at most / exactly": "at-least--at-most--exactly",
		"[DuckDB](duckdb.md) and more": "duckdb-and-more",
		"send_current":                 "send_current",
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}
