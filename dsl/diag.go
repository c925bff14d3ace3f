package dsl

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

// Severity says whether a diagnostic stops the workspace from being used.
type Severity int

const (
	Error Severity = iota
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a workspace. It is data: rendering is
// apart (Render), so tests can assert on the summary and range.
type Diagnostic struct {
	Severity Severity
	// Summary is the message, one line, e.g. `unknown entity "acount"`.
	Summary string
	// Suggestion is a replacement name, printed as "did you mean X?".
	Suggestion string
	// Detail is an optional further line of explanation.
	Detail string
	// Subject is the tight range of source the problem is about.
	Subject Range
}

// Message is the summary with the suggestion, as printed after the position.
func (d *Diagnostic) Message() string {
	msg := d.Summary
	if d.Suggestion != "" {
		msg += "; did you mean " + d.Suggestion + "?"
	}
	if d.Severity == Warning {
		msg = "warning: " + msg
	}
	return msg
}

func (d *Diagnostic) Error() string {
	p := d.Subject.Start
	if p.Line == 0 { // about a whole file or directory
		return fmt.Sprintf("%s: %s", p.Filename, d.Message())
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.Filename, p.Line, p.Column, d.Message())
}

// Diagnostics is a list of diagnostics, sorted by file, line and column.
type Diagnostics []*Diagnostic

// HasErrors reports whether any diagnostic is an error (not a warning).
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns the diagnostics as an error when there are errors, else nil.
func (ds Diagnostics) Err() error {
	if ds.HasErrors() {
		return ds
	}
	return nil
}

func (ds Diagnostics) Error() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.Error())
	}
	return b.String()
}

// Sort orders the diagnostics by file, line and column.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Subject.Start, ds[j].Subject.Start
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// Render prints each diagnostic as `file:line:col: message`, then the source
// line and a caret under the subject. sources maps file names to contents;
// a diagnostic whose file is unknown is printed without the excerpt.
//
// At most MaxDiagnostics are printed, then a count of the rest; a source
// line longer than MaxExcerptRunes is cut to a window around the caret.
func Render(w io.Writer, ds Diagnostics, sources map[string][]byte) {
	for i, d := range ds {
		if i == MaxDiagnostics {
			errs, warns := 0, 0
			for _, r := range ds[i:] {
				if r.Severity == Error {
					errs++
				} else {
					warns++
				}
			}
			fmt.Fprintf(w, "and %d more (%d errors, %d warnings)\n", len(ds)-i, errs, warns)
			return
		}
		fmt.Fprintln(w, d.Error())
		src, ok := sources[d.Subject.Start.Filename]
		if !ok || d.Subject.Start.Line == 0 {
			continue
		}
		line := sourceLine(src, d.Subject.Start.Line)
		if line == "" {
			continue
		}
		line = strings.ReplaceAll(line, "\t", " ")
		col := d.Subject.Start.Column
		runes := []rune(line)
		// A subject ends where the next token starts (participle's EndPos),
		// or on a later line: underline up to its last non-blank rune.
		end := len(runes)
		if d.Subject.End.Line == d.Subject.Start.Line && d.Subject.End.Column > col {
			end = min(end, d.Subject.End.Column-1)
		}
		for end > col && (runes[end-1] == ' ' || runes[end-1] == '\t') {
			end--
		}
		width := max(1, end-(col-1))
		excerpt, pad := excerptAround(runes, col-1, width)
		fmt.Fprintf(w, "    %s\n", excerpt)
		fmt.Fprintf(w, "    %s%s\n", strings.Repeat(" ", pad), strings.Repeat("^", min(width, MaxExcerptRunes)))
	}
}

// Sources returns the file contents of a workspace's files, for Render.
func Sources(files []*grammar.File) map[string][]byte {
	m := make(map[string][]byte, len(files))
	for _, f := range files {
		m[f.Name] = f.Src
	}
	return m
}

func sourceLine(src []byte, line int) string {
	start := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(string(src[start:]), '\n')
		if i < 0 {
			return ""
		}
		start += i + 1
	}
	end := start
	for end < len(src) && src[end] != '\n' {
		end++
	}
	return strings.TrimRight(string(src[start:end]), "\r")
}

// suggest is grammar.Suggest: one "did you mean" rule for all of linkaud.
func suggest(name string, candidates []string) string { return grammar.Suggest(name, candidates) }

// excerptAround returns the part of line to print and the caret's offset
// in it: the whole line when it is short, else a window of at most
// MaxExcerptRunes around the subject starting at rune start, marked with
// "…" where cut.
func excerptAround(line []rune, start, width int) (string, int) {
	if len(line) <= MaxExcerptRunes {
		return string(line), max(0, start)
	}
	from := max(0, start-MaxExcerptRunes/3)
	to := min(len(line), from+MaxExcerptRunes)
	if to-from < MaxExcerptRunes {
		from = max(0, to-MaxExcerptRunes)
	}
	out := string(line[from:to])
	pad := start - from
	if from > 0 {
		out = "…" + out
		pad++
	}
	if to < len(line) {
		out += "…"
	}
	return out, max(0, pad)
}
