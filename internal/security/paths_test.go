package security

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
)

// pathCase is a workspace file whose `load` or `file` path is tried with
// `linkaud check` and `linkaud run`.
type pathCase struct {
	name string
	// setup prepares links inside the workspace ws pointing to outside;
	// it may be nil.
	setup func(t *testing.T, ws, outside string)
	// la is the extra .la file; OUTSIDE stands for the outside directory.
	la string
	// diag is the diagnostic `check` must print (a regexp), "" for none.
	diag string
}

const pathsActivation = `activation to_audit { audience platinum_cat_owners  destination audit  event audience_entered  send_current true }` + "\n"

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

var pathCases = []pathCase{
	{
		name: "load_parent",
		la:   `warehouse { load "HOME.PETS" from "../outside/pets.csv"`,
		diag: `^paths\.la:1:35: load path "\.\./outside/pets\.csv" leaves the workspace directory`,
	},
	{
		name: "load_dotdot_inside_path",
		la:   `warehouse { load "HOME.PETS" from "data/../../outside/pets.csv"`,
		diag: `^paths\.la:1:35: load path "data/\.\./\.\./outside/pets\.csv" leaves the workspace directory`,
	},
	{
		name: "load_symlinked_file",
		setup: func(t *testing.T, ws, out string) {
			symlink(t, filepath.Join(out, "pets.csv"), filepath.Join(ws, "data", "link.csv"))
		},
		la:   `warehouse { load "HOME.PETS" from "data/link.csv"`,
		diag: `^paths\.la:1:35: load path "data/link\.csv" leads outside the workspace directory through a symbolic link`,
	},
	{
		name:  "load_symlinked_dir",
		setup: func(t *testing.T, ws, out string) { symlink(t, out, filepath.Join(ws, "shared")) },
		la:    `warehouse { load "HOME.PETS" from "shared/pets.csv"`,
		diag:  `^paths\.la:1:35: load path "shared/pets\.csv" leads outside the workspace directory through a symbolic link`,
	},
	{
		name: "load_glob_matching_a_link",
		setup: func(t *testing.T, ws, out string) {
			symlink(t, filepath.Join(out, "pets.csv"), filepath.Join(ws, "pets", "b.csv"))
		},
		la:   `warehouse { load "HOME.PETS" from "pets/*.csv"`,
		diag: `^paths\.la:1:35: load path "pets/\*\.csv" leads outside the workspace directory through a symbolic link`,
	},
	{
		name: "load_absolute",
		la:   `warehouse { load "HOME.PETS" from "OUTSIDE/pets.csv"`,
	},
	{
		name: "file_parent",
		la:   `destination audit { type file  path "../outside/events.jsonl" }` + "\n" + pathsActivation,
		diag: `^paths\.la:1:37: file path "\.\./outside/events\.jsonl" leaves the workspace directory`,
	},
	{
		name: "file_dotdot_inside_path",
		la:   `destination audit { type file  path "logs/../../outside/events.jsonl" }` + "\n" + pathsActivation,
		diag: `^paths\.la:1:37: file path "logs/\.\./\.\./outside/events\.jsonl" leaves the workspace directory`,
	},
	{
		name:  "file_symlinked_dir",
		setup: func(t *testing.T, ws, out string) { symlink(t, out, filepath.Join(ws, "logs")) },
		la:    `destination audit { type file  path "logs/events.jsonl" }` + "\n" + pathsActivation,
		diag:  `^paths\.la:1:37: file path "logs/events\.jsonl" leads outside the workspace directory through a symbolic link`,
	},
	{
		// Appending through a dangling link would create its target.
		name: "file_dangling_link",
		setup: func(t *testing.T, ws, out string) {
			symlink(t, filepath.Join(out, "new.jsonl"), filepath.Join(ws, "events.jsonl"))
		},
		la:   `destination audit { type file  path "events.jsonl" }` + "\n" + pathsActivation,
		diag: `^paths\.la:1:37: file path "events\.jsonl" leads outside the workspace directory through a symbolic link`,
	},
	{
		name: "file_absolute",
		la:   `destination audit { type file  path "OUTSIDE/events.jsonl" }` + "\n" + pathsActivation,
	},
	{
		name:  "file_link_inside",
		setup: func(t *testing.T, ws, _ string) { symlink(t, "data", filepath.Join(ws, "alias")) },
		la:    `destination audit { type file  path "alias/../events.jsonl" }` + "\n" + pathsActivation,
	},
}

// TestWorkspacePaths checks that `load` and file destination paths stay
// inside the workspace unless given as absolute paths: a relative path
// leaving it (../, a/../../, a symbolic link to outside, a dangling one, a
// glob matching one) is a file:line:col diagnostic of `linkaud check` and
// refused by `linkaud run` (exit 1, nothing read or written outside); an
// absolute path outside, and a link staying inside, work.
func TestWorkspacePaths(t *testing.T) {
	checks := 0
	for _, tc := range pathCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ws, outside := filepath.Join(dir, "ws"), filepath.Join(dir, "outside")
			if err := os.CopyFS(ws, os.DirFS("../../testdata/seed")); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			pets, err := os.ReadFile(filepath.Join(ws, "data", "pets.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "pets.csv"), pets, 0o644); err != nil {
				t.Fatal(err)
			}
			la := strings.ReplaceAll(tc.la, "OUTSIDE", outside)
			if strings.HasPrefix(la, "warehouse") {
				// The case's load of HOME.PETS, on line 1, replaces the
				// seed's; the seed's other loads follow.
				wh, err := os.ReadFile(filepath.Join(ws, "warehouse.la"))
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(string(wh), "\n") {
					if strings.Contains(line, "load ") && !strings.Contains(line, "HOME.PETS") {
						la += "\n" + line
					}
				}
				la += "\n}\n"
				if err := os.Remove(filepath.Join(ws, "warehouse.la")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				tc.setup(t, ws, outside)
			}
			if err := os.WriteFile(filepath.Join(ws, "paths.la"), []byte(la), 0o644); err != nil {
				t.Fatal(err)
			}
			before := listDir(t, outside)

			checks++
			r := run(t, ws, nil, "check", ".")
			if tc.diag == "" {
				if r.code != 0 {
					t.Fatalf("check should pass:\n%s", r)
				}
			} else {
				if r.code != 1 || !regexp.MustCompile(`(?m)`+tc.diag).MatchString(r.stderr) {
					t.Errorf("check should exit 1 with %s:\n%s", tc.diag, r)
				}
				if !strings.Contains(r.stderr, "^") {
					t.Errorf("the diagnostic shows no caret under the path:\n%s", r)
				}
			}

			checks++
			if r := run(t, ws, nil, "audiences", ".", "enable", "platinum_cat_owners"); r.code != 0 && tc.diag == "" {
				t.Fatalf("%s", r)
			}
			r = run(t, ws, nil, "run", ".", "--now", "2026-03-15T12:00:00Z", "--log-level", "error")
			if tc.diag != "" {
				if r.code != 1 {
					t.Errorf("run should refuse the workspace with exit 1:\n%s", r)
				}
				if after := listDir(t, outside); after != before {
					t.Errorf("run changed the outside directory: %q, was %q", after, before)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("run should work:\n%s", r)
			}
			if strings.HasPrefix(tc.name, "file_absolute") {
				if b, err := os.ReadFile(filepath.Join(outside, "events.jsonl")); err != nil || !strings.Contains(string(b), "Audience Entered") {
					t.Errorf("an absolute file path outside the workspace receives no events: %v", err)
				}
			}
		})
	}
	t.Logf("paths: %d cases, %d checks (check and run)", len(pathCases), checks)
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, "\n")
}

// TestFileDestinationRefusedAtOpen checks the run-time side of the rule in
// sinks.Open, for what changed on disk after the check (a link made later)
// or a destination built without the checker: an escaping relative path
// is an error naming the destination and the setting, and nothing is
// created outside.
func TestFileDestinationRefusedAtOpen(t *testing.T) {
	dir := t.TempDir()
	ws, outside := filepath.Join(dir, "ws"), filepath.Join(dir, "outside")
	for _, d := range []string{ws, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	symlink(t, outside, filepath.Join(ws, "logs"))
	symlink(t, filepath.Join(outside, "new.jsonl"), filepath.Join(ws, "dangling.jsonl"))
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(cwd, ws)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		ok   bool
	}{
		{"../outside/e.jsonl", false},
		{"a/../../outside/e.jsonl", false},
		{"logs/e.jsonl", false},
		{"logs/sub/e.jsonl", false},
		{"dangling.jsonl", false},
		{"events.jsonl", true},
		{"out/../events.jsonl", true},
		{filepath.Join(outside, "abs.jsonl"), true},
	}
	for i := 0; i < 2*len(cases); i++ {
		tc := cases[i/2]
		d := &dsl.Destination{Name: "audit", Type: "file", Settings: map[string]dsl.Setting{"path": {Text: tc.path}}}
		// Alternate an absolute and a relative workspace directory.
		wsDir := ws
		if i%2 == 1 {
			wsDir = rel
		}
		dest, err := sinks.Open(d, sinks.OpenOptions{Dir: wsDir})
		if tc.ok {
			if err != nil {
				t.Errorf("path %q: %v", tc.path, err)
				continue
			}
			dest.Close()
			continue
		}
		if err == nil {
			dest.Close()
			t.Errorf("path %q: opened, want refused", tc.path)
			continue
		}
		if !strings.Contains(err.Error(), "destination audit: path:") || !strings.Contains(err.Error(), "outside the workspace") && !strings.Contains(err.Error(), "leaves the workspace") {
			t.Errorf("path %q: error %q does not say why", tc.path, err)
		}
	}
	if got := listDir(t, outside); got != outside {
		t.Errorf("opening refused destinations created %q", got)
	}
}

// TestExistingWorkspacesStillPass: the path rule leaves the repository's
// workspaces, a generated one, the demo, and a workspace reached through a
// symbolic link to its directory working.
func TestExistingWorkspacesStillPass(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, dir, nil, "gen", "--profiles", "30", "--out", "gen"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if err := os.CopyFS(filepath.Join(dir, "seed"), os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(dir, "seed"), filepath.Join(dir, "seed-link"))
	for _, ws := range []string{"../../testdata/seed", "../../testdata/workspaces/design", filepath.Join(dir, "gen"), filepath.Join(dir, "seed-link")} {
		if r := run(t, ".", nil, "check", ws); r.code != 0 {
			t.Errorf("%s", r)
		}
	}
	if r := run(t, dir, nil, "audiences", "seed-link", "enable", "platinum_cat_owners"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if r := run(t, dir, nil, "run", "seed-link", "--log-level", "error"); r.code != 0 {
		t.Errorf("a run through a linked workspace directory: %s", r)
	}
	if r := run(t, dir, nil, "demo"); r.code != 0 {
		t.Errorf("%s", r)
	}
}
