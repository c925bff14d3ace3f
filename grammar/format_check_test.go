package grammar_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/grammar/grammartest"
)

// TestFormatKeepsMeaning checks a workspace before and after fmt: the
// checked IR must be the same, positions aside.
func TestFormatKeepsMeaning(t *testing.T) {
	dir := filepath.Join("testdata", "workspace")
	paths, err := filepath.Glob(filepath.Join(dir, "*.la"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no workspace files: %v", err)
	}
	var before, after []*grammar.File
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, errs := grammar.ParseFile(p, src)
		if errs != nil {
			t.Fatal(errs)
		}
		g, errs := grammar.ParseFile(p, grammar.Format(f))
		if errs != nil {
			t.Fatal(errs)
		}
		before, after = append(before, f), append(after, g)
	}
	ws1, diags := dsl.Check(dir, before, dsl.Options{})
	if diags.HasErrors() {
		t.Fatalf("the workspace does not check:\n%v", diags)
	}
	ws2, diags := dsl.Check(dir, after, dsl.Options{})
	if diags.HasErrors() {
		t.Fatalf("the formatted workspace does not check:\n%v", diags)
	}
	if len(ws1.Audiences) == 0 || ws1.Graph == nil || len(ws1.Activations) == 0 {
		t.Fatal("the workspace is missing parts this test is about")
	}
	ws1.Files, ws2.Files = nil, nil
	grammartest.ClearPositions(ws1)
	grammartest.ClearPositions(ws2)
	if !reflect.DeepEqual(ws1, ws2) {
		t.Error("the checked workspace differs after fmt")
		for i := range ws1.Audiences {
			if !reflect.DeepEqual(ws1.Audiences[i], ws2.Audiences[i]) {
				t.Errorf("audience %s:\n%s\n%s", ws1.Audiences[i].Name, dsl.CanonicalAudience(ws1.Audiences[i]), dsl.CanonicalAudience(ws2.Audiences[i]))
			}
		}
	}
}
