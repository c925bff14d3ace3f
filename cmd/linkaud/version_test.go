package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// --version names the module version, commit and build time the Makefile
// passes with -ldflags, and the Go and DuckDB versions, one per line.
func TestVersion(t *testing.T) {
	out, err := exec.Command(linkaudBin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("linkaud --version: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^linkaud ` + regexp.QuoteMeta(testVersion) + `$`),
		regexp.MustCompile(`(?m)^  commit +` + testCommit + `$`),
		regexp.MustCompile(`(?m)^  built +` + testBuildTime + `$`),
		regexp.MustCompile(`(?m)^  go +` + regexp.QuoteMeta(runtime.Version()) + ` ` + runtime.GOOS + `/` + runtime.GOARCH + `$`),
		regexp.MustCompile(`(?m)^  duckdb +v1\.\d+\.\d+ \(duckdb-go-bindings v[0-9.]+\)$`),
		regexp.MustCompile(`(?m)^  tags +duckdb_arrow$`),
	} {
		if !want.Match(out) {
			t.Errorf("--version output lacks %s:\n%s", want, out)
		}
	}
}

// Completion: the shell runs the binary with COMP_LINE set and offers
// what it prints, from the CLI's own model.
func TestCompletion(t *testing.T) {
	ws := t.TempDir()
	if err := os.CopyFS(ws, os.DirFS(filepath.Join("..", "..", "testdata", "seed"))); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) []string {
		t.Helper()
		cmd := exec.Command(linkaudBin)
		cmd.Dir = filepath.Dir(ws)
		cmd.Env = append(os.Environ(), "COMP_LINE="+line)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("COMP_LINE=%q: %v", line, err)
		}
		words := strings.Fields(string(out))
		slices.Sort(words)
		return words
	}
	base := filepath.Base(ws)
	for _, c := range []struct {
		line string
		want []string
	}{
		{"linkaud pre", []string{"preview"}},
		{"linkaud completion ", []string{"bash", "fish", "zsh"}},
		{"linkaud graph " + base + " --format ", []string{"dot", "mermaid"}},
		{"linkaud preview " + base + " --audience ", []string{"outstanding_balance", "platinum_cat_owners", "premium_heavy_users"}},
		{"linkaud audiences " + base + " ", []string{"disable", "enable", "list", "purge", "runs", "status"}},
		{"linkaud audiences " + base + " status pla", []string{"platinum_cat_owners"}},
		{"linkaud deadletters " + base + " ", []string{"drop", "list", "move", "retry"}},
		{"linkaud state " + base + " ", []string{"backup", "export", "move", "restore", "verify"}},
		{"linkaud outbox " + base + " ", []string{"drop", "list", "move"}},
	} {
		if got := complete(c.line); !slices.Equal(got, c.want) {
			t.Errorf("COMP_LINE=%q: got %q, want %q", c.line, got, c.want)
		}
	}
	if got := complete("linkaud run " + base + " --"); !slices.Contains(got, "--deliver-only") || !slices.Contains(got, "--version") {
		t.Errorf("run flags: %q", got)
	}

	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, err := exec.Command(linkaudBin, "completion", shell).Output()
		if err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		if !strings.Contains(string(out), "'"+linkaudBin+"'") {
			t.Errorf("completion %s does not call the binary:\n%s", shell, out)
		}
	}
	// bash takes the script: it registers linkaud's completion.
	if bash, err := exec.LookPath("bash"); err == nil {
		script := `source <("$1" completion bash) && complete -p linkaud`
		out, err := exec.Command(bash, "-c", script, "bash", linkaudBin).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-C '"+linkaudBin+"' linkaud") {
			t.Errorf("bash did not register the completion: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command(linkaudBin, "completion", "tcsh").CombinedOutput(); err == nil {
		t.Errorf("completion tcsh: want an error, got\n%s", out)
	}
}
