package preview

import (
	"bufio"
	"fmt"
	"io"
	"sort"
)

// MemberDiff is a preview's membership against the last committed
// generation's (`linkaud preview --diff`).
type MemberDiff struct {
	// Entered are members of the preview the generation lacks, Exited
	// the generation's members the preview lacks, both in byte order.
	Entered, Exited []string
	// Stay counts the members in both.
	Stay int
	// Generation is the committed generation compared with (0: none yet,
	// so every member enters).
	Generation uint64
}

// Diff compares r's members (r must hold them all: no limit) with
// committed, the generation's member keys.
func (r *Result) Diff(committed []string, generation uint64) *MemberDiff {
	now := map[string]bool{}
	for _, row := range r.Rows {
		now[row.ProfileKey] = true
	}
	d := &MemberDiff{Generation: generation}
	was := map[string]bool{}
	for _, k := range committed {
		was[k] = true
		if now[k] {
			d.Stay++
		} else {
			d.Exited = append(d.Exited, k)
		}
	}
	for k := range now {
		if !was[k] {
			d.Entered = append(d.Entered, k)
		}
	}
	sort.Strings(d.Entered)
	sort.Strings(d.Exited)
	return d
}

// Write prints one line per change, "+ KEY" entered and "- KEY" exited,
// then a count line.
func (d *MemberDiff) Write(w io.Writer) error {
	b := bufio.NewWriter(w)
	for _, k := range d.Entered {
		fmt.Fprintf(b, "+ %s\n", cell(k))
	}
	for _, k := range d.Exited {
		fmt.Fprintf(b, "- %s\n", cell(k))
	}
	against := fmt.Sprintf("generation %d", d.Generation)
	if d.Generation == 0 {
		against = "no committed generation yet"
	}
	fmt.Fprintf(b, "%d entered, %d exited, %d stay (against %s)\n", len(d.Entered), len(d.Exited), d.Stay, against)
	return b.Flush()
}
