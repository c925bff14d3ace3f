package dsl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

// Options configure Check.
type Options struct {
	// MaxDepth is the deepest path allowed, counting profile as one level.
	// Zero means the graph's max_depth setting, else DefaultMaxDepth.
	MaxDepth int
}

// DefaultMaxDepth is Segment's current limit (the seed says 4; Segment
// raised it to 6).
const DefaultMaxDepth = 6

// Load reads every .la file of dir (not recursing), parses and checks them.
// The workspace is nil when there are errors.
func Load(dir string, opts Options) (*Workspace, Diagnostics) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, Diagnostics{{Summary: fmt.Sprintf("cannot read workspace: %v", err), Subject: Range{Start: grammar.Pos{Filename: dir}}}}
	}
	var files []*grammar.File
	var diags Diagnostics
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".la" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if info, err := e.Info(); err == nil && info.Size() > MaxSourceBytes {
			diags = append(diags, &Diagnostic{Summary: sizeError(info.Size()), Subject: Range{Start: grammar.Pos{Filename: path}}})
			continue
		}
		src, err := readLimited(path)
		if err != nil {
			diags = append(diags, &Diagnostic{Summary: fmt.Sprintf("cannot read file: %v", err), Subject: Range{Start: grammar.Pos{Filename: path}}})
			continue
		}
		f, errs := grammar.ParseFile(path, src)
		for _, e := range errs {
			diags = append(diags, &Diagnostic{Summary: e.Msg, Subject: Range{Start: e.Pos, End: e.EndPos}})
		}
		files = append(files, f)
	}
	if len(files) == 0 && len(diags) == 0 {
		diags = append(diags, &Diagnostic{Summary: "no .la files in workspace", Subject: Range{Start: grammar.Pos{Filename: dir}}})
	}
	ws, cdiags := Check(dir, files, opts)
	diags = append(diags, cdiags...)
	diags.Sort()
	if diags.HasErrors() {
		return nil, diags
	}
	return ws, diags
}

// Check resolves and type-checks parsed files as one workspace rooted at
// dir (relative paths in the files are relative to dir). It returns the IR
// and every diagnostic, sorted; the IR is partial when there are errors.
func Check(dir string, files []*grammar.File, opts Options) (*Workspace, Diagnostics) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		absDir = dir
	}
	c := &checker{
		opts:      opts,
		ws:        &Workspace{Dir: absDir, Files: files},
		audByName: map[string]*Audience{},
		audDecl:   map[*Audience]*grammar.Audience{},
		broken:    map[string]map[string]bool{},
	}
	c.check(files)
	c.diags.Sort()
	return c.ws, c.diags
}

type checker struct {
	opts  Options
	ws    *Workspace
	diags Diagnostics

	audByName map[string]*Audience
	audDecl   map[*Audience]*grammar.Audience
	// broken[keyword][name]: declarations with syntax errors, whose names
	// must not be reported as unknown.
	broken      map[string]map[string]bool
	graphBroken bool
}

func rng(n grammar.Node) Range {
	s, e := n.Span()
	return Range{Start: s, End: e}
}

func (c *checker) errorf(n grammar.Node, format string, args ...any) *Diagnostic {
	d := &Diagnostic{Severity: Error, Summary: fmt.Sprintf(format, args...), Subject: rng(n)}
	c.diags = append(c.diags, d)
	return d
}

func (c *checker) warnf(n grammar.Node, format string, args ...any) {
	c.diags = append(c.diags, &Diagnostic{Severity: Warning, Summary: fmt.Sprintf(format, args...), Subject: rng(n)})
}

// unknown reports an unknown name with a suggestion from candidates.
func (c *checker) unknown(n *grammar.Name, what string, candidates []string) {
	d := c.errorf(n, "unknown %s %q", what, n.Text)
	d.Suggestion = suggest(n.Text, candidates)
}

func (c *checker) check(files []*grammar.File) {
	var graphs []*grammar.Graph
	var warehouses []*grammar.Warehouse
	var states []*grammar.State
	var audiences []*grammar.Audience
	var dests []*grammar.Destination
	var acts []*grammar.Activation
	var tests []*grammar.Test
	for _, f := range files {
		for _, b := range f.Broken {
			if c.broken[b.Keyword] == nil {
				c.broken[b.Keyword] = map[string]bool{}
			}
			c.broken[b.Keyword][b.Name] = true
			if b.Keyword == "graph" {
				c.graphBroken = true
			}
		}
		for _, d := range f.Decls {
			switch {
			case d.Graph != nil:
				graphs = append(graphs, d.Graph)
			case d.Warehouse != nil:
				warehouses = append(warehouses, d.Warehouse)
			case d.State != nil:
				states = append(states, d.State)
			case d.Audience != nil:
				audiences = append(audiences, d.Audience)
			case d.Destination != nil:
				dests = append(dests, d.Destination)
			case d.Activation != nil:
				acts = append(acts, d.Activation)
			case d.Test != nil:
				tests = append(tests, d.Test)
			}
		}
	}
	for i, w := range warehouses {
		if i == 0 {
			c.ws.Warehouse = c.warehouse(w)
		} else {
			c.errorf(w, "warehouse declared again (first at %s)", posText(warehouses[0]))
		}
	}
	if c.ws.Warehouse == nil {
		c.ws.Warehouse = &Warehouse{Type: "duckdb", Path: ":memory:", Settings: map[string]string{}}
	}
	c.ws.StateDir = filepath.Join(c.ws.Dir, ".linkaud")
	for i, s := range states {
		if i > 0 {
			c.errorf(s, "state declared again (first at %s)", posText(states[0]))
			continue
		}
		c.state(s)
	}
	for i, g := range graphs {
		if i == 0 {
			c.ws.Graph = c.graph(g)
		} else {
			c.errorf(g, "graph declared again (first at %s): a workspace has one data graph", posText(graphs[0]))
		}
	}
	if c.ws.Graph == nil {
		if len(audiences) > 0 && !c.graphBroken {
			c.errorf(audiences[0].Name, "workspace has no graph block: audiences need a data graph")
		}
		c.graphBroken = true // suppress resolution errors that follow from it
		c.ws.Graph = &Graph{Profile: &Entity{Name: "profile"}, MaxDepth: DefaultMaxDepth}
	}
	// Declare every audience before checking any, so references resolve in
	// any order.
	for _, a := range audiences {
		if prev, ok := c.audByName[a.Name.Text]; ok {
			c.errorf(a.Name, "audience %q declared again (first at %s)", a.Name.Text, posText(c.audDecl[prev]))
			continue
		}
		ir := &Audience{Range: rng(a), Name: a.Name.Text, Schedule: DefaultSchedule}
		c.audByName[a.Name.Text] = ir
		c.audDecl[ir] = a
		c.ws.Audiences = append(c.ws.Audiences, ir)
	}
	for _, a := range c.ws.Audiences {
		c.audience(a, c.audDecl[a])
	}
	c.audienceCycles()
	c.versions()
	destNames := map[string]grammar.Node{}
	for _, d := range dests {
		if prev, ok := destNames[d.Name.Text]; ok {
			c.errorf(d.Name, "destination %q declared again (first at %s)", d.Name.Text, posText(prev))
			continue
		}
		destNames[d.Name.Text] = d
		if ir := c.destination(d); ir != nil {
			c.ws.Destinations = append(c.ws.Destinations, ir)
		}
	}
	c.alerts()
	actNames := map[string]grammar.Node{}
	sends := map[activationKey]*grammar.Activation{}
	for _, a := range acts {
		if prev, ok := actNames[a.Name.Text]; ok {
			c.errorf(a.Name, "activation %q declared again (first at %s)", a.Name.Text, posText(prev))
			continue
		}
		actNames[a.Name.Text] = a
		if ir := c.activation(a); ir != nil {
			if c.duplicateActivation(sends, a, ir) {
				continue
			}
			c.ws.Activations = append(c.ws.Activations, ir)
		}
	}
	c.tests(tests)
}

func posText(n grammar.Node) string {
	p, _ := n.Span()
	return fmt.Sprintf("%s:%d:%d", filepath.Base(p.Filename), p.Line, p.Column)
}

// audienceCycles reports `in audience` reference cycles, once per cycle.
func (c *checker) audienceCycles() {
	const (
		white = iota
		grey
		black
	)
	color := map[*Audience]int{}
	var stack []*Audience
	var visit func(a *Audience)
	visit = func(a *Audience) {
		color[a] = grey
		stack = append(stack, a)
		for _, d := range a.DependsOn {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				i := len(stack) - 1
				for stack[i] != d {
					i--
				}
				var names []string
				for _, x := range stack[i:] {
					names = append(names, x.Name)
				}
				names = append(names, d.Name)
				c.diags = append(c.diags, &Diagnostic{Severity: Error, Subject: c.refRange(a, d),
					Summary: "audience reference cycle: " + strings.Join(names, " -> ")})
			}
		}
		stack = stack[:len(stack)-1]
		color[a] = black
	}
	for _, a := range c.ws.Audiences {
		if color[a] == white {
			visit(a)
		}
	}
}

// refRange finds where a refers to d, for the cycle diagnostic.
func (c *checker) refRange(a, d *Audience) Range {
	found := a.Range
	done := false
	Inspect(a.Match, func(n Node) bool {
		if in, ok := n.(*InAudience); ok && in.Audience == d && !done {
			found, done = in.Range, true
		}
		return !done
	})
	return found
}

// versions fingerprints each audience: its canonical text, the graph's, and
// its dependencies' versions.
func (c *checker) versions() {
	graph := CanonicalGraph(c.ws.Graph)
	done := map[*Audience]bool{}
	var version func(a *Audience, depth int) string
	version = func(a *Audience, depth int) string {
		if done[a] || depth > len(c.ws.Audiences) {
			return a.Version
		}
		h := sha256.New()
		h.Write([]byte(graph))
		h.Write([]byte(canonicalDefinition(a)))
		for _, d := range a.DependsOn {
			h.Write([]byte(d.Name + "@" + version(d, depth+1)))
		}
		a.Version = hex.EncodeToString(h.Sum(nil))[:16]
		done[a] = true
		return a.Version
	}
	for _, a := range c.ws.Audiences {
		version(a, 0)
	}
}
