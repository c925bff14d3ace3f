package dsl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/linkaud/linkaud/grammar"
)

// TestCheck runs the data-driven cases in testdata/check. Each `check` case
// is the text of a file case.la, checked together with testdata/base.la
// (`check bare` leaves the base out); the expected output is the rendered
// diagnostics, or "ok" followed by the canonical audiences. Regenerate with
// -rewrite.
func TestCheck(t *testing.T) {
	base, err := os.ReadFile("testdata/base.la")
	if err != nil {
		t.Fatal(err)
	}
	datadriven.Walk(t, "testdata/check", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "check" {
				t.Fatalf("unknown command %q", d.Cmd)
			}
			srcs := map[string][]byte{"case.la": []byte(d.Input)}
			if !d.HasArg("bare") {
				srcs["base.la"] = base
			}
			return runCheck(srcs)
		})
	})
}

func runCheck(srcs map[string][]byte) string {
	var files []*grammar.File
	var diags Diagnostics
	for _, name := range []string{"base.la", "case.la"} {
		src, ok := srcs[name]
		if !ok {
			continue
		}
		f, errs := grammar.ParseFile(name, src)
		for _, e := range errs {
			diags = append(diags, &Diagnostic{Summary: e.Msg, Subject: Range{Start: e.Pos, End: e.EndPos}})
		}
		files = append(files, f)
	}
	ws, cd := Check(".", files, Options{})
	diags = append(diags, cd...)
	diags.Sort()
	var b bytes.Buffer
	Render(&b, diags, srcs)
	if !diags.HasErrors() {
		b.WriteString("ok\n")
		for _, a := range ws.Audiences {
			b.WriteString(CanonicalAudience(a))
			for _, al := range a.Alerts {
				b.WriteString("alert of " + a.Name + ": " + al.String())
				if al.Notify != nil {
					b.WriteString(" notify " + al.Notify.Name)
				}
				b.WriteString("\n")
			}
		}
		for _, act := range ws.Activations {
			b.WriteString(activationString(act))
		}
	}
	return b.String()
}

func activationString(a *Activation) string {
	var b strings.Builder
	b.WriteString("activation " + a.Name + ": " + a.Audience.Name + " -> " + a.Destination.Name + " " + a.Event.String())
	if a.Entity != nil {
		b.WriteString(" " + a.Entity.Name)
	}
	if a.SendCurrent {
		b.WriteString(" send_current")
	}
	if a.Properties != nil {
		var ps []string
		for _, p := range a.Properties {
			ps = append(ps, p.String())
		}
		b.WriteString(" properties [" + strings.Join(ps, ", ") + "]")
	}
	b.WriteString("\n")
	return b.String()
}

// TestDesignWorkspace checks the workspace made of DESIGN.md's examples.
func TestDesignWorkspace(t *testing.T) {
	ws, diags := Load(filepath.Join("..", "testdata", "workspaces", "design"), Options{})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	if got := len(ws.Audiences); got != 4 {
		t.Fatalf("audiences = %d, want 4", got)
	}
	a := ws.Audience("premium_heavy_users")
	if a.Primary == nil || len(a.Primary.Steps) != 3 || a.Primary.Steps[2].Quant != (Quant{AtLeast, 5}) {
		t.Fatalf("premium_heavy_users primary path = %s", CondString(a.Primary))
	}
}
