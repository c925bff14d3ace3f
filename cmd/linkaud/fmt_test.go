package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFmtRewrites checks what fmt writes, which the CLI script cannot show:
// the canonical text, with the file's permissions kept.
func TestFmtRewrites(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.la")
	src := "# header\naudience a { match trait x = 1   # why\n  and trait y = 2 }\n"
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runCLI(t, dir, "fmt", ".")
	if out != "a.la\nexit 0\n" {
		t.Fatalf("fmt printed %q", out)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := "# header\naudience a {\n  # why\n  match trait x = 1 and trait y = 2\n}\n"
	if string(got) != want {
		t.Errorf("fmt wrote\n%s\nwant\n%s", got, want)
	}
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("fmt left files behind: %v", entries)
	}
}
