package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// linkaudBin is the binary under test, built once by TestMain: CLI tests
// run the real program as a subprocess, as users do.
var linkaudBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "linkaud-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	linkaudBin = filepath.Join(dir, "linkaud")
	build := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", linkaudBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building linkaud:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestCLI runs the data-driven CLI scripts in testdata/cli. Each script runs
// in a fresh directory. Commands:
//
//	file path=REL        writes the input to REL (directories are created)
//	copy from=REPO to=REL copies a file or directory of the repository
//	linkaud ARGS...      runs the binary; output is stdout, stderr (prefixed
//	                     "stderr: ") and the exit code. The temp dir is
//	                     replaced by $TMP.
func TestCLI(t *testing.T) {
	datadriven.Walk(t, "testdata/cli", func(t *testing.T, path string) {
		dir := t.TempDir()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "file":
				var rel string
				d.ScanArgs(t, "path", &rel)
				p := filepath.Join(dir, rel)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(d.Input+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return ""
			case "copy":
				var from, to string
				d.ScanArgs(t, "from", &from)
				d.ScanArgs(t, "to", &to)
				if err := os.CopyFS(filepath.Join(dir, to), os.DirFS(filepath.Join("..", "..", from))); err != nil {
					t.Fatal(err)
				}
				return ""
			case "linkaud":
				var args []string
				for _, a := range d.CmdArgs {
					args = append(args, a.String())
				}
				return runCLI(t, dir, args...)
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

func runCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(linkaudBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(stdout.String())
	for _, line := range strings.SplitAfter(stderr.String(), "\n") {
		if line != "" {
			b.WriteString("stderr: " + line)
		}
	}
	if !strings.HasSuffix(b.String(), "\n") && b.Len() > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "exit %d\n", code)
	return strings.ReplaceAll(b.String(), dir, "$TMP")
}
