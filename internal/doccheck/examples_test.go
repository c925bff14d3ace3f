package doccheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/dsl"
)

// TestExamples checks every `la` block of the docs (they must check, or
// fail to where marked `errors`), runs every console block and compares
// its output, and compares json blocks with the files they quote. See the
// package documentation for the conventions.
//
// With -update, console blocks are rewritten with what linkaud prints:
// read the diff as you would a golden file's.
func TestExamples(t *testing.T) {
	var total counts
	for _, p := range pages(t) {
		t.Run(p.Path, func(t *testing.T) {
			r := &runner{t: t, page: p}
			for _, b := range p.Blocks {
				r.block(b)
			}
			total.add(r.n)
			if *update && len(r.rewrites) > 0 {
				r.rewrite()
			}
		})
	}
	t.Logf("%d .la examples checked (%d expected to fail), %d console commands run and their output compared, %d JSON payloads compared",
		total.la, total.laErrors, total.commands, total.json)
	if total.la == 0 || total.commands == 0 {
		t.Fatal("no example found: the parser is broken")
	}
}

type counts struct{ la, laErrors, commands, json int }

func (c *counts) add(o counts) {
	c.la += o.la
	c.laErrors += o.laErrors
	c.commands += o.commands
	c.json += o.json
}

// runner runs one page's blocks in order.
type runner struct {
	t       *testing.T
	page    *Page
	pageWS  string // the page's accumulating workspace, once made
	current string // where console blocks run
	n       counts
	// rewrites are the console blocks' new text under -update, by block.
	rewrites map[*Block]string
}

var update = flag.Bool("update", false, "rewrite the docs' console blocks with linkaud's output")

// rewrite replaces the console blocks of the page with their new text.
func (r *runner) rewrite() {
	path := filepath.Join(root, filepath.FromSlash(r.page.Path))
	src, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	var out []string
	next := 1
	for _, b := range r.page.Blocks {
		text, ok := r.rewrites[b]
		if !ok {
			continue
		}
		out = append(out, lines[next-1:b.Line]...)
		out = append(out, strings.Split(strings.TrimRight(text, "\n"), "\n")...)
		next = b.EndLine
	}
	out = append(out, lines[next-1:]...)
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *runner) where(b *Block) string { return fmt.Sprintf("%s:%d", r.page.Path, b.Line) }

// workspace makes a temporary directory, a copy of docs/examples/BASE
// when the block names one.
func (r *runner) workspace(b *Block) string {
	dir := r.t.TempDir()
	if base, ok := b.Attrs["base"]; ok {
		src := filepath.Join(root, "docs", "examples", base)
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			r.t.Fatalf("%s: base=%s: %v", r.where(b), base, err)
		}
	}
	return dir
}

func (r *runner) block(b *Block) {
	file, isFile := b.Attrs["as"]
	switch {
	case b.Lang == "la" || isFile:
		if isFile {
			if r.pageWS == "" {
				r.pageWS = r.workspace(b)
			}
			r.current = r.pageWS
		} else {
			r.current = r.workspace(b)
			file = "example.la"
		}
		path := filepath.Join(r.current, filepath.FromSlash(file))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.Text), 0o644); err != nil {
			r.t.Fatal(err)
		}
		if b.Lang == "la" {
			r.check(b)
		}
	case b.Lang == "console":
		if r.current == "" {
			if r.pageWS == "" {
				r.pageWS = r.t.TempDir()
			}
			r.current = r.pageWS
		}
		r.console(b)
	case b.Lang == "json" && b.Has("from"):
		r.json(b)
	}
}

// check loads the current workspace as `linkaud check` does.
func (r *runner) check(b *Block) {
	r.n.la++
	ws, diags := dsl.Load(r.current, dsl.Options{})
	var out bytes.Buffer
	src := sourcesOf(diags)
	if ws != nil {
		src = dsl.Sources(ws.Files)
	}
	dsl.Render(&out, diags, src)
	switch {
	case b.Has("errors") && !diags.HasErrors():
		r.t.Errorf("%s: marked errors, but the workspace checks", r.where(b))
	case b.Has("errors"):
		r.n.laErrors++
	case diags.HasErrors():
		r.t.Errorf("%s: the example does not check:\n%s", r.where(b), out.String())
	}
}

// sourcesOf reads the files diagnostics point into, for their excerpts.
func sourcesOf(diags dsl.Diagnostics) map[string][]byte {
	m := map[string][]byte{}
	for _, d := range diags {
		name := d.Subject.Start.Filename
		if _, ok := m[name]; !ok {
			m[name], _ = os.ReadFile(name)
		}
	}
	return m
}

// console runs "$ " lines and compares what they print with the lines
// that follow them.
func (r *runner) console(b *Block) {
	type step struct {
		line int
		cmd  string
		want []string
	}
	var steps []*step
	lines := strings.Split(strings.TrimRight(b.Text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if cmd, ok := strings.CutPrefix(l, "$ "); ok {
			for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(lines[i])
			}
			steps = append(steps, &step{line: b.Line + 1 + i, cmd: cmd})
			continue
		}
		if len(steps) == 0 {
			r.t.Errorf("%s: a console block starts with a \"$ \" command line", r.where(b))
			return
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, l)
	}
	var rewritten strings.Builder
	for _, s := range steps {
		r.n.commands++
		got, err := r.run(s.cmd)
		if err != nil {
			r.t.Errorf("%s:%d: %s: %v", r.page.Path, s.line, s.cmd, err)
			continue
		}
		want := strings.Join(s.want, "\n")
		if *update {
			fmt.Fprintf(&rewritten, "$ %s\n%s\n", s.cmd, normalizeLogs(got))
			continue
		}
		if normalize(got) != normalize(want) {
			r.t.Errorf("%s:%d: $ %s\n--- the page shows:\n%s\n--- linkaud prints:\n%s", r.page.Path, s.line, s.cmd, want, strings.TrimRight(got, "\n"))
		}
	}
	if *update {
		if r.rewrites == nil {
			r.rewrites = map[*Block]string{}
		}
		r.rewrites[b] = rewritten.String()
	}
}

// normalizeLogs drops log records and trailing blank lines, keeping the
// rest as printed, for -update.
func normalizeLogs(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !isLogRecord(l) {
			out = append(out, strings.TrimRight(l, " \t"))
		}
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

// run runs one console command in the current workspace.
func (r *runner) run(line string) (string, error) {
	args, err := splitWords(line)
	if err != nil {
		return "", err
	}
	switch args[0] {
	case "cat":
		var out []byte
		for _, f := range args[1:] {
			b, err := os.ReadFile(filepath.Join(r.current, f))
			if err != nil {
				return "", err
			}
			out = append(out, b...)
		}
		return string(out), nil
	case "linkaud":
	default:
		return "", fmt.Errorf("console blocks run linkaud and cat only; show other commands in a sh block")
	}
	cmd := exec.Command(linkaudBin, args[1:]...)
	cmd.Dir = r.current
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.t.TempDir(), "TZ=UTC", "LANG=C.UTF-8"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		fmt.Fprintf(&out, "[exit %d]\n", ee.ExitCode())
	case err != nil:
		return "", err
	}
	return out.String(), nil
}

// durationRE matches the durations linkaud prints (12.3ms, 1.94s, 850µs).
var (
	durationRE = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s|m)\b`)
	durPadRE   = regexp.MustCompile(` *<dur> *`)
)

// normalize makes output comparable: durations become <dur>, trailing
// blanks go, and so do log records (JSON lines with a time and a level:
// linkaud logs to stderr, as text on a terminal, and a page leaves them
// out).
func normalize(s string) string {
	s = durationRE.ReplaceAllString(s, "<dur>")
	// Table columns padded beside a duration move with its width.
	s = durPadRE.ReplaceAllString(s, " <dur> ")
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if isLogRecord(l) {
			continue
		}
		out = append(out, strings.TrimRight(l, " \t"))
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

func isLogRecord(l string) bool {
	if !strings.HasPrefix(l, `{"time":`) {
		return false
	}
	var rec struct {
		Time  string `json:"time"`
		Level string `json:"level"`
	}
	return json.Unmarshal([]byte(l), &rec) == nil && rec.Time != "" && rec.Level != ""
}

// splitWords splits a command line as a POSIX shell would, for the quoting
// the docs use: '…', "…" and backslash escapes.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return words, nil
}

// json compares a pretty-printed payload with line N of a file the
// workspace holds (an events file a console block just wrote).
func (r *runner) json(b *Block) {
	r.n.json++
	var n int
	if _, err := fmt.Sscan(b.Attrs["line"], &n); err != nil || n < 1 {
		r.t.Errorf("%s: json from= needs line=N (1-based)", r.where(b))
		return
	}
	data, err := os.ReadFile(filepath.Join(r.current, b.Attrs["from"]))
	if err != nil {
		r.t.Errorf("%s: %v", r.where(b), err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if n > len(lines) {
		r.t.Errorf("%s: %s has %d lines, not %d", r.where(b), b.Attrs["from"], len(lines), n)
		return
	}
	var got, want any
	if err := json.Unmarshal([]byte(lines[n-1]), &got); err != nil {
		r.t.Errorf("%s: line %d of %s: %v", r.where(b), n, b.Attrs["from"], err)
		return
	}
	if err := json.Unmarshal([]byte(b.Text), &want); err != nil {
		r.t.Errorf("%s: the block is not JSON: %v", r.where(b), err)
		return
	}
	if !jsonMatch(want, got) {
		pretty, _ := json.MarshalIndent(got, "", "  ")
		r.t.Errorf("%s: line %d of %s differs from the page; it is:\n%s", r.where(b), n, b.Attrs["from"], pretty)
	}
}

// jsonMatch compares JSON values; a string of the page ending in "…"
// matches any string it begins, so a page may shorten a messageId.
func jsonMatch(want, got any) bool {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		if prefix, cut := strings.CutSuffix(w, "…"); cut && ok {
			return strings.HasPrefix(g, prefix)
		}
		return ok && g == w
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok || !jsonMatch(v, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !jsonMatch(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return want == got
}
