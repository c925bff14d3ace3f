package grammar

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/participle/v2/lexer"
)

// referenceLexer is the regular-expression definition the hand-written
// Lexer replaced; the two must yield the same tokens.
var referenceLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Comment", Pattern: `#[^\n]*`},
	{Name: "Whitespace", Pattern: `[ \t\r\n]+`},
	{Name: "String", Pattern: `"(\\.|[^"\\\n])*"`},
	{Name: "BadString", Pattern: `"(\\.|[^"\\\n])*\\?`},
	{Name: "Duration", Pattern: `[0-9]+[A-Za-z_][A-Za-z0-9_]*`},
	{Name: "Number", Pattern: `-?[0-9]+(\.[0-9]+)?`},
	{Name: "Arrow", Pattern: `->`},
	{Name: "Op", Pattern: `!=|<=|>=|=|<|>`},
	{Name: "Ident", Pattern: `[A-Za-z_][A-Za-z0-9_]*`},
	{Name: "Punct", Pattern: `[{}(),.%]`},
	{Name: "Invalid", Pattern: `.`},
})

func lexAll(t testing.TB, def lexer.Definition, src string) []lexer.Token {
	t.Helper()
	lx, err := def.(lexer.StringDefinition).LexString("f.la", src)
	if err != nil {
		t.Fatal(err)
	}
	var out []lexer.Token
	for {
		tok, err := lx.Next()
		if err != nil {
			t.Fatalf("lex %q: %v", src, err)
		}
		out = append(out, tok)
		if tok.EOF() {
			return out
		}
	}
}

// compareLexers fails when the two definitions disagree on src.
func compareLexers(t testing.TB, src string) {
	t.Helper()
	want := lexAll(t, referenceLexer, src)
	got := lexAll(t, Lexer, src)
	refNames := lexer.SymbolsByRune(referenceLexer)
	names := lexer.SymbolsByRune(Lexer)
	for i := 0; i < len(want) || i < len(got); i++ {
		if i >= len(want) || i >= len(got) {
			t.Fatalf("%q: token counts differ: reference %d, ours %d", src, len(want), len(got))
		}
		w, g := want[i], got[i]
		if refNames[w.Type] != names[g.Type] || w.Value != g.Value || w.Pos != g.Pos {
			t.Fatalf("%q: token %d: reference %s %q at %v, ours %s %q at %v",
				src, i, refNames[w.Type], w.Value, w.Pos, names[g.Type], g.Value, g.Pos)
		}
	}
}

func TestLexerMatchesReference(t *testing.T) {
	cases := []string{
		"", " ", "\n", "#", "# only a comment", "#\r\n#x\n", "a->b", "a - > b", "-", "-5", "-5.5", "-5.", "5.x",
		"1h", "15m30", "1.5h", "12_", "0x1F", `"abc"`, `"a\"b"`, `"a\\"`, `"unterminated`, "\"bad\\\n", `"x\`, `"x\"`,
		"\"é\\é\"", "\"a\\\xffb\"", "\xff\xfe", "é", "a.b.c", "!=", "!", "<=<>=>", "= ==", "{}(),.", "20%", "@@@", "\t\r\n  x",
		"trait x = 1 # trailing\nnext", "ünïcode # ümlaut\nx", "\"tab\there\"", "a\u00a0b", "日本語 \"日本\"",
	}
	for _, c := range cases {
		compareLexers(t, c)
	}
	files, _ := filepath.Glob("testdata/*/*.la")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		compareLexers(t, string(b))
		compareLexers(t, strings.ReplaceAll(string(b), "\n", "\r\n"))
	}
}

func FuzzLexer(f *testing.F) {
	f.Add(`audience a { match trait x = "y\q" -> 1h -5.5 }`)
	f.Fuzz(func(t *testing.T, src string) { compareLexers(t, src) })
}
