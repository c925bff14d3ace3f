package grammar

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"
)

// FuzzParse feeds arbitrary text to ParseFile. It must not panic or hang;
// every error must point inside the file, at the line and column its byte
// offset is on; and text that parses cleanly must survive Format: same
// tree, same comments, and Format of the result changes nothing.
//
// Seeds: every .la file under testdata, plus testdata/fuzz/FuzzParse (the
// inputs the fuzzer once failed on).
func FuzzParse(f *testing.F) {
	for _, p := range inputs(f) {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, errs := ParseFile("fuzz.la", src)
		if file == nil {
			t.Fatal("nil File")
		}
		for i, e := range errs {
			checkPos(t, src, e.Pos, e.Msg)
			checkPos(t, src, e.EndPos, e.Msg)
			if e.EndPos.Offset < e.Pos.Offset {
				t.Fatalf("%v: ends at offset %d before it starts", e, e.EndPos.Offset)
			}
			if strings.TrimSpace(e.Msg) == "" {
				t.Fatalf("error without a message at %v", e.Pos)
			}
			if i > 0 && before(e.Pos, errs[i-1].Pos) {
				t.Fatalf("errors out of order: %v after %v", e, errs[i-1])
			}
		}
		if errs == nil {
			checkFormat(t, "fuzz.la", src)
		}
		if utf8.Valid(src) {
			checkDiagnose(t, src)
		}
	})
}

// checkDiagnose fails when diagnose and participle disagree on whether a
// declaration parses: diagnose must explain every participle error, and
// should not object to what participle accepts.
func checkDiagnose(t *testing.T, src []byte) {
	toks, _ := tokens(&File{Name: "fuzz.la", Src: src})
	for _, chunk := range splitDecls(toks) {
		if checkNesting(chunk) != nil {
			continue
		}
		pl, err := lexer.Upgrade(&sliceLexer{toks: chunk})
		if err != nil {
			t.Fatal(err)
		}
		_, perr := parser.ParseFromLexer(pl)
		derr := diagnose(chunk)
		switch {
		case perr != nil && derr == nil:
			t.Fatalf("participle rejects %q (%v), diagnose finds nothing", chunkText(chunk), perr)
		case perr == nil && derr != nil:
			t.Fatalf("participle accepts %q, diagnose says %v", chunkText(chunk), derr)
		}
	}
}

func chunkText(chunk []lexer.Token) string {
	var parts []string
	for _, t := range chunk[:len(chunk)-1] {
		parts = append(parts, t.Value)
	}
	return strings.Join(parts, " ")
}

func before(a, b Pos) bool {
	return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
}

// checkPos fails unless p is a position in src whose line and column (in
// runes, 1-based) are those of its byte offset.
func checkPos(t *testing.T, src []byte, p Pos, what string) {
	t.Helper()
	if p.Filename != "fuzz.la" {
		t.Fatalf("%s: position %v has file name %q", what, p, p.Filename)
	}
	if err := CheckPos(src, p); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
