package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/diff"
)

// Pebble lets one process open a state directory. While another holds it
// (a worker), the state commands fail with exit 1 and say what to do
// instead of showing Pebble's lock error alone.
func TestStateLocked(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "ws"), os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	// This test process plays the worker: it holds the state open.
	store, err := diff.Open(filepath.Join(dir, "ws", ".linkaud"), diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// (Read-only commands read a snapshot meanwhile: see
	// TestReadOnlyCommandsWhileHeld.)
	for _, args := range [][]string{
		{"audiences", "ws", "enable", "outstanding_balance"},
		{"deadletters", "ws", "retry"},
		{"run", "ws"},
	} {
		out := runCLI(t, dir, args...)
		if !strings.HasSuffix(out, "exit 1\n") || !strings.Contains(out, "the state directory is in use by another linkaud process") {
			t.Errorf("linkaud %s:\n%s", strings.Join(args, " "), out)
		}
	}
	store.Close()
	if out := runCLI(t, dir, "audiences", "ws", "enable", "outstanding_balance"); !strings.HasSuffix(out, "exit 0\n") {
		t.Errorf("after the lock was released:\n%s", out)
	}
}
