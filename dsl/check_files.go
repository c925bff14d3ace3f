package dsl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

func (c *checker) absPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.ws.Dir, p)
}

// localPath resolves a path that must stay inside the workspace unless
// written as an absolute path (see WorkspacePath), reporting at n.
func (c *checker) localPath(n grammar.Node, what, p string) (string, bool) {
	if p == "" {
		c.errorf(n, "%s is empty", what)
		return "", false
	}
	full, err := WorkspacePath(c.ws.Dir, p)
	if err != nil {
		c.errorf(n, "%s %v: write a path inside the workspace, or an absolute path", what, err)
		return "", false
	}
	return full, true
}

// WorkspacePath resolves p, a path written in a workspace rooted at dir.
// An absolute path is taken as given: the user named that place. A relative
// path must stay inside dir, both as written ("../x", "data/../../x") and
// through symbolic links: the deepest existing directory or file on its way
// (and, for a glob, each file it matches now) must resolve inside dir. So a
// workspace received from someone else cannot make linkaud read or write
// files beside it. A path that does not exist yet is checked as far as it
// exists; dir itself may be a symbolic link.
func WorkspacePath(dir, p string) (string, error) {
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("%q leaves the workspace directory", p)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	full := filepath.Join(dir, p)
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		// No directory to escape from (sources checked in memory).
		return full, nil
	}
	targets := []string{full}
	if strings.ContainsAny(p, "*?[") {
		// DuckDB expands the glob itself; check what it would read now.
		matches, _ := filepath.Glob(full)
		targets = append(targets, matches...)
	}
	for _, t := range targets {
		real, err := resolveExisting(t)
		if err != nil {
			return "", fmt.Errorf("%q: %v", p, err)
		}
		if !inside(root, real) {
			return "", fmt.Errorf("%q leads outside the workspace directory through a symbolic link (to %s)", p, real)
		}
	}
	return full, nil
}

// resolveExisting follows the symbolic links of the longest existing
// prefix of the absolute path p and appends the rest unchanged. A dangling
// link is followed too: creating a file through it would write its target.
func resolveExisting(p string) (string, error) {
	var rest []string
	for hops := 0; ; {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !os.IsNotExist(err) {
			return "", err
		}
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return "", fmt.Errorf("too many levels of symbolic links")
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = filepath.Clean(target)
			continue
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...), nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && filepath.IsLocal(rel)
}
