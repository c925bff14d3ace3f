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

func TestFmtFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "shared", "a.la")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("state   \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(ws, "a.la")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if out := runCLI(t, dir, "fmt", "ws"); out != "ws/a.la\nexit 0\n" {
		t.Fatalf("fmt printed %q", out)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	if got, _ := os.ReadFile(target); string(got) != "state \"x\"\n" {
		t.Fatalf("target holds %q", got)
	}
}
