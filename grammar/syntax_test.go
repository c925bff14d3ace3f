package grammar

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestSyntaxErrors runs testdata/syntax: each `parse` case is a file's
// text, and the expected output its syntax errors as line:col: message, or
// the number of declarations when there are none. -rewrite regenerates.
func TestSyntaxErrors(t *testing.T) {
	datadriven.RunTest(t, "testdata/syntax", func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "parse" {
			t.Fatalf("unknown command %q", d.Cmd)
		}
		src := d.Input
		if d.HasArg("crlf") {
			src = strings.ReplaceAll(src, "\n", "\r\n")
		}
		f, errs := ParseFile("f.la", []byte(src))
		if errs == nil {
			return fmt.Sprintf("ok: %d declarations\n", len(f.Decls))
		}
		var b strings.Builder
		for _, e := range errs {
			fmt.Fprintf(&b, "%d:%d-%d:%d: %s\n", e.Pos.Line, e.Pos.Column, e.EndPos.Line, e.EndPos.Column, e.Msg)
		}
		if len(f.Broken) > 0 {
			var names []string
			for _, br := range f.Broken {
				names = append(names, strings.TrimSpace(br.Keyword+" "+br.Name))
			}
			fmt.Fprintf(&b, "broken: %s\n", strings.Join(names, ", "))
		}
		return b.String()
	})
}
