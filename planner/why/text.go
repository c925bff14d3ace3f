package why

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText prints the result as an indented tree: each node's truth
// ("yes"/"no ") and text, with its evidence below it.
func (r *Result) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	switch {
	case !r.Found:
		fmt.Fprintf(b, "no such profile: no row of the profile table has key %s, so it is not a member of %s\n", quote(r.Profile), r.Audience)
		return b.Flush()
	case r.Member:
		fmt.Fprintf(b, "%s is a member of %s\n", quote(r.Profile), r.Audience)
	default:
		fmt.Fprintf(b, "%s is not a member of %s\n", quote(r.Profile), r.Audience)
	}
	if r.Rows > 1 {
		fmt.Fprintf(b, "(%d profile rows have this key; showing the %s)\n", r.Rows, map[bool]string{true: "first that qualifies", false: "first"}[r.Member])
	}
	writeNode(b, r.Tree, "")
	return b.Flush()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no "
}

func writeNode(b *bufio.Writer, n *Node, ind string) {
	text := n.Text
	switch n.Kind {
	case "and":
		text = "all of"
	case "or":
		text = "any of"
	case "not":
		text = "not"
	}
	fmt.Fprintf(b, "%s%s %s", ind, yes(n.Holds), text)
	if len(n.Values) > 0 {
		var vs []string
		for _, v := range n.Values {
			vs = append(vs, v.Name+" = "+valueText(v.Value))
		}
		fmt.Fprintf(b, "   [%s]", strings.Join(vs, ", "))
	}
	b.WriteByte('\n')
	sub := ind + "    "
	for i, s := range n.Steps {
		fmt.Fprintf(b, "%s  %s (%s", sub, s.Entity, s.Needs)
		if s.Where != "" {
			fmt.Fprintf(b, ", where %s", s.Where)
		}
		fmt.Fprintf(b, "): %s related, %d matching\n", plural(s.Rows, "row"), s.Matching)
		for _, row := range s.Shown {
			fmt.Fprintf(b, "%s    %s %s", sub, yes(row.Matched), keyText(row.Key))
			if len(row.Parent) > 0 {
				var ps []string
				for j, p := range row.Parent {
					ps = append(ps, s.Parent[j]+" = "+valueText(p))
				}
				fmt.Fprintf(b, "  (%s)", strings.Join(ps, ", "))
			}
			var why []string
			if row.Key == nil {
				why = append(why, "its key is NULL")
			}
			if !row.Where {
				if len(row.Failed) > 0 {
					why = append(why, "failed: "+strings.Join(row.Failed, "; "))
				} else {
					why = append(why, "failed: "+s.Where)
				}
			}
			if row.ChildHolds != nil && i+1 < len(n.Steps) {
				next := n.Steps[i+1]
				var got string
				switch row.ChildKind {
				case "count":
					got = fmt.Sprintf("%s matching", valueText(row.Child))
				case "exists":
					got = map[bool]string{true: "some matching", false: "none matching"}[fmt.Sprint(row.Child) == "1"]
				default:
					got = strings.TrimPrefix(next.Needs, "having ")
					if f := strings.Fields(got); len(f) > 0 {
						got = f[0]
					}
					got += " = " + valueText(row.Child)
				}
				verdict := "needs"
				if *row.ChildHolds {
					verdict = "holds:"
				}
				why = append(why, fmt.Sprintf("%s %s, %s %s", next.Entity, got, verdict, next.Needs))
			}
			if len(row.Values) > 0 {
				var vs []string
				for _, v := range row.Values {
					vs = append(vs, v.Name+"="+valueText(v.Value))
				}
				why = append(why, strings.Join(vs, " "))
			}
			if len(why) > 0 {
				fmt.Fprintf(b, "  %s", strings.Join(why, "; "))
			}
			b.WriteByte('\n')
		}
		if more := s.Rows - len(s.Shown); more > 0 {
			fmt.Fprintf(b, "%s    … and %d more\n", sub, more)
		}
	}
	if e := n.Events; e != nil {
		fmt.Fprintf(b, "%s  %s %s, %d counted\n", sub, plural(e.Total, "event"), quote(e.Name), e.Counted)
		for _, ev := range e.Shown {
			fmt.Fprintf(b, "%s    %s %s", sub, yes(ev.Counted), valueText(ev.Time))
			if ev.InWindow != nil && !*ev.InWindow {
				b.WriteString("  outside the window")
			}
			if ev.Where != nil && !*ev.Where {
				b.WriteString("  where is false")
			}
			b.WriteByte('\n')
		}
		if more := e.Total - len(e.Shown); more > 0 {
			fmt.Fprintf(b, "%s    … and %d more\n", sub, more)
		}
	}
	for _, k := range n.Children {
		writeNode(b, k, sub)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func keyText(k *string) string {
	if k == nil {
		return "NULL"
	}
	return quote(*k)
}

// quote leaves a plain key as it is and quotes one that would not read
// as one word.
func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\r\"'") {
		b, _ := json.Marshal(s)
		return string(b)
	}
	return s
}

func valueText(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		b, _ := json.Marshal(v)
		return string(b)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
