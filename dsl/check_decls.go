package dsl

import (
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

var warehouseSpecs = map[string]map[string]settingSpec{
	"duckdb": {
		"type":            {kind: "ident"},
		"path":            {kind: "string"},
		"load":            {kind: "string", multi: true, from: true},
		"threads":         {kind: "int"},
		"memory_limit":    {kind: "string"},
		"max_connections": {kind: "int"},
		"access_mode":     {kind: "string"},
		"temp_directory":  {kind: "string"},
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
