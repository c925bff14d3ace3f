package dsl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

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
		if s.Path.Str == nil {
			c.errorf(s.Path, "state takes a directory as a string, e.g. state \".linkaud\"")
			continue
		}
		c.ws.StateDir = c.absPath(s.Path.Str.Value())
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
	actNames := map[string]grammar.Node{}
	for _, a := range acts {
		if prev, ok := actNames[a.Name.Text]; ok {
			c.errorf(a.Name, "activation %q declared again (first at %s)", a.Name.Text, posText(prev))
			continue
		}
		actNames[a.Name.Text] = a
		if ir := c.activation(a); ir != nil {
			c.ws.Activations = append(c.ws.Activations, ir)
		}
	}
	c.tests(tests)
}

func posText(n grammar.Node) string {
	p, _ := n.Span()
	return fmt.Sprintf("%s:%d:%d", filepath.Base(p.Filename), p.Line, p.Column)
}

func (c *checker) absPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.ws.Dir, p)
}

// localPath resolves a path that must stay inside the workspace unless
// written as an absolute path (see WorkspacePath), reporting at n.
func (c *checker) localPath(n grammar.Node, what, p string) (string, bool) {
	if p == "" {
		c.errorf(n, "%s is empty", what)
		return "", false
	}
	full, err := WorkspacePath(c.ws.Dir, p)
	if err != nil {
		c.errorf(n, "%s %v: write a path inside the workspace, or an absolute path", what, err)
		return "", false
	}
	return full, true
}

// WorkspacePath resolves p, a path written in a workspace rooted at dir.
// An absolute path is taken as given: the user named that place. A relative
// path must stay inside dir, both as written ("../x", "data/../../x") and
// through symbolic links: the deepest existing directory or file on its way
// (and, for a glob, each file it matches now) must resolve inside dir. So a
// workspace received from someone else cannot make linkaud read or write
// files beside it. A path that does not exist yet is checked as far as it
// exists; dir itself may be a symbolic link.
func WorkspacePath(dir, p string) (string, error) {
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("%q leaves the workspace directory", p)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	full := filepath.Join(dir, p)
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		// No directory to escape from (sources checked in memory).
		return full, nil
	}
	targets := []string{full}
	if strings.ContainsAny(p, "*?[") {
		// DuckDB expands the glob itself; check what it would read now.
		matches, _ := filepath.Glob(full)
		targets = append(targets, matches...)
	}
	for _, t := range targets {
		real, err := resolveExisting(t)
		if err != nil {
			return "", fmt.Errorf("%q: %v", p, err)
		}
		if !inside(root, real) {
			return "", fmt.Errorf("%q leads outside the workspace directory through a symbolic link (to %s)", p, real)
		}
	}
	return full, nil
}

// resolveExisting follows the symbolic links of the longest existing
// prefix of the absolute path p and appends the rest unchanged. A dangling
// link is followed too: creating a file through it would write its target.
func resolveExisting(p string) (string, error) {
	var rest []string
	for hops := 0; ; {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !os.IsNotExist(err) {
			return "", err
		}
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return "", fmt.Errorf("too many levels of symbolic links")
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = filepath.Clean(target)
			continue
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...), nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && filepath.IsLocal(rel)
}

// ---- settings blocks ----

// settingSpec describes the keys a block allows.
type settingSpec struct {
	kind   string // how the value is written: "string", "ident", "int", "bool", "any", "duration", "labels"
	secret bool   // must be env("…")
	multi  bool   // may repeat
	from   bool   // takes `from VALUE`
	// fromTrait: may take `from trait.COLUMN` (a destination's
	// identifier read from a profile trait).
	fromTrait bool
	required  bool // a warehouse of this type needs it
}

// settings validates a block's settings against spec and returns them by
// key (the first of each unless multi).
//
// A key given with an invalid value is reported once, here, and left out of
// the result; it still counts as present for required-key checks (see
// present), so that one mistake gives one diagnostic.
func (c *checker) settings(block string, ss []*grammar.Setting, spec map[string]settingSpec) map[string][]*grammar.Setting {
	out := map[string][]*grammar.Setting{}
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, s := range ss {
		sp, ok := spec[s.Key.Text]
		if !ok {
			d := c.errorf(s.Key, "unknown setting %q in %s", s.Key.Text, block)
			d.Suggestion = suggest(s.Key.Text, keys)
			if d.Suggestion == "" && len(keys) > 0 {
				d.Detail = "allowed: " + strings.Join(keys, ", ")
			}
			if d.Suggestion != "" && len(out[d.Suggestion]) == 0 {
				// Likely the misspelt required key: do not also report it missing.
				out[d.Suggestion] = append(out[d.Suggestion], nil)
			}
			continue
		}
		if len(out[s.Key.Text]) > 0 && !sp.multi {
			c.errorf(s.Key, "%s set twice in %s", s.Key.Text, block)
			continue
		}
		if s.From != nil && !sp.from && !sp.fromTrait {
			c.errorf(s.From, "%s does not take `from`", s.Key.Text)
			continue
		}
		if s.From != nil && sp.fromTrait && (s.From.Ref == nil || len(s.From.Ref.Parts) != 2 || s.From.Ref.Parts[0].Text != "trait") {
			c.errorf(s.From, "%s takes `from trait.COLUMN`, the profile trait holding the identifier", s.Key.Text)
			out[s.Key.Text] = append(out[s.Key.Text], nil)
			continue
		}
		if sp.from && s.From == nil {
			c.errorf(s, "%s needs `from \"FILE\"`", s.Key.Text)
			continue
		}
		if !c.settingValue(s.Key.Text, s.Value, sp) || (s.From != nil && !sp.fromTrait && !c.settingValue(s.Key.Text, s.From, settingSpec{kind: "string"})) {
			out[s.Key.Text] = append(out[s.Key.Text], nil)
			continue
		}
		out[s.Key.Text] = append(out[s.Key.Text], s)
	}
	return out
}

func (c *checker) settingValue(key string, v *grammar.Value, sp settingSpec) bool {
	if sp.secret {
		if v.Env == nil {
			c.errorf(v, "%s is a secret: give it as env(\"NAME\"), never as a literal", key)
			return false
		}
		return c.envName(v.Env)
	}
	if v.Env != nil {
		return c.envName(v.Env)
	}
	ok := true
	switch sp.kind {
	case "string":
		ok = v.Str != nil
	case "ident":
		ok = v.Ref != nil && len(v.Ref.Parts) == 1
	case "int":
		ok = v.Literal != nil && v.Literal.Number != "" && !strings.ContainsAny(v.Literal.Number, ".-")
	case "bool":
		ok = v.Literal != nil && v.Literal.Bool != ""
	case "labels":
		if ok = v.Str != nil; ok {
			if _, err := ParseLabels(v.Str.Value()); err != nil {
				c.errorf(v, "%s: %v", key, err)
				return false
			}
		}
	case "duration":
		if ok = v.Literal != nil && v.Literal.Duration != ""; ok {
			if _, err := parseDuration(v.Literal.Duration); err != nil {
				c.errorf(v, "%s: %v", key, err)
				return false
			}
		}
	}
	if !ok {
		c.errorf(v, "%s takes %s", key, kindText(sp.kind))
	}
	return ok
}

func (c *checker) envName(s *grammar.Str) bool {
	if !envNameRE.MatchString(s.Value()) {
		c.errorf(s, "env() takes the name of an environment variable, e.g. env(\"BRAZE_KEY\")")
		return false
	}
	return true
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func kindText(kind string) string {
	switch kind {
	case "string":
		return `a string, e.g. "text"`
	case "ident":
		return "a name"
	case "int":
		return "a whole number"
	case "bool":
		return "true or false"
	case "duration":
		return "a duration, e.g. 30s, 15m, 1h"
	case "labels":
		return `a string of KEY=VALUE pairs, e.g. "team=growth,env=prod"`
	}
	return "a value"
}

// valid drops the settings whose values were invalid.
func valid(ss []*grammar.Setting) []*grammar.Setting {
	out := ss[:0:0]
	for _, s := range ss {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// settingText is the literal text of a checked setting value.
func settingText(v *grammar.Value) string {
	switch {
	case v.Str != nil:
		return v.Str.Value()
	case v.Literal != nil:
		return v.Literal.Text()
	case v.Ref != nil:
		return v.Ref.String()
	}
	return ""
}

func toSetting(s *grammar.Setting) Setting {
	out := Setting{Range: rng(s.Value)}
	if s.Value.Env != nil {
		out.Secret = Secret{Env: s.Value.Env.Value()}
	} else {
		out.Text = settingText(s.Value)
	}
	if s.From != nil && s.From.Ref != nil && len(s.From.Ref.Parts) == 2 {
		out.FromTrait = s.From.Ref.Parts[1].Text
		out.FromRange = rng(s.From)
	}
	return out
}

var warehouseSpecs = map[string]map[string]settingSpec{
	"duckdb": {
		"type":            {kind: "ident"},
		"path":            {kind: "string"},
		"load":            {kind: "string", multi: true, from: true},
		"threads":         {kind: "int"},
		"memory_limit":    {kind: "string"},
		"max_connections": {kind: "int"},
		"access_mode":     {kind: "string"},
	},
	"snowflake": {
		"type":             {kind: "ident"},
		"dsn":              {secret: true},
		"private_key_path": {kind: "any"},
		"role":             {kind: "string"},
		"warehouse":        {kind: "string"},
		"database":         {kind: "string"},
		"schema":           {kind: "string"},
		"query_tag":        {kind: "string"},
		"timeout":          {kind: "duration"},
		"max_connections":  {kind: "int"},
		"exact_names":      {kind: "bool"},
	},
	"postgres": pgWarehouseSpec,
	"redshift": pgWarehouseSpec,
	// BigQuery: the billing project, the dataset of one-part table names,
	// the jobs' location, a service-account key file (else application
	// default credentials), a cap on bytes billed per query and labels on
	// every job ("team=growth,env=prod").
	"bigquery": {
		"type":                 {kind: "ident"},
		"project":              {kind: "string", required: true},
		"dataset":              {kind: "string"},
		"location":             {kind: "string"},
		"credentials_file":     {kind: "any"},
		"maximum_bytes_billed": {kind: "int"},
		"labels":               {kind: "labels"},
		"timeout":              {kind: "duration"},
		"max_connections":      {kind: "int"},
	},
	// Databricks, through the SQL Statement Execution API of a SQL
	// warehouse: the workspace host, the warehouse's id, a token, and the
	// catalog and schema of unqualified table names.
	"databricks": {
		"type":            {kind: "ident"},
		"host":            {kind: "string", required: true},
		"warehouse_id":    {kind: "string", required: true},
		"token":           {secret: true, required: true},
		"catalog":         {kind: "string"},
		"schema":          {kind: "string"},
		"timeout":         {kind: "duration"},
		"max_connections": {kind: "int"},
	},
}

// pgWarehouseSpec is the settings of the warehouses spoken to over
// PostgreSQL's protocol: a libpq URL or key=value DSN (a secret: it may hold
// the password), the schema unqualified names are looked up in first, and
// the same tagging, timeout and pool settings as Snowflake.
var pgWarehouseSpec = map[string]settingSpec{
	"type":            {kind: "ident"},
	"dsn":             {secret: true},
	"schema":          {kind: "string"},
	"query_tag":       {kind: "string"},
	"timeout":         {kind: "duration"},
	"max_connections": {kind: "int"},
	"exact_names":     {kind: "bool"},
}

// warehouseTypes lists the warehouse types, for messages.
func warehouseTypes() []string {
	out := make([]string, 0, len(warehouseSpecs))
	for t := range warehouseSpecs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (c *checker) warehouse(w *grammar.Warehouse) *Warehouse {
	ir := &Warehouse{Range: rng(w), Type: "duckdb", Path: ":memory:", Settings: map[string]string{}}
	for _, s := range w.Settings {
		if s.Key.Text == "type" {
			if s.Value.Ref == nil || len(s.Value.Ref.Parts) != 1 {
				c.errorf(s.Value, "warehouse type is one of %s", strings.Join(warehouseTypes(), ", "))
				return ir
			}
			t := s.Value.Ref.String()
			if _, ok := warehouseSpecs[t]; !ok {
				d := c.errorf(s.Value, "unknown warehouse type %q", t)
				d.Suggestion = suggest(t, warehouseTypes())
				return ir
			}
			ir.Type = t
		}
	}
	set := c.settings(ir.Type+" warehouse", w.Settings, warehouseSpecs[ir.Type])
	for key, ss := range set {
		ss = valid(ss)
		if len(ss) == 0 {
			continue
		}
		switch key {
		case "type":
		case "path":
			p := ss[0].Value.Str.Value()
			if p != ":memory:" {
				p = c.absPath(p)
			}
			ir.Path = p
		case "load":
			for _, s := range ss {
				table := s.Value.Str.Value()
				tn, ok := c.tableName(s.Value, table)
				if !ok {
					continue
				}
				file := s.From.Str.Value()
				switch strings.ToLower(filepath.Ext(file)) {
				case ".csv", ".parquet", ".tsv", ".json", ".jsonl", ".ndjson":
				default:
					c.errorf(s.From, "load reads .csv, .tsv, .parquet or .json files, not %q", filepath.Ext(file))
					continue
				}
				full, ok := c.localPath(s.From, "load path", file)
				if !ok {
					continue
				}
				ir.Loads = append(ir.Loads, &TableFile{Range: rng(s), Table: tn, File: full})
			}
		case "dsn":
			ir.DSN = toSetting(ss[0]).Secret
		default:
			st := toSetting(ss[0])
			if st.Secret.IsSet() {
				ir.Settings[key] = "env:" + st.Secret.Env
			} else {
				ir.Settings[key] = st.Text
			}
		}
	}
	spec := warehouseSpecs[ir.Type]
	if _, ok := spec["dsn"]; ok && set["dsn"] == nil {
		c.errorf(w, "a %s warehouse needs dsn env(\"NAME\")", ir.Type)
	}
	var required []string
	for key, sp := range spec {
		if sp.required && set[key] == nil {
			required = append(required, key)
		}
	}
	sort.Strings(required)
	for _, key := range required {
		if spec[key].secret {
			c.errorf(w, "a %s warehouse needs %s env(\"NAME\")", ir.Type, key)
		} else {
			c.errorf(w, "a %s warehouse needs %s", ir.Type, key)
		}
	}
	return ir
}

var tablePartRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// bigQueryProjectRE is a BigQuery project id, which may hold hyphens
// ("my-project-123").
var bigQueryProjectRE = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)

func (c *checker) tableName(n grammar.Node, s string) (TableName, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		c.errorf(n, "table name %q has too many parts: at most DATABASE.SCHEMA.TABLE", s)
		return nil, false
	}
	bigQuery := c.ws.Warehouse != nil && c.ws.Warehouse.Type == "bigquery"
	if bigQuery && len(parts) == 1 && c.ws.Warehouse.Settings["dataset"] == "" {
		c.errorf(n, "table name %q has no dataset: write \"DATASET.%s\", or give the warehouse a dataset setting", s, s)
		return nil, false
	}
	for i, p := range parts {
		if i == 0 && len(parts) == 3 && bigQuery && bigQueryProjectRE.MatchString(p) {
			continue // PROJECT.DATASET.TABLE
		}
		if !tablePartRE.MatchString(p) {
			c.errorf(n, "table name %q: each part must be an identifier, e.g. \"BANK.ACCOUNTS\"", s)
			return nil, false
		}
	}
	return TableName(parts), true
}

// ---- graph ----

var tableKeySpec = map[string]settingSpec{"table": {kind: "string"}, "key": {kind: "ident"}}

// graphItems are what a graph block holds.
var graphItems = []string{"profile", "entity", "relationship", "memberships", "events", "max_depth"}

// membershipsSpec and eventsSpec are the settings of the graph's
// memberships and events blocks; every one is required.
var (
	membershipsSpec = map[string]settingSpec{"table": {kind: "string"}, "profile": {kind: "ident"}, "audience": {kind: "ident"}}
	eventsSpec      = map[string]settingSpec{"table": {kind: "string"}, "profile": {kind: "ident"}, "name": {kind: "ident"}, "time": {kind: "ident"}}
)

func (c *checker) graph(g *grammar.Graph) *Graph {
	ir := &Graph{Range: rng(g), MaxDepth: DefaultMaxDepth}
	var profiles []*grammar.Profile
	for _, it := range g.Items {
		switch {
		case it.Profile != nil:
			profiles = append(profiles, it.Profile)
		case it.Setting != nil:
			s := it.Setting
			if s.Key.Text != "max_depth" {
				d := c.errorf(s.Key, "unknown graph item %q", s.Key.Text)
				d.Suggestion = suggest(s.Key.Text, graphItems)
				continue
			}
			if c.settingValue("max_depth", s.Value, settingSpec{kind: "int"}) {
				n, _ := strconv.Atoi(s.Value.Literal.Number)
				if n < 2 || n > 16 {
					c.errorf(s.Value, "max_depth must be between 2 and 16")
				} else {
					ir.MaxDepth = n
				}
			}
		}
	}
	if c.opts.MaxDepth > 0 {
		ir.MaxDepth = c.opts.MaxDepth
	}
	ir.Profile = &Entity{Name: "profile"}
	switch {
	case len(profiles) == 0:
		c.errorf(g, "graph has no profile block: declare profile { table \"…\" key … }")
	default:
		for _, p := range profiles[1:] {
			c.errorf(p, "profile declared again (first at %s)", posText(profiles[0]))
		}
		p := profiles[0]
		ir.Profile.Range = rng(p)
		c.tableKey("profile", p, p.Settings, ir.Profile)
	}
	names := map[string]grammar.Node{"profile": g}
	for _, it := range g.Items {
		e := it.Entity
		if e == nil {
			continue
		}
		if prev, ok := names[e.Name.Text]; ok {
			if e.Name.Text == "profile" {
				c.errorf(e.Name, "entity cannot be named profile: profile is the graph's root")
			} else {
				c.errorf(e.Name, "entity %q declared again (first at %s)", e.Name.Text, posText(prev))
			}
			continue
		}
		names[e.Name.Text] = e
		ent := &Entity{Range: rng(e), Name: e.Name.Text}
		c.tableKey("entity "+e.Name.Text, e, e.Settings, ent)
		ir.Entities = append(ir.Entities, ent)
	}
	relDiags := len(c.diags)
	for _, it := range g.Items {
		if it.Relationship != nil {
			if r := c.relationship(ir, it.Relationship); r != nil {
				ir.Relationships = append(ir.Relationships, r)
			}
		}
	}
	for _, it := range g.Items {
		switch {
		case it.Memberships != nil:
			if ir.Memberships != nil {
				c.errorf(it.Memberships, "memberships declared again")
				continue
			}
			m := &Memberships{Range: rng(it.Memberships)}
			set := c.settings("memberships", it.Memberships.Settings, membershipsSpec)
			m.Table = c.requiredTable(it.Memberships, "memberships", set)
			m.ProfileColumn = c.requiredIdent(it.Memberships, "memberships", "profile", set)
			m.AudienceColumn = c.requiredIdent(it.Memberships, "memberships", "audience", set)
			ir.Memberships = m
		case it.Events != nil:
			if ir.Events != nil {
				c.errorf(it.Events, "events declared again")
				continue
			}
			ev := &Events{Range: rng(it.Events)}
			set := c.settings("events", it.Events.Settings, eventsSpec)
			ev.Table = c.requiredTable(it.Events, "events", set)
			ev.ProfileColumn = c.requiredIdent(it.Events, "events", "profile", set)
			ev.NameColumn = c.requiredIdent(it.Events, "events", "name", set)
			ev.TimeColumn = c.requiredIdent(it.Events, "events", "time", set)
			ir.Events = ev
		}
	}
	// Every entity should be reachable from profile, else no audience can use it.
	reach := map[*Entity]bool{ir.Profile: true}
	for changed := true; changed; {
		changed = false
		for _, r := range ir.Relationships {
			if reach[r.From] && !reach[r.To] {
				reach[r.To], changed = true, true
			}
		}
	}
	for _, it := range g.Items {
		if e := it.Entity; e != nil && len(c.diags) == relDiags {
			if ent := ir.Entity(e.Name.Text); ent != nil && ent.Range == rng(e) && !reach[ent] {
				c.warnf(e.Name, "entity %s is not reachable from profile through any relationship", ent.Name)
			}
		}
	}
	return ir
}

func (c *checker) tableKey(block string, n grammar.Node, ss []*grammar.Setting, e *Entity) {
	set := c.settings(block, ss, tableKeySpec)
	e.Table = c.requiredTable(n, block, set)
	e.Key = c.requiredIdent(n, block, "key", set)
}

func (c *checker) requiredTable(n grammar.Node, block string, set map[string][]*grammar.Setting) TableName {
	ss := set["table"]
	if len(ss) == 0 {
		c.errorf(n, "%s needs table \"SCHEMA.TABLE\"", block)
		return nil
	}
	if ss[0] == nil {
		return nil
	}
	t, _ := c.tableName(ss[0].Value, ss[0].Value.Str.Value())
	return t
}

func (c *checker) requiredIdent(n grammar.Node, block, key string, set map[string][]*grammar.Setting) string {
	ss := set[key]
	if len(ss) == 0 {
		c.errorf(n, "%s needs %s COLUMN", block, key)
		return ""
	}
	if ss[0] == nil {
		return ""
	}
	return ss[0].Value.Ref.String()
}

func (c *checker) entityNames(g *Graph) []string {
	names := []string{g.Profile.Name}
	for _, e := range g.Entities {
		names = append(names, e.Name)
	}
	return names
}

func (c *checker) relationship(g *Graph, r *grammar.Relationship) *Relationship {
	from, to := g.Entity(r.From.Text), g.Entity(r.To.Text)
	if from == nil {
		c.unknown(r.From, "entity", c.entityNames(g))
	}
	if to == nil {
		c.unknown(r.To, "entity", c.entityNames(g))
	} else if to == g.Profile {
		c.errorf(r.To, "a relationship cannot lead to profile: paths start at profile")
		return nil
	}
	if from == nil || to == nil {
		return nil
	}
	if from == to {
		c.errorf(r.To, "relationship from %s to itself: declare a second entity over the same table", from.Name)
		return nil
	}
	if g.Relationship(from, to) != nil {
		c.errorf(r, "relationship %s -> %s declared again", from.Name, to.Name)
		return nil
	}
	ir := &Relationship{Range: rng(r), From: from, To: to}
	alias := ""
	if r.Through != nil {
		t, ok := c.tableName(r.Through, r.Through.Value())
		if !ok {
			return nil
		}
		alias = r.Alias.Text
		if alias == from.Name || alias == to.Name || alias == "profile" || alias == "trait" {
			c.errorf(r.Alias, "junction alias %q must differ from the entities it joins", alias)
			return nil
		}
		ir.Through = &Junction{Table: t, Alias: alias}
	}
	ok := true
	for _, j := range r.On {
		l, rr := j.Left, j.Right
		if len(l.Parts) != 2 || len(rr.Parts) != 2 {
			bad := l
			if len(l.Parts) == 2 {
				bad = rr
			}
			c.errorf(bad, "join columns are qualified: write %s.COLUMN", from.Name)
			ok = false
			continue
		}
		side := func(ref *grammar.Ref) string { return ref.Parts[0].Text }
		pair := func(upper, lower *grammar.Ref) JoinPair {
			return JoinPair{Upper: upper.Parts[1].Text, Lower: lower.Parts[1].Text}
		}
		// Accept either order of the two sides.
		match := func(a, b string) (JoinPair, bool) {
			switch {
			case side(l) == a && side(rr) == b:
				return pair(l, rr), true
			case side(l) == b && side(rr) == a:
				return pair(rr, l), true
			}
			return JoinPair{}, false
		}
		if ir.Through == nil {
			if p, m := match(from.Name, to.Name); m {
				ir.On = append(ir.On, p)
				continue
			}
		} else {
			if p, m := match(from.Name, alias); m {
				ir.On = append(ir.On, p)
				continue
			}
			if p, m := match(alias, to.Name); m {
				ir.ThroughOn = append(ir.ThroughOn, p)
				continue
			}
		}
		names := []string{from.Name, to.Name}
		if alias != "" {
			names = append(names, alias)
		}
		for _, ref := range []*grammar.Ref{l, rr} {
			if q := side(ref); q != from.Name && q != to.Name && q != alias {
				d := c.errorf(ref.Parts[0], "unknown name %q in join: qualify columns with %s", q, strings.Join(names, ", "))
				d.Suggestion = suggest(q, names)
				ok = false
			}
		}
		if ok {
			if ir.Through == nil {
				c.errorf(j, "a join condition equates a column of %s with a column of %s", from.Name, to.Name)
			} else {
				c.errorf(j, "a join condition equates %s with %s, or %s with %s", from.Name, alias, alias, to.Name)
			}
			ok = false
		}
	}
	if ok && ir.Through != nil && (len(ir.On) == 0 || len(ir.ThroughOn) == 0) {
		c.errorf(r, "a relationship through %s needs a condition joining %s to %s and one joining %s to %s", alias, from.Name, alias, alias, to.Name)
		ok = false
	}
	if !ok {
		return nil
	}
	return ir
}

// ---- audiences ----

func (c *checker) audience(ir *Audience, a *grammar.Audience) {
	var matches []*grammar.AudienceClause
	seen := map[string]grammar.Node{}
	once := func(cl *grammar.AudienceClause, what string) bool {
		if prev, ok := seen[what]; ok {
			c.errorf(cl, "%s given twice in audience %s (first at %s)", what, ir.Name, posText(prev))
			return false
		}
		seen[what] = cl
		return true
	}
	var enrich []*grammar.Ref
	for _, cl := range a.Clauses {
		switch {
		case cl.Description != nil:
			if once(cl, "description") {
				ir.Description = cl.Description.Value()
			}
		case cl.Schedule != nil:
			if once(cl, "schedule") {
				ir.Schedule = c.schedule(cl.Schedule)
			}
		case cl.Match != nil:
			if once(cl, "match") {
				matches = append(matches, cl)
			}
		case cl.Enrich != nil:
			enrich = append(enrich, cl.Enrich...)
		}
	}
	if len(matches) == 0 {
		c.errorf(a.Name, "audience %s has no match clause", ir.Name)
		return
	}
	if c.graphBroken {
		return
	}
	s := &scope{aud: ir}
	ir.Match = c.cond(s, matches[0].Match, false)
	ir.Primary = s.primary
	if ir.Match == nil {
		// The match has errors, reported: the path enrich reads from may
		// be the one that failed, so checking enrich would only repeat it.
		return
	}
	for _, e := range enrich {
		if ref := c.enrichRef(ir, e, "enrich"); ref != nil {
			for _, prev := range ir.Enrich {
				if prev.Source == ref.Source && prev.Entity == ref.Entity && prev.Column == ref.Column && prev.StepIndex == ref.StepIndex {
					c.errorf(e, "%s enriched twice", e.String())
					ref = nil
					break
				}
			}
			if ref != nil {
				ir.Enrich = append(ir.Enrich, ref)
			}
		}
	}
}

// enrichRef resolves ENTITY.COLUMN on the primary path or trait.COLUMN.
func (c *checker) enrichRef(a *Audience, r *grammar.Ref, clause string) *ColumnRef {
	if len(r.Parts) != 2 {
		c.errorf(r, "%s takes qualified columns: ENTITY.COLUMN or trait.COLUMN", clause)
		return nil
	}
	q, col := r.Parts[0], r.Parts[1].Text
	if q.Text == "trait" {
		return &ColumnRef{Range: rng(r), Source: SourceTrait, StepIndex: -1, Entity: c.ws.Graph.Profile, Column: col}
	}
	if a.Primary == nil {
		c.errorf(q, "%s %s: audience %s has no entity path to take %s from", clause, r.String(), a.Name, q.Text)
		return nil
	}
	var names []string
	for i := len(a.Primary.Steps) - 1; i >= 0; i-- {
		st := a.Primary.Steps[i]
		if st.Entity.Name == q.Text {
			return &ColumnRef{Range: rng(r), Source: SourceStep, Step: st, StepIndex: i, Entity: st.Entity, Column: col}
		}
		names = append(names, st.Entity.Name)
	}
	d := c.errorf(q, "%s %s: %s is not on the audience's path %s", clause, r.String(), q.Text, pathText(a.Primary))
	d.Suggestion = suggest(q.Text, append(names, "trait"))
	return nil
}

func pathText(p *Path) string {
	parts := []string{"profile"}
	for _, s := range p.Steps {
		parts = append(parts, s.Entity.Name)
	}
	return strings.Join(parts, " -> ")
}

var dailyRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// MinEvery and MaxEvery bound `schedule every`. Segment offers 15m to 1d;
// shorter intervals are allowed for development and tests.
const (
	MinEvery = time.Second
	MaxEvery = 24 * time.Hour
)

func (c *checker) schedule(s *grammar.Schedule) Schedule {
	sc := c.scheduleKind(s)
	if s.Zone == nil {
		return sc
	}
	if sc.Kind != ScheduleDaily && sc.Kind != ScheduleCron {
		c.errorf(s.Zone, "a time zone applies to daily at and cron schedules only")
		return sc
	}
	if _, err := LoadZone(s.Zone.Value()); err != nil {
		c.errorf(s.Zone, "%v", err)
		return sc
	}
	sc.Zone = s.Zone.Value()
	if sc.Kind == ScheduleCron {
		loc, _ := LoadZone(sc.Zone)
		if _, err := ParseCron(sc.Cron, loc); err != nil {
			c.errorf(s.Cron, "cron %q: %v", sc.Cron, err)
		}
	}
	return sc
}

func (c *checker) scheduleKind(s *grammar.Schedule) Schedule {
	switch {
	case s.Manual:
		return Schedule{Kind: ScheduleManual}
	case s.Every != nil:
		if s.Every.Duration == "" {
			c.errorf(s.Every, "every takes a duration, e.g. every 1h")
			return DefaultSchedule
		}
		d, err := parseDuration(s.Every.Duration)
		if err != nil {
			c.errorf(s.Every, "%v", err)
			return DefaultSchedule
		}
		if d < MinEvery || d > MaxEvery {
			c.errorf(s.Every, "schedule every %s is out of range: from 1s to 1d (Segment offers 15m to 1d)", s.Every.Duration)
			return DefaultSchedule
		}
		return Schedule{Kind: ScheduleEvery, Every: d}
	case s.Daily != nil:
		v := s.Daily.Value()
		if !dailyRE.MatchString(v) {
			c.errorf(s.Daily, "daily at takes a time as \"HH:MM\", e.g. \"09:00\" (UTC, or the zone after it: daily at \"09:00\" in \"Europe/Paris\")")
			return DefaultSchedule
		}
		return Schedule{Kind: ScheduleDaily, DailyAt: v}
	case s.Cron != nil:
		v := s.Cron.Value()
		if s.Zone == nil {
			if _, err := ParseCron(v, nil); err != nil {
				c.errorf(s.Cron, "cron %q: %v", v, err)
				return DefaultSchedule
			}
		}
		return Schedule{Kind: ScheduleCron, Cron: v}
	}
	return DefaultSchedule
}

// parseDuration reads the language's durations: a whole number and one of
// s, m, h, d, w.
func parseDuration(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || i == 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	units := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	u, ok := units[s[i:]]
	if !ok {
		return 0, fmt.Errorf("invalid duration %q: the unit is s, m, h, d or w", s)
	}
	if n > int64(365*24*time.Hour/u) {
		return 0, fmt.Errorf("duration %q is longer than a year", s)
	}
	return time.Duration(n) * u, nil
}

// scope is what a condition is checked in.
type scope struct {
	aud     *Audience
	primary *Path
	// path and step are set inside a step's where.
	path      *Path
	stepIndex int
	// events is set inside performed … where.
	events bool
}

func (c *checker) cond(s *scope, o *grammar.Or, negated bool) Cond {
	var terms []Cond
	for _, a := range o.Terms {
		if t := c.and(s, a, negated); t != nil {
			terms = append(terms, t)
		}
	}
	if len(terms) != len(o.Terms) {
		return nil
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return &Or{Range: rng(o), Terms: terms}
}

func (c *checker) and(s *scope, a *grammar.And, negated bool) Cond {
	var terms []Cond
	for _, u := range a.Terms {
		if t := c.unary(s, u, negated); t != nil {
			terms = append(terms, t)
		}
	}
	if len(terms) != len(a.Terms) {
		return nil
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return &And{Range: rng(a), Terms: terms}
}

func (c *checker) unary(s *scope, u *grammar.Unary, negated bool) Cond {
	if u.Not != nil {
		x := c.unary(s, u.Not, !negated)
		if x == nil {
			return nil
		}
		return &Not{Range: rng(u), X: x}
	}
	p := u.Primary
	switch {
	case p.Group != nil:
		return c.cond(s, p.Group, negated)
	case p.Trait != nil:
		cmp := c.compare(&scope{aud: s.aud, stepIndex: -1}, p.Trait, true)
		if cmp == nil {
			return nil
		}
		return &Trait{Range: rng(p), Compare: cmp}
	case p.InAudience != nil:
		return c.inAudience(s, p.InAudience, rng(p))
	case p.Performed != nil:
		return c.performed(s, p.Performed)
	case p.Path != nil:
		path := c.path(s, p.Path)
		if path != nil && !negated && s.primary == nil {
			s.primary = path
		}
		if path == nil {
			return nil
		}
		return path
	case p.Comparison != nil:
		d := c.errorf(p.Comparison.Left, "a comparison needs a subject here: write `trait %s …` for a profile trait, or put it in a path step's where", p.Comparison.Left.String())
		_ = d
		return nil
	}
	return nil
}

func (c *checker) inAudience(s *scope, n *grammar.Name, r Range) Cond {
	ir := &InAudience{Range: r, Name: n.Text}
	if a, ok := c.audByName[n.Text]; ok {
		ir.Audience = a
		if a == s.aud {
			c.errorf(n, "audience %s refers to itself", n.Text)
			return nil
		}
		for _, d := range s.aud.DependsOn {
			if d == a {
				return ir
			}
		}
		s.aud.DependsOn = append(s.aud.DependsOn, a)
		return ir
	}
	if c.ws.Graph.Memberships != nil {
		return ir // looked up in the memberships table at run time
	}
	if c.broken["audience"][n.Text] {
		return nil
	}
	var names []string
	for name := range c.audByName {
		names = append(names, name)
	}
	d := c.errorf(n, "unknown audience %q", n.Text)
	d.Suggestion = suggest(n.Text, names)
	if d.Suggestion == "" {
		d.Detail = "declare it, or declare a memberships table in the graph for audiences computed elsewhere"
	}
	return nil
}

func (c *checker) performed(s *scope, p *grammar.Performed) Cond {
	g := c.ws.Graph
	if g.Events == nil {
		c.errorf(p, "performed needs an events table: declare events { table … profile … name … time … } in the graph")
		return nil
	}
	ir := &Performed{Range: rng(p), Event: p.Event.Value(), Quant: Quant{Kind: AtLeast, N: 1}}
	if ir.Event == "" {
		c.errorf(p.Event, "performed needs an event name")
		return nil
	}
	ok := true
	if p.Quant != nil {
		q, qok := c.quant(p.Quant)
		ir.Quant, ok = q, qok
	}
	if p.Within != nil {
		w, wok := c.window(p.Within)
		ir.Within = &w
		ok = ok && wok
	}
	if p.Where != nil {
		ir.Where = c.filter(&scope{aud: s.aud, events: true, stepIndex: -1}, p.Where)
		ok = ok && ir.Where != nil
	}
	if !ok {
		return nil
	}
	return ir
}

func (c *checker) quant(q *grammar.Quant) (Quant, bool) {
	out := Quant{}
	switch q.KindText() {
	case "at least":
		out.Kind = AtLeast
	case "at most":
		out.Kind = AtMost
	case "exactly":
		out.Kind = Exactly
	}
	n, ok := c.count(q.Count)
	out.N = n
	return out, ok
}

func (c *checker) count(l *grammar.Literal) (int64, bool) {
	if l.Number == "" || strings.ContainsAny(l.Number, ".-") {
		c.errorf(l, "a count is a whole number ≥ 0, not %s", l.Text())
		return 0, false
	}
	n, err := strconv.ParseInt(l.Number, 10, 64)
	if err != nil || n > 1_000_000_000 {
		c.errorf(l, "count %s is too large", l.Number)
		return 0, false
	}
	return n, true
}

func (c *checker) window(w *grammar.Window) (Window, bool) {
	n, ok := c.count(w.Count)
	if !ok {
		return Window{}, false
	}
	if n == 0 {
		c.errorf(w.Count, "a window must be longer than 0 %s", w.Unit.Text)
		return Window{}, false
	}
	switch w.Unit.Text {
	case "day", "days":
		return Window{N: n, Unit: 24 * time.Hour}, true
	case "hour", "hours":
		return Window{N: n, Unit: time.Hour}, true
	}
	d := c.errorf(w.Unit, "unknown time unit %q: within takes days or hours", w.Unit.Text)
	d.Suggestion = suggest(w.Unit.Text, []string{"days", "hours"})
	return Window{}, false
}

func (c *checker) path(s *scope, p *grammar.Path) *Path {
	g := c.ws.Graph
	if p.Root.Text != "profile" {
		if g.Entity(p.Root.Text) != nil {
			c.errorf(p.Root, "a path starts at profile: write profile -> … -> %s", p.Root.Text)
		} else {
			d := c.errorf(p.Root, "a path starts at profile, not %q", p.Root.Text)
			d.Suggestion = suggest(p.Root.Text, []string{"profile"})
		}
		return nil
	}
	if depth := len(p.Steps) + 1; depth > g.MaxDepth {
		c.errorf(p.Steps[g.MaxDepth-1].Entity, "path is %d levels deep (counting profile); the limit is %d (raise it with max_depth in the graph)", depth, g.MaxDepth)
		return nil
	}
	ir := &Path{Range: rng(p)}
	prev := g.Profile
	for i, st := range p.Steps {
		ent := g.Entity(st.Entity.Text)
		if ent == nil || ent == g.Profile {
			var cands []string
			for _, r := range g.Relationships {
				if r.From == prev {
					cands = append(cands, r.To.Name)
				}
			}
			d := c.errorf(st.Entity, "unknown entity %q", st.Entity.Text)
			d.Suggestion = suggest(st.Entity.Text, cands)
			if d.Suggestion == "" {
				d.Suggestion = suggest(st.Entity.Text, c.entityNames(g)[1:])
			}
			return nil
		}
		rel := g.Relationship(prev, ent)
		if rel == nil {
			var cands []string
			for _, r := range g.Relationships {
				if r.From == prev {
					cands = append(cands, r.To.Name)
				}
			}
			d := c.errorf(st.Entity, "no relationship %s -> %s in the graph", prev.Name, ent.Name)
			if len(cands) > 0 {
				d.Detail = fmt.Sprintf("%s leads to %s", prev.Name, strings.Join(cands, ", "))
			}
			d.Suggestion = suggest(ent.Name, cands)
			return nil
		}
		step := &Step{Range: rng(st), Entity: ent, Rel: rel, Level: i + 2, Quant: Quant{Kind: AtLeast, N: 1}}
		ir.Steps = append(ir.Steps, step)
		prev = ent
	}
	ok := true
	for i, st := range p.Steps {
		step := ir.Steps[i]
		if st.Quant != nil {
			if st.Having != nil {
				c.errorf(st.Having, "a step takes a quantifier or having, not both")
				ok = false
				continue
			}
			q, qok := c.quant(st.Quant)
			step.Quant = q
			ok = ok && qok
			if qok && q.Kind == AtLeast && q.N == 0 {
				c.warnf(st.Quant, "at least 0 always holds: this step does not restrict the audience")
			}
		}
		if st.Where != nil {
			step.Where = c.filter(&scope{aud: s.aud, path: ir, stepIndex: i}, st.Where)
			ok = ok && step.Where != nil
		}
		if st.Having != nil {
			step.Having = c.having(st.Having)
			ok = ok && step.Having != nil
		}
	}
	if !ok {
		return nil
	}
	return ir
}

func (c *checker) having(h *grammar.Having) *Having {
	funcs := map[string]AggFunc{"count": AggCount, "sum": AggSum, "min": AggMin, "max": AggMax, "avg": AggAvg}
	f, ok := funcs[h.Func.Text]
	if !ok {
		d := c.errorf(h.Func, "unknown aggregate %q: having takes count, sum, min, max or avg", h.Func.Text)
		d.Suggestion = suggest(h.Func.Text, []string{"count", "sum", "min", "max", "avg"})
		return nil
	}
	ir := &Having{Range: rng(h), Func: f}
	switch {
	case f == AggCount && h.Column != nil:
		c.errorf(h.Column, "count counts the step's matching entities: write having count >= N")
		return nil
	case f != AggCount && h.Column == nil:
		c.errorf(h.Func, "%s needs a column: having %s(COLUMN) …", f, f)
		return nil
	case h.Column != nil:
		ir.Column = h.Column.Text
	}
	op, ok := binaryOps[h.Op]
	if !ok {
		c.errorf(h, "having compares with = != < <= > >=")
		return nil
	}
	ir.Op = op
	v := h.Value
	if v.Literal == nil || v.Literal.Number == "" {
		c.errorf(v, "having compares with a number")
		return nil
	}
	if f == AggCount {
		n, ok := c.count(v.Literal)
		if !ok {
			return nil
		}
		ir.Value = Literal{Kind: LitNumber, Text: strconv.FormatInt(n, 10)}
	} else {
		ir.Value = Literal{Kind: LitNumber, Text: v.Literal.Number}
	}
	return ir
}

var binaryOps = map[string]Op{"=": OpEq, "!=": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}

// filter checks a step's or performed's where.
func (c *checker) filter(s *scope, f *grammar.Filter) Pred {
	if f.Comparison != nil {
		if cmp := c.compare(s, f.Comparison, false); cmp != nil {
			return cmp
		}
		return nil
	}
	return c.predOr(s, f.Group)
}

func (c *checker) predOr(s *scope, o *grammar.Or) Pred {
	var terms []Pred
	for _, a := range o.Terms {
		var and []Pred
		for _, u := range a.Terms {
			if p := c.predUnary(s, u); p != nil {
				and = append(and, p)
			}
		}
		if len(and) != len(a.Terms) {
			continue
		}
		if len(and) == 1 {
			terms = append(terms, and[0])
		} else {
			terms = append(terms, &PredAnd{Range: rng(a), Terms: and})
		}
	}
	if len(terms) != len(o.Terms) {
		return nil
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return &PredOr{Range: rng(o), Terms: terms}
}

func (c *checker) predUnary(s *scope, u *grammar.Unary) Pred {
	if u.Not != nil {
		x := c.predUnary(s, u.Not)
		if x == nil {
			return nil
		}
		return &PredNot{Range: rng(u), X: x}
	}
	p := u.Primary
	switch {
	case p.Group != nil:
		return c.predOr(s, p.Group)
	case p.Comparison != nil:
		if cmp := c.compare(s, p.Comparison, false); cmp != nil {
			return cmp
		}
		return nil
	case p.Trait != nil:
		c.errorf(p, "trait conditions belong at audience level, not inside where: compare with trait.COLUMN on the right instead")
	case p.Path != nil:
		c.errorf(p, "a path cannot be nested inside where: continue the path with -> instead")
	case p.InAudience != nil:
		c.errorf(p, "in audience belongs at audience level, not inside where")
	case p.Performed != nil:
		c.errorf(p, "performed belongs at audience level, not inside where")
	}
	return nil
}

// compare checks `COLUMN OP OPERAND` in scope s. trait is set for `trait …`.
func (c *checker) compare(s *scope, cmp *grammar.Comparison, trait bool) *Compare {
	col := c.leftColumn(s, cmp.Left, trait)
	if col == nil {
		return nil
	}
	ir := &Compare{Range: rng(cmp), Column: col}
	opText := cmp.OpText()
	switch {
	case len(cmp.Is) > 0:
		ir.Op = map[string]Op{"is null": OpIsNull, "is not null": OpIsNotNull, "is true": OpIsTrue, "is false": OpIsFalse, "is not true": -1, "is not false": -1}[opText]
		if ir.Op < 0 {
			c.errorf(cmp, "write %s instead of %s", map[string]string{"is not true": "is false", "is not false": "is true"}[opText], opText)
			return nil
		}
		return ir
	case cmp.List != nil:
		ir.Op = OpIn
		if cmp.NotIn {
			ir.Op = OpNotIn
		}
		if len(cmp.List) > MaxListItems {
			c.errorf(cmp, "%s list of %d values: the limit is %d (MaxListItems); put the values in a warehouse table and join it through the graph", opText, len(cmp.List), MaxListItems)
			return nil
		}
		kind := LiteralKind(-1)
		for _, v := range cmp.List {
			lit, ok := c.literal(v, opText)
			if !ok {
				return nil
			}
			if kind >= 0 && lit.Kind != kind {
				c.errorf(v, "%s list mixes types: every value must be a %s", opText, kindName(kind))
				return nil
			}
			kind = lit.Kind
			ir.Values = append(ir.Values, lit)
		}
		return ir
	case cmp.Window != nil:
		ir.Op = OpWithin
		w, ok := c.window(cmp.Window)
		if !ok {
			return nil
		}
		ir.Window = &w
		return ir
	}
	ops := map[string]Op{"=": OpEq, "!=": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe,
		"contains": OpContains, "not contains": OpNotContains, "starts with": OpStartsWith, "ends with": OpEndsWith,
		"before": OpBefore, "after": OpAfter}
	op, ok := ops[opText]
	if !ok {
		c.errorf(cmp, "unknown operator %q", opText)
		return nil
	}
	ir.Op = op
	v := cmp.Right
	if v.Ref != nil {
		if op == OpBefore || op == OpAfter {
			c.errorf(v, "%s takes a date string, e.g. \"2026-01-31\"", opText)
			return nil
		}
		ref := c.rightRef(s, v.Ref)
		if ref == nil {
			return nil
		}
		ir.Ref = ref
		return ir
	}
	lit, ok := c.literal(v, opText)
	if !ok {
		return nil
	}
	switch op {
	case OpContains, OpNotContains, OpStartsWith, OpEndsWith:
		if lit.Kind != LitString {
			c.errorf(v, "%s takes a string", opText)
			return nil
		}
	case OpBefore, OpAfter:
		if lit.Kind != LitString {
			c.errorf(v, "%s takes a date string, e.g. \"2026-01-31\"", opText)
			return nil
		}
		t, err := parseDate(lit.Text)
		if err != nil {
			c.errorf(v, "%s takes a date \"YYYY-MM-DD\" or a timestamp \"YYYY-MM-DDTHH:MM:SSZ\", not %s", opText, grammar.Quote(lit.Text))
			return nil
		}
		lit = Literal{Kind: LitDate, Text: lit.Text, Time: t}
	case OpLt, OpLe, OpGt, OpGe:
		if lit.Kind == LitBool {
			c.errorf(v, "%s does not compare booleans", opText)
			return nil
		}
	}
	ir.Value = lit
	return ir
}

func kindName(k LiteralKind) string {
	return [...]string{"string", "number", "boolean", "date"}[k]
}

func (c *checker) literal(v *grammar.Value, op string) (Literal, bool) {
	switch {
	case v.Str != nil:
		return Literal{Kind: LitString, Text: v.Str.Value()}, true
	case v.Literal != nil && v.Literal.Number != "":
		return Literal{Kind: LitNumber, Text: v.Literal.Number}, true
	case v.Literal != nil && v.Literal.Bool != "":
		return Literal{Kind: LitBool, Bool: v.Literal.Bool == "true", Text: v.Literal.Bool}, true
	case v.Literal != nil && v.Literal.Null:
		c.errorf(v, "a comparison with null is never true: use is null or is not null")
	case v.Literal != nil && v.Literal.Duration != "":
		c.errorf(v, "%s is not a value here: for a time window write `within N days`", v.Literal.Duration)
	case v.Env != nil:
		c.errorf(v, "env() is for settings, not conditions")
	case v.Ref != nil:
		c.errorf(v, "%s takes a value (a string, number or boolean) here", op)
	}
	return Literal{}, false
}

// parseDate reads "YYYY-MM-DD" (midnight UTC), or a timestamp with or
// without zone (without: UTC).
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q", s)
}

// leftColumn resolves the column a comparison tests.
func (c *checker) leftColumn(s *scope, r *grammar.Ref, trait bool) *ColumnRef {
	switch {
	case trait:
		if len(r.Parts) == 2 {
			if r.Parts[0].Text != "trait" {
				c.errorf(r, "trait takes a profile column: write trait %s", r.Parts[1].Text)
				return nil
			}
		}
		return &ColumnRef{Range: rng(r), Source: SourceTrait, StepIndex: -1, Entity: c.ws.Graph.Profile, Column: r.Parts[len(r.Parts)-1].Text}
	case s.events:
		if len(r.Parts) == 2 {
			c.errorf(r, "performed … where compares columns of the events table: write %s", r.Parts[1].Text)
			return nil
		}
		return &ColumnRef{Range: rng(r), Source: SourceEvents, StepIndex: -1, Column: r.Parts[0].Text}
	}
	step := s.path.Steps[s.stepIndex]
	if len(r.Parts) == 2 && r.Parts[0].Text != step.Entity.Name {
		c.errorf(r.Parts[0], "the left side of a where is a column of %s: write %s or %s.%s", step.Entity.Name, r.Parts[1].Text, step.Entity.Name, r.Parts[1].Text)
		return nil
	}
	return &ColumnRef{Range: rng(r), Source: SourceStep, Step: step, StepIndex: s.stepIndex, Entity: step.Entity, Column: r.Parts[len(r.Parts)-1].Text}
}

// rightRef resolves a dynamic reference: a column of the same path at the
// same or a higher level, or trait.COLUMN.
func (c *checker) rightRef(s *scope, r *grammar.Ref) *ColumnRef {
	if len(r.Parts) != 2 {
		d := c.errorf(r, "%s is not a value: quote a string (\"%s\"), or refer to a column as ENTITY.COLUMN or trait.COLUMN", r.String(), r.String())
		_ = d
		return nil
	}
	q, col := r.Parts[0], r.Parts[1].Text
	if q.Text == "trait" {
		return &ColumnRef{Range: rng(r), Source: SourceTrait, StepIndex: -1, Entity: c.ws.Graph.Profile, Column: col}
	}
	if s.path == nil {
		if s.events {
			c.errorf(q, "performed … where can refer to trait.COLUMN only, not %s", r.String())
		} else {
			c.errorf(q, "a trait can be compared with trait.COLUMN only, not %s", r.String())
		}
		return nil
	}
	var names []string
	for i := s.stepIndex; i >= 0; i-- {
		st := s.path.Steps[i]
		if st.Entity.Name == q.Text {
			return &ColumnRef{Range: rng(r), Source: SourceStep, Step: st, StepIndex: i, Entity: st.Entity, Column: col}
		}
		names = append(names, st.Entity.Name)
	}
	for i := s.stepIndex + 1; i < len(s.path.Steps); i++ {
		if s.path.Steps[i].Entity.Name == q.Text {
			c.errorf(q, "%s is below %s on this path: a reference may name the same step or one above it", q.Text, s.path.Steps[s.stepIndex].Entity.Name)
			return nil
		}
	}
	d := c.errorf(q, "%s is not on this path above %s: a reference names a step of the same path (same level or higher) or trait", q.Text, s.path.Steps[s.stepIndex].Entity.Name)
	d.Suggestion = suggest(q.Text, append(names, "trait"))
	return nil
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
		h.Write([]byte(CanonicalAudience(a)))
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
