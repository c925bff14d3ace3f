package grammar_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
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
	clearRanges(reflect.ValueOf(ws1), map[uintptr]bool{})
	clearRanges(reflect.ValueOf(ws2), map[uintptr]bool{})
	if !reflect.DeepEqual(ws1, ws2) {
		t.Error("the checked workspace differs after fmt")
		for i := range ws1.Audiences {
			if !reflect.DeepEqual(ws1.Audiences[i], ws2.Audiences[i]) {
				t.Errorf("audience %s:\n%s\n%s", ws1.Audiences[i].Name, dsl.CanonicalAudience(ws1.Audiences[i]), dsl.CanonicalAudience(ws2.Audiences[i]))
			}
		}
	}
}

// clearRanges zeroes every source position reachable from v.
func clearRanges(v reflect.Value, seen map[uintptr]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		clearRanges(v.Elem(), seen)
	case reflect.Interface:
		if !v.IsNil() {
			// The value in an interface is not addressable: copy, clear, put back.
			c := reflect.New(v.Elem().Type()).Elem()
			c.Set(v.Elem())
			clearRanges(c, seen)
			if v.CanSet() {
				v.Set(c)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			clearRanges(v.Index(i), seen)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			c := reflect.New(v.Type().Elem()).Elem()
			c.Set(v.MapIndex(k))
			clearRanges(c, seen)
			v.SetMapIndex(k, c)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(grammar.Pos{}) {
			if v.CanSet() {
				v.SetZero()
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				clearRanges(v.Field(i), seen)
			}
		}
	}
}
