package dsl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

const limitsGraph = `graph {
  profile { table "P" key id }
}
`

func writeWS(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A file over MaxSourceBytes is refused unparsed, with its size.
func TestSourceSizeLimit(t *testing.T) {
	big := strings.Repeat("# a comment line to fill the file\n", MaxSourceBytes/34+10)
	dir := writeWS(t, map[string]string{"graph.la": limitsGraph, "big.la": big})
	_, diags := Load(dir, Options{})
	if len(diags) != 1 || !strings.Contains(diags[0].Error(), "big.la: the file is 4.0 MiB: the limit is 4.0 MiB") {
		t.Fatalf("diags = %v", diags)
	}
}

// A list over MaxListItems is an error at the comparison.
func TestListLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("audience a { match trait x in (")
	for i := range MaxListItems + 1 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d", i)
	}
	b.WriteString(") }\n")
	dir := writeWS(t, map[string]string{"graph.la": limitsGraph, "a.la": b.String()})
	_, diags := Load(dir, Options{})
	if len(diags) != 1 || !strings.Contains(diags[0].Error(), "a.la:1:26: in list of 10001 values: the limit is 10000") {
		t.Fatalf("diags = %v", diags)
	}
}

// Rendering is bounded: at most MaxDiagnostics, then a count; a long
// line is cut to a window around the caret, which still points at the
// subject.
func TestRenderBounded(t *testing.T) {
	var b strings.Builder
	for i := range MaxDiagnostics + 7 {
		fmt.Fprintf(&b, "audience a%d { match trait x = 1 and nope%d }\n", i, i)
	}
	long := "audience long { match trait x = 1" + strings.Repeat(" or trait x = 1", 2000) + " and in audience oops }\n"
	b.WriteString(long)
	dir := writeWS(t, map[string]string{"graph.la": limitsGraph, "a.la": b.String()})
	ws, diags := Load(dir, Options{})
	if len(diags) < MaxDiagnostics+8 {
		t.Fatalf("%d diagnostics", len(diags))
	}
	var out bytes.Buffer
	Render(&out, diags, diagSourcesFor(t, ws, diags))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, fmt.Sprintf("and %d more", len(diags)-MaxDiagnostics)) {
		t.Fatalf("last line %q", last)
	}
	if len(lines) > 3*MaxDiagnostics+1 {
		t.Fatalf("%d lines", len(lines))
	}
	// The long line's diagnostic alone.
	var one Diagnostics
	for _, d := range diags {
		if d.Subject.Start.Line == MaxDiagnostics+8 {
			one = append(one, d)
		}
	}
	if len(one) == 0 {
		t.Fatal("no diagnostic on the long line")
	}
	out.Reset()
	Render(&out, one[:1], diagSourcesFor(t, ws, one))
	rl := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(rl) != 3 {
		t.Fatalf("render:\n%s", out.String())
	}
	excerpt, caret := rl[1], rl[2]
	if n := utf8.RuneCountInString(excerpt); n > MaxExcerptRunes+8 {
		t.Fatalf("excerpt of %d runes", n)
	}
	at := utf8.RuneCountInString(caret[:strings.IndexByte(caret, '^')])
	if !strings.HasPrefix(string([]rune(excerpt)[at:]), "oops") {
		t.Fatalf("caret does not point at the subject:\n%s\n%s", excerpt, caret)
	}
}

func diagSourcesFor(t *testing.T, ws *Workspace, diags Diagnostics) map[string][]byte {
	m := map[string][]byte{}
	for _, d := range diags {
		name := d.Subject.Start.Filename
		if _, ok := m[name]; !ok {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			m[name] = src
		}
	}
	return m
}
