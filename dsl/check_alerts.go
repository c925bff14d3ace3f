package dsl

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

// Alert is a drift alert of an audience: `alert size_change > 20% notify
// ops` fires on a run whose membership changed by more than a fifth;
// `alert size < 1000` on a run that leaves fewer than 1,000 members.
type Alert struct {
	Range
	// Metric is AlertSizeChange or AlertSize.
	Metric string
	// Op is >, >=, < or <=.
	Op string
	// Threshold is a count, or a percentage of the previous size when
	// Percent.
	Threshold float64
	Percent   bool
	// Notify is the destination that receives an alert event; nil for
	// none (the run is still marked and counted).
	Notify *Destination
}

// The metrics an alert can watch.
const (
	// AlertSizeChange is |members after − members before|, or that over
	// members before in percent.
	AlertSizeChange = "size_change"
	// AlertSize is the members after the run.
	AlertSize = "size"
)

// NotifyTypes are the destination types an alert can notify: those that
// take any JSON event, not only profile updates.
var NotifyTypes = []string{"webhook", "kafka", "file", "stdout"}

// String is the alert as written, without its destination.
func (a *Alert) String() string {
	t := strconv.FormatFloat(a.Threshold, 'f', -1, 64)
	if a.Percent {
		t += "%"
	}
	return a.Metric + " " + a.Op + " " + t
}

// Crossed reports whether a successful run taking the audience from before
// to after members crosses the alert, with the value it compared. A
// percentage change from an empty audience (the first run, or a refill)
// compares against nothing and never fires.
func (a *Alert) Crossed(before, after int64) (value float64, crossed bool) {
	switch a.Metric {
	case AlertSize:
		value = float64(after)
	case AlertSizeChange:
		value = math.Abs(float64(after - before))
		if a.Percent {
			if before == 0 {
				return 0, false
			}
			value = value * 100 / float64(before)
		}
	default:
		return 0, false
	}
	switch a.Op {
	case ">":
		return value, value > a.Threshold
	case ">=":
		return value, value >= a.Threshold
	case "<":
		return value, value < a.Threshold
	case "<=":
		return value, value <= a.Threshold
	}
	return value, false
}

// alerts checks every audience's alert clauses, once destinations are
// known (notify names one).
func (c *checker) alerts() {
	for _, ir := range c.ws.Audiences {
		decl := c.audDecl[ir]
		if decl == nil {
			continue
		}
		for _, cl := range decl.Clauses {
			if cl.Alert != nil {
				if a := c.alert(ir, cl.Alert); a != nil {
					ir.Alerts = append(ir.Alerts, a)
				}
			}
		}
	}
}

func (c *checker) alert(aud *Audience, g *grammar.Alert) *Alert {
	a := &Alert{Range: rng(g), Metric: g.Metric.Text, Op: g.Op, Percent: g.Percent}
	ok := true
	switch a.Metric {
	case AlertSizeChange:
		if a.Op != ">" && a.Op != ">=" {
			c.errorf(g, "alert %s %s: a size change alerts when it is large: use > or >=", a.Metric, a.Op)
			ok = false
		}
	case AlertSize:
		if a.Percent {
			c.errorf(g.Threshold, "alert size takes a number of members, not a percentage (size_change takes one)")
			ok = false
		}
		if a.Op == "=" || a.Op == "!=" {
			c.errorf(g, "alert size %s: use >, >=, < or <=", a.Op)
			ok = false
		}
	default:
		c.unknown(g.Metric, "alert metric", []string{AlertSizeChange, AlertSize})
		return nil
	}
	if g.Threshold.Number == "" {
		c.errorf(g.Threshold, "alert threshold %s: write a number such as 20%% or 1000", g.Threshold.Text())
		return nil
	}
	v, err := strconv.ParseFloat(g.Threshold.Number, 64)
	if err != nil || v < 0 {
		c.errorf(g.Threshold, "alert threshold %s: write a number of 0 or more", g.Threshold.Number)
		return nil
	}
	a.Threshold = v
	if g.Notify != nil {
		a.Notify = c.ws.Destination(g.Notify.Text)
		switch {
		case a.Notify == nil && !c.broken["destination"][g.Notify.Text] && !c.destDeclared(g.Notify.Text):
			var names []string
			for _, d := range c.ws.Destinations {
				names = append(names, d.Name)
			}
			c.unknown(g.Notify, "destination", names)
			ok = false
		case a.Notify != nil && !slices.Contains(NotifyTypes, a.Notify.Type):
			c.errorf(g.Notify, "alert of audience %s notifies %s, a %s destination, which only takes profile updates: notify a %s destination",
				aud.Name, a.Notify.Name, a.Notify.Type, orList(NotifyTypes))
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return a
}

func orList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}
