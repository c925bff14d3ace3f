package dsl

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/grammar"
)

// workspaceWith returns base.la plus n audiences covering the language.
func workspaceWith(tb testing.TB, n int) map[string][]byte {
	base, err := os.ReadFile("testdata/base.la")
	if err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `audience a%d {
  description "audience %d"
  schedule every 1h
  match profile -> account where (status = "open" and opened_at within 365 days)
                -> subscription where tier = "Premium"
                -> at least 5 transaction where amount > %d
    and trait plan in ("gold", "platinum")
    and not profile -> account where status = "frozen"
    and performed "Order Completed" at least 3 times within 30 days where total > 50
    or in audience a%d
  enrich subscription.tier, account.id, trait.email
}
`, i, i, i, (i+1)%n)
	}
	return map[string][]byte{"base.la": base, "case.la": []byte(b.String())}
}

func checkSources(srcs map[string][]byte) (*Workspace, Diagnostics) {
	var files []*grammar.File
	for _, name := range []string{"base.la", "case.la"} {
		f, _ := grammar.ParseFile(name, srcs[name])
		files = append(files, f)
	}
	return Check(".", files, Options{})
}

// BenchmarkCheck1000 parses and checks a workspace of 1,000 audiences.
func BenchmarkCheck1000(b *testing.B) {
	srcs := workspaceWith(b, 1000)
	b.SetBytes(int64(len(srcs["case.la"])))
	for b.Loop() {
		var files []*grammar.File
		for _, name := range []string{"base.la", "case.la"} {
			f, _ := grammar.ParseFile(name, srcs[name])
			files = append(files, f)
		}
		if _, diags := Check(".", files, Options{}); len(diags) != 1 { // the reference cycle
			b.Fatalf("diags: %v", diags)
		}
	}
}

// TestTenThousandAudiences: a big workspace checks completely, and a
// reference cycle through all of them is found once.
func TestTenThousandAudiences(t *testing.T) {
	ws, diags := checkSources(workspaceWith(t, 10000))
	if len(ws.Audiences) != 10000 {
		t.Fatalf("audiences = %d", len(ws.Audiences))
	}
	if len(diags) != 1 || !strings.HasPrefix(diags[0].Summary, "audience reference cycle: a0 -> a1 -> a2") {
		t.Fatalf("diags = %.300v", diags)
	}
}

func TestGraphPictures(t *testing.T) {
	ws, diags := Load("../testdata/workspaces/design", Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var m, d strings.Builder
	if err := ws.Graph.WriteMermaid(&m); err != nil {
		t.Fatal(err)
	}
	if err := ws.Graph.WriteDot(&d); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`household -->|"through HOME.HOUSEHOLD_PETS: household.id = hp.household_id and hp.pet_id = pet.id"| pet`,
		`transaction["transaction (level 4)<br/>BANK.TRANSACTIONS key id"]`,
	} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("mermaid lacks %q:\n%s", want, m.String())
		}
	}
	if !strings.Contains(d.String(), `{ rank=same; "account"; "household" }`) {
		t.Errorf("dot lacks the level-2 rank:\n%s", d.String())
	}
}
