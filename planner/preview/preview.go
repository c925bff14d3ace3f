// Package preview shows an audience's members without touching state: it
// runs the audience's plan on a warehouse and prints the rows as a table,
// as JSON lines (one member per line, with its matched entities), or as the
// bare profile keys.
//
// Entry points: Run reads a plan's rows; Result.WriteTable, WriteJSONL and
// WriteKeys print them. `linkaud preview` is a thin wrapper.
package preview

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
)

// Row is one result row of a plan.
type Row struct {
	ProfileKey string
	// Keys holds the key of each step of the primary path as text, "" where
	// the chain stops (Present says which are set).
	Keys    []string
	Present []bool
	// Enrich holds the enrichment values, JSON-ready (executor.Cells.Value).
	Enrich []any
}

// Result is what Run read.
type Result struct {
	Plan *planner.Plan
	Rows []Row
	// Members is the number of distinct profile keys.
	Members int
}

// Run executes plan on w and reads every row. The plan's own limit, if any
// (planner.Options.Limit), bounds the members.
func Run(ctx context.Context, w executor.Warehouse, plan *planner.Plan) (*Result, error) {
	rd, err := w.Query(ctx, plan.SQL, executor.QueryOptions{Tag: "linkaud preview " + plan.Audience.Name})
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	if got, want := len(rd.Schema().Fields()), len(plan.Columns); got != want {
		return nil, fmt.Errorf("preview: the warehouse returned %d columns, the plan has %d", got, want)
	}
	res := &Result{Plan: plan}
	nkeys := plan.KeyColumns()
	last := ""
	for rd.Next() {
		rec := rd.RecordBatch()
		cells := make([]executor.Cells, rec.NumCols())
		for i := range cells {
			if cells[i], err = executor.NewCells(rec.Column(i)); err != nil {
				return nil, fmt.Errorf("preview: column %s: %w", plan.Columns[i].Name, err)
			}
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			row := Row{Keys: make([]string, nkeys), Present: make([]bool, nkeys)}
			for i, col := range plan.Columns {
				switch col.Role {
				case planner.RoleProfileKey:
					row.ProfileKey, _ = cells[i].Text(r)
				case planner.RoleEntityKey:
					row.Keys[col.Step], row.Present[col.Step] = cells[i].Text(r)
				case planner.RoleEnrich:
					row.Enrich = append(row.Enrich, cells[i].Value(r))
				}
			}
			if len(res.Rows) == 0 || row.ProfileKey != last {
				res.Members++
				last = row.ProfileKey
			}
			res.Rows = append(res.Rows, row)
		}
	}
	if err := rd.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// stepNames names the key columns by their entities.
func (r *Result) stepNames() []string {
	var out []string
	if p := r.Plan.Audience.Primary; p != nil {
		for _, s := range p.Steps {
			out = append(out, s.Entity.Name)
		}
	}
	return out
}

func (r *Result) enrichNames() []string {
	var out []string
	for _, c := range r.Plan.Columns {
		if c.Role == planner.RoleEnrich {
			out = append(out, c.Ref.String())
		}
	}
	return out
}

// WriteKeys prints each member's profile key once, one per line, in byte
// order (the plan's order).
func (r *Result) WriteKeys(w io.Writer) error {
	bw := bufio.NewWriter(w)
	last := ""
	for i, row := range r.Rows {
		if i > 0 && row.ProfileKey == last {
			continue
		}
		last = row.ProfileKey
		bw.WriteString(row.ProfileKey)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WriteTable prints the rows as an aligned table with a header: the profile
// key, each step's key (named by its entity), each enrichment column. NULL
// shows as "-".
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append(append([]string{"profile_key"}, r.stepNames()...), r.enrichNames()...)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, row := range r.Rows {
		cells := []string{cell(row.ProfileKey)}
		for i, k := range row.Keys {
			if row.Present[i] {
				cells = append(cells, cell(k))
			} else {
				cells = append(cells, "-")
			}
		}
		for _, v := range row.Enrich {
			cells = append(cells, valueText(v))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell keeps a table cell on one line and visibly non-empty.
func cell(s string) string {
	if s == "" {
		return `""`
	}
	if strings.ContainsAny(s, "\t\n\r") {
		b, _ := json.Marshal(s)
		return string(b)
	}
	return s
}

func valueText(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return cell(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// member is one line of WriteJSONL.
type member struct {
	ProfileKey string         `json:"profile_key"`
	Traits     map[string]any `json:"traits,omitempty"`
	Entities   []entity       `json:"entities"`
}

// entity is one matched chain: its steps from the top down to the lowest
// entity it reaches, and its step enrichment columns.
type entity struct {
	Lowest stepKey        `json:"lowest"`
	Path   []stepKey      `json:"path"`
	Enrich map[string]any `json:"enrich,omitempty"`
}

type stepKey struct {
	Entity string `json:"entity"`
	Key    string `json:"key"`
}

// WriteJSONL prints one JSON object per member: its profile key, enriched
// traits, and every matched chain with its lowest entity.
func (r *Result) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	steps := r.stepNames()
	var enrich []planner.Column
	for _, c := range r.Plan.Columns {
		if c.Role == planner.RoleEnrich {
			enrich = append(enrich, c)
		}
	}
	var cur *member
	flush := func() error {
		if cur == nil {
			return nil
		}
		return enc.Encode(cur)
	}
	for _, row := range r.Rows {
		if cur == nil || cur.ProfileKey != row.ProfileKey {
			if err := flush(); err != nil {
				return err
			}
			cur = &member{ProfileKey: row.ProfileKey, Entities: []entity{}}
			for j, c := range enrich {
				if c.Step < 0 {
					if cur.Traits == nil {
						cur.Traits = map[string]any{}
					}
					cur.Traits[c.Ref.Column] = row.Enrich[j]
				}
			}
		}
		var e entity
		for i, k := range row.Keys {
			if row.Present[i] {
				e.Path = append(e.Path, stepKey{steps[i], k})
			}
		}
		if len(e.Path) == 0 {
			continue // a member without matching entities
		}
		e.Lowest = e.Path[len(e.Path)-1]
		for j, c := range enrich {
			if c.Step >= 0 && row.Present[c.Step] {
				if e.Enrich == nil {
					e.Enrich = map[string]any{}
				}
				e.Enrich[c.Ref.String()] = row.Enrich[j]
			}
		}
		cur.Entities = append(cur.Entities, e)
	}
	if err := flush(); err != nil {
		return err
	}
	return bw.Flush()
}
