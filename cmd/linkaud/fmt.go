package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
)

func init() {
	register("fmt", "Rewrite a workspace's .la files in canonical form (--check only lists the files that would change).", &fmtCmd{})
}

type fmtCmd struct {
	Dir   string `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Check bool   `help:"Change nothing: list the files that are not in canonical form and exit 1 if there are any."`
}

func (c *fmtCmd) Run(g *Globals) error {
	return formatWorkspace(c.Dir, c.Check, os.Stdout, os.Stderr)
}

// formatWorkspace formats every .la file of dir (not recursing, like
// check). It prints the name of each file it rewrote, or with check each
// file it would rewrite. A file with syntax errors is left alone and its
// errors are printed; the others are still formatted.
func formatWorkspace(dir string, check bool, stdout, stderr io.Writer) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return userError(fmt.Errorf("cannot read workspace: %w", err))
	}
	var paths []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".la") {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(paths)
	var syntax grammar.ErrorList
	sources := map[string][]byte{}
	changed := 0
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			return infraError(err)
		}
		f, errs := grammar.ParseFile(p, src)
		if len(errs) > 0 {
			syntax = append(syntax, errs...)
			sources[p] = src
			continue
		}
		out := grammar.Format(f)
		if bytes.Equal(out, src) {
			continue
		}
		changed++
		if !check {
			if err := writeFileAtomic(p, out); err != nil {
				return infraError(err)
			}
		}
		fmt.Fprintln(stdout, p)
	}
	if len(syntax) > 0 {
		printSyntaxErrors(stderr, syntax, sources)
		return silentExit(exitUser)
	}
	if check && changed > 0 {
		return silentExit(exitUser)
	}
	return nil
}

// printSyntaxErrors is the one place fmt renders syntax errors: the same
// renderer as check, `file:line:col: message`, the line and a caret.
func printSyntaxErrors(w io.Writer, errs grammar.ErrorList, sources map[string][]byte) {
	diags := make(dsl.Diagnostics, len(errs))
	for i, e := range errs {
		diags[i] = &dsl.Diagnostic{Severity: dsl.Error, Summary: e.Msg, Subject: dsl.Range{Start: e.Pos, End: e.EndPos}}
	}
	dsl.Render(w, diags, sources)
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory, keeping path's permissions, so that an interrupted fmt
// never leaves a half-written file. A symbolic link stays a link: its
// target is rewritten.
func writeFileAtomic(path string, data []byte) error {
	path, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
