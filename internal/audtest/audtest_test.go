package audtest

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// workspace is the seed workspace (../../testdata/seed) with testdata's
// tests, CSV files and an extra audience.
func workspace(t *testing.T) *dsl.Workspace {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS("testdata")); err != nil {
		t.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return ws
}

var took = regexp.MustCompile(` [0-9]+\.[0-9]+m?s\n`)

// TestRun: the passing tests pass, the failing one prints its member diff,
// the one DuckDB cannot run is an error with the reason, and the report is
// one line per test.
func TestRun(t *testing.T) {
	ws := workspace(t)
	rep, err := Run(context.Background(), ws, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	got := took.ReplaceAllString(b.String(), "<dur>\n")
	want := `ok   one card outstanding, one paid <dur>
ok   nobody without cards <dur>
ok   a card is paid off, another falls due <dur>
ok   premium: six transactions <dur>
FAIL wrong expectations <dur>
     tests.la:69:3: expect members u1, u2
       missing:    u2
       unexpected: u3
     tests.la:70:3: expect member u3 with entities credit_card c1
       missing:    c1
       unexpected: c3
       unexpected: c4
FAIL ltv is a number <dur>
`
	if !strings.HasPrefix(got, want) {
		t.Fatalf("got\n%s\nwant (a prefix)\n%s", got, want)
	}
	if !strings.Contains(got, `tests.la:74:1: the test could not run: cycle 1:`) || !strings.Contains(got, "lots") || !strings.HasSuffix(got, "4 passed, 2 failed\n") {
		t.Fatalf("the error of the test that cannot run:\n%s", got)
	}
	if rep.Failed() != 2 {
		t.Fatalf("%d failed", rep.Failed())
	}

	// --run selects by name.
	rep, err = Run(context.Background(), ws, Options{Run: regexp.MustCompile("^premium")})
	if err != nil || len(rep.Results) != 1 || !rep.Results[0].Passed() {
		t.Fatalf("--run: %+v, %v", rep, err)
	}
}

// TestJUnit parses the JUnit XML and checks it against the rules of the
// JUnit schema (JUnit.xsd, as Jenkins and most CI systems read it): the
// root testsuites holds testsuite elements only; each testsuite has the
// required attributes package, id, name, timestamp, hostname, tests,
// failures, errors and time, with their types, and the children
// properties, testcase*, system-out, system-err in that order; each
// testcase has name, classname and time and at most one failure or error,
// which has a type; no element or attribute the schema does not define.
func TestJUnit(t *testing.T) {
	ws := workspace(t)
	rep, err := Run(context.Background(), ws, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.WriteJUnit(&b, time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	root, err := parseXML(b.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if err := validateJUnit(root); err != nil {
		t.Fatalf("not valid JUnit XML: %v\n%s", err, b.String())
	}
	suite := root.kids[0]
	if suite.attr["tests"] != "6" || suite.attr["failures"] != "1" || suite.attr["errors"] != "1" || suite.attr["name"] != "tests.la" {
		t.Fatalf("suite %v", suite.attr)
	}
	var failure string
	for _, c := range suite.kids {
		if c.name == "testcase" && c.attr["name"] == "wrong expectations" {
			failure = c.kids[0].text
		}
	}
	if !strings.Contains(failure, "missing:    u2") || !strings.Contains(failure, "unexpected: u3") {
		t.Fatalf("the failure lacks the member diff: %q", failure)
	}
	// The checker refuses what the schema would: a broken document.
	for _, bad := range []string{
		`<testsuites><testsuite name="x" tests="1" failures="0" errors="0" time="0" timestamp="2026-03-15T12:00:00" hostname="h" package="p" id="0"><properties/><testcase name="a" classname="c" time="x"/><system-out/><system-err/></testsuite></testsuites>`,
		`<testsuites><testsuite name="x" tests="1" failures="0" errors="0" time="0" timestamp="2026-03-15T12:00:00" hostname="h" id="0"><properties/><system-out/><system-err/></testsuite></testsuites>`,
		`<testsuites><testsuite name="x" tests="1" failures="0" errors="0" time="0" timestamp="2026-03-15T12:00:00" hostname="h" package="p" id="0"><testcase name="a" classname="c" time="0"/><properties/><system-out/><system-err/></testsuite></testsuites>`,
		`<testsuites><testsuite name="x" tests="1" failures="0" errors="0" time="0" timestamp="2026-03-15T12:00:00" hostname="h" package="p" id="0"><properties/><testcase name="a" classname="c" time="0" line="3"/><system-out/><system-err/></testsuite></testsuites>`,
	} {
		root, err := parseXML([]byte(bad))
		if err == nil {
			err = validateJUnit(root)
		}
		if err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
}

type xmlNode struct {
	name string
	attr map[string]string
	kids []*xmlNode
	text string
}

func parseXML(b []byte) (*xmlNode, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []*xmlNode
	var root *xmlNode
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" && root != nil {
				return root, nil
			}
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &xmlNode{name: tok.Name.Local, attr: map[string]string{}}
			for _, a := range tok.Attr {
				n.attr[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
}

var (
	isoDateTime = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$`)
	decimal     = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
)

// token is xs:token with minLength 1: no leading, trailing or double
// spaces, no tab or newline.
func token(s string) bool {
	return s != "" && strings.TrimSpace(s) == s && !strings.Contains(s, "  ") && !strings.ContainsAny(s, "\t\n\r")
}

func attrs(n *xmlNode, required, optional map[string]func(string) bool) error {
	for k, ok := range required {
		v, there := n.attr[k]
		if !there {
			return fmt.Errorf("%s lacks attribute %s", n.name, k)
		}
		if !ok(v) {
			return fmt.Errorf("%s: attribute %s=%q has the wrong type", n.name, k, v)
		}
	}
	for k, v := range n.attr {
		if _, ok := required[k]; ok {
			continue
		}
		check, ok := optional[k]
		if !ok {
			return fmt.Errorf("%s: attribute %s is not in the schema", n.name, k)
		}
		if !check(v) {
			return fmt.Errorf("%s: attribute %s=%q has the wrong type", n.name, k, v)
		}
	}
	return nil
}

func anyString(string) bool { return true }

func integer(s string) bool { _, err := strconv.Atoi(s); return err == nil }

func validateJUnit(root *xmlNode) error {
	if root.name != "testsuites" || len(root.attr) != 0 {
		return fmt.Errorf("the root is %s with %v, not a bare testsuites", root.name, root.attr)
	}
	for _, s := range root.kids {
		if s.name != "testsuite" {
			return fmt.Errorf("testsuites holds %s", s.name)
		}
		if err := attrs(s, map[string]func(string) bool{
			"package": token, "id": integer, "name": token, "timestamp": isoDateTime.MatchString, "hostname": token,
			"tests": integer, "failures": integer, "errors": integer, "time": decimal.MatchString,
		}, nil); err != nil {
			return err
		}
		// properties, testcase*, system-out, system-err.
		k := s.kids
		if len(k) < 3 || k[0].name != "properties" || k[len(k)-2].name != "system-out" || k[len(k)-1].name != "system-err" {
			return fmt.Errorf("testsuite %s: children out of the schema's order", s.attr["name"])
		}
		for _, p := range k[0].kids {
			if p.name != "property" {
				return fmt.Errorf("properties holds %s", p.name)
			}
			if err := attrs(p, map[string]func(string) bool{"name": token, "value": anyString}, nil); err != nil {
				return err
			}
		}
		cases, failures, errs := 0, 0, 0
		for _, c := range k[1 : len(k)-2] {
			if c.name != "testcase" {
				return fmt.Errorf("testsuite holds %s between properties and system-out", c.name)
			}
			cases++
			if err := attrs(c, map[string]func(string) bool{"name": token, "classname": token, "time": decimal.MatchString}, nil); err != nil {
				return err
			}
			if len(c.kids) > 1 {
				return fmt.Errorf("testcase %s holds %d elements, at most one failure or error", c.attr["name"], len(c.kids))
			}
			for _, p := range c.kids {
				switch p.name {
				case "failure":
					failures++
				case "error":
					errs++
				default:
					return fmt.Errorf("testcase holds %s", p.name)
				}
				if err := attrs(p, map[string]func(string) bool{"type": anyString}, map[string]func(string) bool{"message": anyString}); err != nil {
					return err
				}
			}
		}
		if strconv.Itoa(cases) != s.attr["tests"] || strconv.Itoa(failures) != s.attr["failures"] || strconv.Itoa(errs) != s.attr["errors"] {
			return fmt.Errorf("testsuite %s counts %v, holds %d tests, %d failures, %d errors", s.attr["name"], s.attr, cases, failures, errs)
		}
	}
	return nil
}
