package dsl_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/grammar/grammartest"
	"github.com/linkaud/linkaud/internal/randgen"
)

// FuzzCheck checks random but well-formed workspaces, then mutated ones.
//
// The input's first 8 bytes seed internal/randgen, which draws a graph and
// audiences over every construct of the language; the fuzz test adds a
// warehouse block loading every table, a state directory, descriptions,
// schedules, enrichment, a destination and activations naming the
// audience's entities. That workspace must check without a diagnostic
// error, and grammar.Format of each file must give back the same checked
// IR, positions aside. The rest of the input is a list of token edits
// (delete, repeat, swap, replace with or insert a token of the language,
// replace with another token of the file) applied to one file: dsl.Check of the edited workspace must not panic, and every
// diagnostic must point inside a file of the workspace, its line and
// column those of its byte offset, in sorted order.
//
// Seeds: testdata/fuzz/FuzzCheck (inputs the fuzzer once failed on, and a
// few chosen to cover every generator branch).
func FuzzCheck(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(binary.LittleEndian.AppendUint64(nil, seed))
		f.Add(append(binary.LittleEndian.AppendUint64(nil, seed), 0, 3, 1, 7, 2, 9, 3, 11, 4, 5))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var seedBytes [8]byte
		copy(seedBytes[:], data)
		edits := data[min(8, len(data)):]
		ws := generate(binary.LittleEndian.Uint64(seedBytes[:]))
		files := parseAll(t, ws, true)
		checked, diags := dsl.Check(".", files, dsl.Options{})
		if diags.HasErrors() {
			t.Fatalf("a generated workspace does not check:\n%s\n%s", render(diags, ws), ws.text())
		}
		checkDiagnostics(t, ws, diags)
		checkFormat(t, ws, checked)
		if len(edits) == 0 {
			return
		}
		mutated := ws.mutate(edits)
		files = parseAll(t, mutated, false)
		_, diags = dsl.Check(".", files, dsl.Options{})
		checkDiagnostics(t, mutated, diags)
	})
}

// workspace is .la files by name, in a fixed order.
type workspace struct {
	names []string
	srcs  map[string][]byte
}

func (w *workspace) text() string {
	var b strings.Builder
	for _, n := range w.names {
		fmt.Fprintf(&b, "== %s\n%s\n", n, w.srcs[n])
	}
	return b.String()
}

// descriptions are texts a description may hold: quotes, escapes, unicode.
var descriptions = []string{"", "Has a card", `say "hi"`, `back\slash`, "über 日本 😀", "tab\there", "line\nbreak", "#not a comment"}

var schedules = []string{"every 15m", "every 1h", "every 1d", `daily at "09:00"`, `cron "0 9 * * MON"`, "manual"}

// generate draws a well-formed workspace from seed.
func generate(seed uint64) *workspace {
	gen := randgen.New(seed)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	gr := gen.Graph()
	helpers, target := gen.Audiences(gr)
	c := &randgen.Case{Graph: gr, Helpers: helpers, Target: target, Now: gen.Now()}
	// The target's path is known once checked: enrichment and entity
	// activations name its steps.
	steps := targetSteps(c)
	if steps != nil {
		target.Enrich = gen.Enrich(gr, steps)
	}
	src := c.Source()
	auds := decorate(r, src["audiences.la"])

	var setup strings.Builder
	setup.WriteString("# the workspace around the generated graph\nwarehouse {\n  type duckdb\n  path \":memory:\"\n")
	for _, t := range gr.Tables() {
		fmt.Fprintf(&setup, "  load %s from %s\n", grammar.Quote(t.QName()), grammar.Quote("data/"+strings.ToLower(strings.Join(t.Name, "_"))+".parquet"))
	}
	setup.WriteString("}\nstate \".linkaud\"\n")
	setup.WriteString("destination hook { type webhook url env(\"HOOK_URL\") secret env(\"HOOK_SECRET\") }\n")
	setup.WriteString("destination audit { type file path \"events.jsonl\" }\n")
	fmt.Fprintf(&setup, "activation entered { audience target destination hook event audience_entered send_current %t }\n", r.IntN(2) == 0)
	setup.WriteString("activation exited { audience target destination audit event audience_exited }\n")
	setup.WriteString("activation synced { audience target destination audit event audience_membership_changed }\n")
	for i, s := range steps {
		if r.IntN(2) == 0 {
			fmt.Fprintf(&setup, "activation added_%d { audience target destination hook event entity_added %s }\n", i, s)
		}
	}
	return &workspace{
		names: []string{"audiences.la", "graph.la", "setup.la"},
		srcs: map[string][]byte{
			"graph.la":     []byte(src["graph.la"]),
			"audiences.la": []byte(auds),
			"setup.la":     []byte(setup.String()),
		},
	}
}

// targetSteps checks the case and returns the entities of the target's
// path, nil when it has none (or the case does not check: the caller's
// check reports that).
func targetSteps(c *randgen.Case) []string {
	var files []*grammar.File
	for name, src := range c.Source() {
		f, errs := grammar.ParseFile(name, []byte(src))
		if errs != nil {
			return nil
		}
		files = append(files, f)
	}
	ws, diags := dsl.Check(".", files, dsl.Options{})
	if diags.HasErrors() {
		return nil
	}
	a := ws.Audience("target")
	if a == nil || a.Primary == nil {
		return nil
	}
	var steps []string
	for _, s := range a.Primary.Steps {
		steps = append(steps, s.Entity.Name)
	}
	return steps
}

// decorate gives some audiences a description and a schedule.
func decorate(r *rand.Rand, auds string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(auds, "\n") {
		b.WriteString(line)
		if !strings.HasPrefix(line, "audience ") {
			continue
		}
		if r.IntN(2) == 0 {
			fmt.Fprintf(&b, "  description %s\n", grammar.Quote(descriptions[r.IntN(len(descriptions))]))
		}
		if r.IntN(2) == 0 {
			fmt.Fprintf(&b, "  schedule %s\n", schedules[r.IntN(len(schedules))])
		}
	}
	return b.String()
}

func parseAll(t *testing.T, w *workspace, clean bool) []*grammar.File {
	t.Helper()
	var files []*grammar.File
	for _, n := range w.names {
		f, errs := grammar.ParseFile(n, w.srcs[n])
		if clean && errs != nil {
			t.Fatalf("a generated file does not parse: %v\n%s", errs, w.text())
		}
		files = append(files, f)
	}
	return files
}

func render(diags dsl.Diagnostics, w *workspace) string {
	var b bytes.Buffer
	dsl.Render(&b, diags, w.srcs)
	return b.String()
}

// checkDiagnostics fails unless every diagnostic has a message, points
// inside a file of w (or names a whole file, line 0) at the line and
// column of its byte offset, ends no earlier than it starts, and the list
// is sorted. Rendering them must not panic.
func checkDiagnostics(t *testing.T, w *workspace, diags dsl.Diagnostics) {
	t.Helper()
	for i, d := range diags {
		if strings.TrimSpace(d.Summary) == "" {
			t.Fatalf("diagnostic without a summary at %v", d.Subject.Start)
		}
		s, e := d.Subject.Start, d.Subject.End
		src, ok := w.srcs[s.Filename]
		if !ok {
			t.Fatalf("%s: in no file of the workspace (%q)", d.Error(), s.Filename)
		}
		if s.Line == 0 {
			continue
		}
		if err := grammar.CheckPos(src, s); err != nil {
			t.Fatalf("%s: %v", d.Error(), err)
		}
		if e.Line != 0 || e.Offset != 0 {
			if e.Filename != s.Filename {
				t.Fatalf("%s: ends in file %q", d.Error(), e.Filename)
			}
			if err := grammar.CheckPos(src, e); err != nil {
				t.Fatalf("%s: %v", d.Error(), err)
			}
			if e.Offset < s.Offset {
				t.Fatalf("%s: ends at offset %d before it starts at %d", d.Error(), e.Offset, s.Offset)
			}
		}
		if i > 0 {
			p := diags[i-1].Subject.Start
			if p.Filename > s.Filename || p.Filename == s.Filename && (p.Line > s.Line || p.Line == s.Line && p.Column > s.Column) {
				t.Fatalf("diagnostics out of order: %s after %s", d.Error(), diags[i-1].Error())
			}
		}
	}
	_ = render(diags, w)
}

// checkFormat formats every file, checks the result, and compares the IR
// with the original's, positions aside.
func checkFormat(t *testing.T, w *workspace, before *dsl.Workspace) {
	t.Helper()
	formatted := &workspace{names: w.names, srcs: map[string][]byte{}}
	for _, n := range w.names {
		f, _ := grammar.ParseFile(n, w.srcs[n])
		formatted.srcs[n] = grammar.Format(f)
	}
	files := parseAll(t, formatted, true)
	after, diags := dsl.Check(".", files, dsl.Options{})
	if diags.HasErrors() {
		t.Fatalf("the formatted workspace does not check:\n%s\n%s", render(diags, formatted), formatted.text())
	}
	before.Files, after.Files = nil, nil
	grammartest.ClearPositions(before)
	grammartest.ClearPositions(after)
	if !reflect.DeepEqual(before, after) {
		for i := range before.Audiences {
			if i < len(after.Audiences) && !reflect.DeepEqual(before.Audiences[i], after.Audiences[i]) {
				t.Fatalf("audience %s means something else after fmt:\n%s\n%s\nsource:\n%s\nformatted:\n%s", before.Audiences[i].Name,
					dsl.CanonicalAudience(before.Audiences[i]), dsl.CanonicalAudience(after.Audiences[i]), w.text(), formatted.text())
			}
		}
		t.Fatalf("the checked workspace differs after fmt\nsource:\n%s\nformatted:\n%s", w.text(), formatted.text())
	}
}

// vocabulary are tokens edits may insert: keywords and punctuation of the
// language, names of the generated graph, and odd literals.
var vocabulary = []string{
	"graph", "profile", "entity", "relationship", "through", "as", "on", "audience", "match", "where", "having",
	"enrich", "trait", "in", "not", "and", "or", "at", "least", "most", "exactly", "performed", "times", "within",
	"days", "hours", "before", "after", "is", "null", "true", "false", "contains", "starts", "ends", "with",
	"count", "sum", "min", "max", "avg", "activation", "destination", "event", "entity_added", "entity_removed",
	"audience_entered", "audience_exited", "audience_membership_changed", "send_current", "properties",
	"warehouse", "load", "from", "state", "env", "schedule", "every", "daily", "cron", "manual", "description",
	"memberships", "events", "key", "table", "type", "file", "webhook", "kafka",
	"->", "{", "}", "(", ")", ",", ".", "=", "!=", "<", "<=", ">", ">=",
	`""`, `"x"`, `"a.b.c.d"`, `"\""`, "0", "7", "-1", "1.5", "99999999999999999999", "15m", "0d", "#c\n", "\n",
	"target", "profile.x", "trait.x",
}

// maxEdits bounds the token edits of one input.
const maxEdits = 64

// mutate applies edits to the tokens of one file of w and returns the
// result. Edits are read two bytes at a time: an operation and a token
// index; the first byte picks the file.
func (w *workspace) mutate(edits []byte) *workspace {
	out := &workspace{names: w.names, srcs: map[string][]byte{}}
	for n, s := range w.srcs {
		out.srcs[n] = s
	}
	name := w.names[int(edits[0])%len(w.names)]
	src := w.srcs[name]
	toks := lex(name, src)
	if len(toks) == 0 {
		return out
	}
	texts := make([]string, len(toks))
	for i, tk := range toks {
		texts[i] = tk.Value
	}
	// Bounded, so that an input cannot grow the file without end.
	edits = edits[:min(len(edits), 1+2*maxEdits)]
	for j := 1; j+1 < len(edits); j += 2 {
		op, at := edits[j]%6, int(edits[j+1])%len(texts)
		arg := int(edits[j]) / 6
		switch op {
		case 0: // delete
			texts[at] = ""
		case 1: // repeat
			texts[at] += " " + toks[at].Value
		case 2: // swap with a later token
			k := (at + 1 + arg) % len(texts)
			texts[at], texts[k] = texts[k], texts[at]
		case 3: // replace with a token of the language
			texts[at] = vocabulary[arg%len(vocabulary)]
		case 4: // insert a token of the language before
			texts[at] = vocabulary[arg%len(vocabulary)] + " " + texts[at]
		case 5: // replace with another token of the file: a name where
			// another belongs, a literal of the wrong type
			texts[at] = texts[(at+1+arg*7)%len(texts)]
		}
	}
	var b []byte
	prev := 0
	for i, tk := range toks {
		b = append(b, src[prev:tk.Pos.Offset]...)
		b = append(b, texts[i]...)
		prev = tk.Pos.Offset + len(tk.Value)
	}
	b = append(b, src[prev:]...)
	out.srcs[name] = b
	return out
}

// lex returns the tokens of src that edits work on: everything but blanks
// (comments included), without the EOF.
func lex(name string, src []byte) []lexer.Token {
	lx, err := grammar.Lexer.Lex(name, bytes.NewReader(src))
	if err != nil {
		return nil
	}
	space := grammar.Lexer.Symbols()["Whitespace"]
	var toks []lexer.Token
	for {
		tk, err := lx.Next()
		if err != nil || tk.EOF() {
			return toks
		}
		if tk.Type != space {
			toks = append(toks, tk)
		}
	}
}
