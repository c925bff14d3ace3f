package grammar

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestFormatGolden")

// inputs returns every .la file under testdata.
func inputs(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".la") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	return files
}

// normalize clears every position in the tree and rewrites each string's
// Raw in canonical quoting, so that trees parsed from differently laid out
// text compare equal when they mean the same.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			if s, ok := v.Interface().(*Str); ok {
				s.Raw = Quote(s.Value())
			}
			normalize(v.Elem())
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			normalize(v.Index(i))
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(span{}) {
			// span is unexported: reach it through its address.
			reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem().SetZero()
			return
		}
		for i := 0; i < v.NumField(); i++ {
			normalize(v.Field(i))
		}
	}
}

func commentTexts(f *File) []string {
	var out []string
	for _, c := range f.Comments {
		out = append(out, c.Text)
	}
	return out
}

// checkFormat parses src, which must have no syntax errors, and checks
// that its canonical form parses to the same tree with the same comments
// and is its own canonical form. It returns the canonical form.
func checkFormat(t testing.TB, name string, src []byte) []byte {
	t.Helper()
	f, errs := ParseFile(name, src)
	if errs != nil {
		t.Fatalf("%s: %v", name, errs)
	}
	out := Format(f)
	g, errs := ParseFile(name, out)
	if errs != nil {
		t.Fatalf("%s: the formatted text does not parse: %v\n%s", name, errs, out)
	}
	if a, b := commentTexts(f), commentTexts(g); !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: comments changed:\nbefore %q\nafter  %q\n%s", name, a, b, out)
	}
	again := Format(g)
	if !bytes.Equal(out, again) {
		t.Fatalf("%s: Format is not idempotent:\n--- first\n%s--- second\n%s", name, out, again)
	}
	fd, gd := f.Decls, g.Decls
	normalize(reflect.ValueOf(fd))
	normalize(reflect.ValueOf(gd))
	if !reflect.DeepEqual(fd, gd) {
		t.Fatalf("%s: the tree changed:\nbefore %s\nafter  %s\n%s", name, dump(fd), dump(gd), out)
	}
	return out
}

func dump(v any) string {
	var b strings.Builder
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				b.WriteString("nil")
				return
			}
			walk(v.Elem())
		case reflect.Slice:
			b.WriteString("[")
			for i := 0; i < v.Len(); i++ {
				if i > 0 {
					b.WriteString(" ")
				}
				walk(v.Index(i))
			}
			b.WriteString("]")
		case reflect.Struct:
			b.WriteString(v.Type().Name() + "{")
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).Name == "span" || v.Field(i).IsZero() {
					continue
				}
				b.WriteString(v.Type().Field(i).Name + ":")
				walk(v.Field(i))
				b.WriteString(" ")
			}
			b.WriteString("}")
		default:
			fmt.Fprintf(&b, "%v", v.Interface())
		}
	}
	walk(reflect.ValueOf(v))
	return b.String()
}

func TestFormatRoundTrip(t *testing.T) {
	for _, p := range inputs(t) {
		t.Run(p, func(t *testing.T) {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out := checkFormat(t, p, src)
			// Line endings change nothing.
			crlf := bytes.ReplaceAll(src, []byte("\n"), []byte("\r\n"))
			if got := checkFormat(t, p, crlf); !bytes.Equal(got, out) {
				t.Errorf("%s: with CRLF line endings the source formats differently:\n%s", p, got)
			}
			// Tab indentation round-trips too; comments continued on the
			// next line may then no longer line up, so the text may differ.
			checkFormat(t, p, bytes.ReplaceAll(src, []byte("\n  "), []byte("\n\t")))
		})
	}
}

// TestFormatGolden pins the layout: testdata/X/Y.la formats to
// testdata/X/Y.golden (go test -run TestFormatGolden -update rewrites them).
func TestFormatGolden(t *testing.T) {
	for _, p := range inputs(t) {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, errs := ParseFile(p, src)
		if errs != nil {
			t.Fatalf("%s: %v", p, errs)
		}
		got := Format(f)
		golden := strings.TrimSuffix(p, ".la") + ".golden"
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: formatted text differs from %s:\n--- got\n%s--- want\n%s", p, golden, got, want)
		}
	}
}

func TestFormatKeepsComments(t *testing.T) {
	// Each case: source, then the expected canonical text.
	cases := []struct{ name, src, want string }{
		{"empty", "", ""},
		{"only a comment", "# c", "# c\n"},
		{"only comments, blank lines collapse", "# a\n\n\n# b\n", "# a\n\n# b\n"},
		{"trailing comment stays on its line",
			`state "x"   # where state lives`,
			"state \"x\" # where state lives\n"},
		{"comment between tokens of one line moves before the line",
			"audience a { match trait x # why\n = 1 }",
			"audience a {\n  # why\n  match trait x = 1\n}\n"},
		{"comment in an empty block stays inside",
			"audience a {\n\n   # later\n}",
			"audience a {\n  # later\n}\n"},
		{"comment before a closing brace is indented inside",
			"graph {\n  max_depth 7\n\n# end of graph\n}",
			"graph {\n  max_depth 7\n\n  # end of graph\n}\n"},
		{"blank lines after { and before } go",
			"warehouse {\n\n  type duckdb\n\n}",
			"warehouse {\n  type duckdb\n}\n"},
		{"declarations get one blank line, comments stay with the next",
			"state \"a\"\n# about b\nstate \"b\"\n\n\n\nstate \"c\"",
			"state \"a\"\n\n# about b\nstate \"b\"\n\nstate \"c\"\n"},
		{"a continued trailing comment stays aligned",
			"warehouse {\n  type duckdb      # one\n                   # two\n  path \"p\"\n}",
			"warehouse {\n  type duckdb # one\n              # two\n  path \"p\"\n}\n"},
		{"trailing comments in a broken condition stay at their lines",
			"audience a {\n  match profile -> account where status = \"open-and-some-more-text\" # one\n" +
				"    and trait plan = \"gold-and-platinum-and-more\" # two\n}\n",
			"audience a {\n  match profile -> account where status = \"open-and-some-more-text\" # one\n" +
				"    and trait plan = \"gold-and-platinum-and-more\" # two\n}\n"},
		{"comment after the last token of the file",
			"state \"x\"\n\n# bye\n",
			"state \"x\"\n\n# bye\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := checkFormat(t, "c.la", []byte(c.src))
			if string(got) != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}
