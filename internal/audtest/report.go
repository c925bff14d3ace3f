package audtest

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/linkaud/linkaud/engine"
)

// WriteText prints one line per test, "ok" or "FAIL", with the time; under
// a failure, each expectation that did not hold with its place and the
// difference (missing, unexpected); then a summary line.
func (r *Report) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	for _, res := range r.Results {
		status := "ok  "
		if !res.Passed() {
			status = "FAIL"
		}
		fmt.Fprintf(b, "%s %s  %s\n", status, res.Test.Name, engine.FormatDuration(res.Took))
		if res.Err != nil {
			fmt.Fprintf(b, "     %s: the test could not run: %v\n", r.place(res.Test.Range.Start.Filename, res.Test.Range.Start.Line, res.Test.Range.Start.Column), res.Err)
		}
		for _, f := range res.Failures {
			fmt.Fprintf(b, "     %s: %s", r.place(f.At.Start.Filename, f.At.Start.Line, f.At.Start.Column), f.What)
			if len(res.Test.Cycles) > 1 {
				fmt.Fprintf(b, " (cycle %d)", f.Cycle)
			}
			b.WriteString("\n")
			for _, m := range f.Missing {
				fmt.Fprintf(b, "       missing:    %s\n", m)
			}
			for _, u := range f.Unexpected {
				fmt.Fprintf(b, "       unexpected: %s\n", u)
			}
		}
	}
	fmt.Fprintf(b, "%d passed, %d failed\n", len(r.Results)-r.Failed(), r.Failed())
	return b.Flush()
}

// place is file:line:col with the file relative to the workspace.
func (r *Report) place(file string, line, col int) string {
	if rel, err := filepath.Rel(r.Dir, file); err == nil && !strings.HasPrefix(rel, "..") {
		file = rel
	}
	return fmt.Sprintf("%s:%d:%d", file, line, col)
}

// The JUnit XML format, as Ant's JUnit task writes it and its schema
// (JUnit.xsd, the one CI systems validate against) describes it: a
// testsuites element of testsuite elements with package, id, name,
// timestamp, hostname, tests, failures, errors and time, holding
// properties, testcase elements (name, classname, time; a failure or an
// error with message and type), system-out and system-err, in that order.
// The schema allows no other attribute.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string          `xml:"name,attr"`
	ID        int             `xml:"id,attr"`
	Package   string          `xml:"package,attr"`
	Tests     int             `xml:"tests,attr"`
	Failures  int             `xml:"failures,attr"`
	Errors    int             `xml:"errors,attr"`
	Time      string          `xml:"time,attr"`
	Timestamp string          `xml:"timestamp,attr"`
	Hostname  string          `xml:"hostname,attr"`
	Props     junitProperties `xml:"properties"`
	Cases     []junitCase     `xml:"testcase"`
	SystemOut string          `xml:"system-out"`
	SystemErr string          `xml:"system-err"`
}

type junitProperties struct {
	Props []junitProperty `xml:"property"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML: one testsuite per .la file,
// one testcase per test (classname: the audience), a failure with the
// member diff, an error for a test that could not run.
func (r *Report) WriteJUnit(w io.Writer, started time.Time) error {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	var out junitSuites
	index := map[string]int{}
	for _, res := range r.Results {
		file := r.rel(res.Test.Range.Start.Filename)
		i, ok := index[file]
		if !ok {
			i = len(out.Suites)
			index[file] = i
			out.Suites = append(out.Suites, junitSuite{Name: file, ID: i, Package: "linkaud", Time: "0",
				Timestamp: started.UTC().Format("2006-01-02T15:04:05"), Hostname: host,
				Props: junitProperties{Props: []junitProperty{{Name: "workspace", Value: r.Dir}}}})
		}
		s := &out.Suites[i]
		c := junitCase{Name: res.Test.Name, Classname: "audience." + res.Test.Audience.Name, Time: seconds(res.Took)}
		switch {
		case res.Err != nil:
			c.Error = &junitProblem{Message: res.Err.Error(), Type: "error", Text: r.place(res.Test.Range.Start.Filename, res.Test.Range.Start.Line, res.Test.Range.Start.Column) + ": " + res.Err.Error()}
			s.Errors++
		case len(res.Failures) > 0:
			var b strings.Builder
			for _, f := range res.Failures {
				fmt.Fprintf(&b, "%s: %s\n", r.place(f.At.Start.Filename, f.At.Start.Line, f.At.Start.Column), f.What)
				for _, m := range f.Missing {
					fmt.Fprintf(&b, "  missing:    %s\n", m)
				}
				for _, u := range f.Unexpected {
					fmt.Fprintf(&b, "  unexpected: %s\n", u)
				}
			}
			first := res.Failures[0]
			c.Failure = &junitProblem{Message: fmt.Sprintf("%s: %d missing, %d unexpected", first.What, len(first.Missing), len(first.Unexpected)), Type: "expectation", Text: b.String()}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
		t, _ := time.ParseDuration(s.Time + "s")
		s.Time = seconds(t + res.Took)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func (r *Report) rel(file string) string {
	if rel, err := filepath.Rel(r.Dir, file); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return file
}
