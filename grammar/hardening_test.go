package grammar

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// audiences returns n distinct audiences in the DESIGN.md style, about
// 400 bytes each.
func audiences(tb testing.TB, n int) []byte {
	tb.Helper()
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `# audience %d
audience a%d {
  description "Has a credit card with an outstanding balance (%d)"
  schedule every 1h
  match profile -> account where (status = "open" and opened_at within 365 days)
                -> at least 5 transaction where amount > %d
    and trait plan in ("gold", "platinum")
    and not profile -> account where status = "frozen"
  enrich account.type, trait.email
}

`, i, i, i, i)
	}
	return b.Bytes()
}

// tenMB is about 10 MB of audiences.
func tenMB(tb testing.TB) ([]byte, int) {
	n := 10 << 20 / len(audiences(tb, 1))
	return audiences(tb, n), n
}

func TestTenMegabytes(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	src, n := tenMB(t)
	f, errs := ParseFile("big.la", src)
	if errs != nil {
		t.Fatal(errs)
	}
	if len(f.Decls) != n || len(f.Comments) != n {
		t.Fatalf("%d declarations and %d comments, want %d of each", len(f.Decls), len(f.Comments), n)
	}
	last := f.Decls[n-1].Audience
	if want := fmt.Sprintf("a%d", n-1); last.Name.Text != want || last.Name.Pos.Line != (n-1)*11+2 {
		t.Fatalf("last audience %s at line %d", last.Name.Text, last.Name.Pos.Line)
	}
	// Formatting formatted text changes nothing, at this size too.
	out := Format(f)
	g, errs := ParseFile("big.la", out)
	if errs != nil || len(g.Decls) != n {
		t.Fatalf("formatted: %d declarations, %v", len(g.Decls), errs)
	}
	if again := Format(g); !bytes.Equal(again, out) {
		t.Fatal("Format is not idempotent on the large input")
	}
}

func TestTenThousandAudiences(t *testing.T) {
	src := audiences(t, 10000)
	// One broken audience in the middle is reported alone; the rest parse.
	broken := bytes.Replace(src, []byte("audience a5000 {\n  description"), []byte("audience a5000 {\n  descripton"), 1)
	f, errs := ParseFile("many.la", broken)
	if len(errs) != 1 || len(f.Decls) != 9999 {
		t.Fatalf("%d declarations, errors: %v", len(f.Decls), errs)
	}
	if e := errs[0]; e.Pos.Line != 5000*11+3 || e.Pos.Column != 3 || !strings.Contains(e.Msg, "did you mean description?") {
		t.Fatalf("error %v", e)
	}
	if len(f.Broken) != 1 || f.Broken[0].Name != "a5000" {
		t.Fatalf("broken %v", f.Broken)
	}
}

// TestHostileInput: each input gives exactly the expected errors, quickly
// and without exhausting the stack.
func TestHostileInput(t *testing.T) {
	deep := func(open, mid, close string, n int) string {
		return "audience a { match " + strings.Repeat(open, n) + mid + strings.Repeat(close, n) + " }"
	}
	cases := []struct {
		name, src string
		want      []string // line:col: message, each
	}{
		{"100k open parentheses", deep("(", "", "", 100000),
			[]string{"1:120: too deeply nested: more than 100 parentheses open"}},
		{"100k balanced parentheses", deep("(", "trait x = 1", ")", 100000),
			[]string{"1:120: too deeply nested: more than 100 parentheses open"}},
		{"100 balanced parentheses are fine", deep("(", "trait x = 1", ")", 100), nil},
		{"100k closing parentheses", deep("", "trait x = 1", ")", 100000),
			[]string{`1:31: unexpected ")": no "(" is open here`}},
		{"100k nots", deep("not ", "trait x = 1", "", 100000),
			[]string{"1:420: too many nots in a row: at most 100"}},
		{"100k open braces", "graph " + strings.Repeat("{", 100000),
			[]string{`1:8: unexpected "{": expected profile, entity, relationship, memberships, events or a setting, or "}" to close the "{" at line 1`}},
		{"a million invalid characters", "state \"x\"\n" + strings.Repeat("@", 1000000),
			[]string{`2:1: 1000000 unexpected characters "` + strings.Repeat("@", 20) + `"…`}},
		{"an unterminated string of a megabyte", "state \"" + strings.Repeat("x", 1<<20),
			[]string{"1:7: unterminated string: a string ends with \" on the same line"}},
		{"non-UTF-8 byte", "state \"x\"\naudience é\xff { }",
			[]string{"2:11: invalid UTF-8 byte 0xff: .la files are UTF-8 text"}},
		{"a NUL byte", "state \"x\"\x00",
			[]string{`1:10: unexpected character "\x00"`}},
		{"a lone backslash", `state \`,
			[]string{`1:7: unexpected character "\\"`}},
		{"only a comment", "# just this", nil},
		{"empty", "", nil},
		{"only whitespace", " \t\r\n\r\n\t ", nil},
		{"CRLF and tabs", "audience a {\r\n\tmatch trait x = 1\r\n}\r\n", nil},
		{"CR inside a comment", "# a\rb\nstate \"x\"", nil},
		{"unknown top-level keyword", "segment x { }",
			[]string{`1:1: unexpected "segment": expected a declaration: warehouse, state, graph, audience, destination, activation or test`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := ParseFile("f.la", []byte(c.src))
			var got []string
			for _, e := range errs {
				got = append(got, fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Column, e.Msg))
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", trunc(strings.Join(got, "\n")), trunc(strings.Join(c.want, "\n")))
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// TestManyItemsInOneBlock: participle caps a repetition at a million
// matches; the error says so in the language's terms.
func TestManyItemsInOneBlock(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	var b strings.Builder
	b.WriteString("audience a { enrich x.y")
	for range 1000001 {
		b.WriteString(", x.y")
	}
	b.WriteString(" }")
	_, errs := ParseFile("f.la", []byte(b.String()))
	if len(errs) != 1 || errs[0].Msg != "too long: a list or block holds at most 1000000 items" {
		t.Fatalf("errors: %v", trunc(fmt.Sprint(errs)))
	}
}

func BenchmarkParse10MB(b *testing.B) {
	src, _ := tenMB(b)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, errs := ParseFile("big.la", src); errs != nil {
			b.Fatal(errs)
		}
	}
}

func BenchmarkLex10MB(b *testing.B) {
	src, _ := tenMB(b)
	b.SetBytes(int64(len(src)))
	b.Run("handwritten", func(b *testing.B) {
		for b.Loop() {
			s := scanner{src: string(src), pos: Pos{Line: 1, Column: 1}}
			for t := s.next(); !t.EOF(); t = s.next() {
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			lx, _ := referenceLexer.LexString("", string(src))
			for t, _ := lx.Next(); !t.EOF(); t, _ = lx.Next() {
			}
		}
	})
}

// BenchmarkParseWorkspace parses a 1,000-audience workspace: the design
// examples plus 1,000 audiences in ten files.
func BenchmarkParseWorkspace1000(b *testing.B) {
	var files [][]byte
	for _, p := range []string{"testdata/workspace/graph.la", "testdata/workspace/activations.la", "testdata/workspace/warehouse.la"} {
		src, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, src)
	}
	all := audiences(b, 1000)
	per := len(all) / 10
	for i := range 10 {
		// Cut at an audience boundary.
		start := bytes.Index(all[i*per:], []byte("# audience")) + i*per
		end := len(all)
		if i < 9 {
			end = bytes.Index(all[(i+1)*per:], []byte("# audience")) + (i+1)*per
		}
		files = append(files, all[start:end])
	}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		for i, src := range files {
			f, errs := ParseFile(fmt.Sprintf("f%d.la", i), src)
			if errs != nil {
				b.Fatal(errs)
			}
			n += len(f.Decls)
		}
		if n < 1000 {
			b.Fatalf("%d declarations", n)
		}
	}
}

func BenchmarkFormat10MB(b *testing.B) {
	src, _ := tenMB(b)
	f, errs := ParseFile("big.la", src)
	if errs != nil {
		b.Fatal(errs)
	}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		Format(f)
	}
}
