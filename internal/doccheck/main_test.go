package doccheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// root is the repository root; linkaudBin the binary console blocks run,
// built once by TestMain as users build it.
var (
	root       = filepath.Join("..", "..")
	linkaudBin string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "linkaud-doccheck")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	linkaudBin = filepath.Join(dir, "linkaud")
	build := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", linkaudBin, "../../cmd/linkaud")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building linkaud:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func pages(t *testing.T) []*Page {
	t.Helper()
	ps, err := Pages(root)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}
