package web

import (
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// Pictures drawn on the server as inline SVG: a sparkline per audience,
// the members-over-time chart (one circle per history point, so the page
// shows the figures without any script), and the audience's path through
// the data graph. The entered/exited chart is drawn in the browser by
// uPlot from changesChart's data.

type spark struct {
	Points string
	N      int
	Last   int64
}

func scale(v, lo, hi int64, size float64) float64 {
	if hi == lo {
		return size / 2
	}
	return float64(v-lo) / float64(hi-lo) * size
}

func bounds(pts []diff.HistoryPoint) (lo, hi int64) {
	for i, p := range pts {
		if i == 0 || p.Members < lo {
			lo = p.Members
		}
		if i == 0 || p.Members > hi {
			hi = p.Members
		}
	}
	return lo, hi
}

func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

// sparkline draws members over the points in a 100×24 box.
func sparkline(pts []diff.HistoryPoint) spark {
	if len(pts) == 0 {
		return spark{}
	}
	lo, hi := bounds(pts)
	var b strings.Builder
	for i, p := range pts {
		x := 50.0
		if len(pts) > 1 {
			x = float64(i) * 100 / float64(len(pts)-1)
		}
		y := 22 - scale(p.Members, lo, hi, 20)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f1(x) + "," + f1(y))
	}
	return spark{Points: b.String(), N: len(pts), Last: pts[len(pts)-1].Members}
}

type chartPoint struct {
	X, Y    string
	Run     uint64
	Members int64
	When    string
	Alert   bool
	OK      bool
}

type chart struct {
	Points   []chartPoint
	Line     string
	Min, Max int64
}

// membersChart draws members over time in a 600×160 box, a circle per
// point (a red one where an alert fired).
func membersChart(pts []diff.HistoryPoint) chart {
	if len(pts) == 0 {
		return chart{}
	}
	lo, hi := bounds(pts)
	c := chart{Min: lo, Max: hi}
	t0, t1 := pts[0].Start.Unix(), pts[len(pts)-1].Start.Unix()
	var line strings.Builder
	for i, p := range pts {
		var x float64
		switch {
		case len(pts) == 1:
			x = 300
		case t1 > t0:
			x = 20 + float64(p.Start.Unix()-t0)/float64(t1-t0)*570
		default:
			x = 20 + float64(i)/float64(len(pts)-1)*570
		}
		y := 150 - scale(p.Members, lo, hi, 130)
		cp := chartPoint{X: f1(x), Y: f1(y), Run: p.Run, Members: p.Members, When: p.Start.UTC().Format("2006-01-02 15:04:05Z"), Alert: p.Alerts > 0, OK: p.OK}
		c.Points = append(c.Points, cp)
		if i > 0 {
			line.WriteByte(' ')
		}
		line.WriteString(cp.X + "," + cp.Y)
	}
	c.Line = line.String()
	return c
}

// changesData is uPlot's data: x (unix seconds), entered, exited, members.
type changesData struct {
	Runs    []uint64 `json:"runs"`
	Time    []int64  `json:"time"`
	Entered []int64  `json:"entered"`
	Exited  []int64  `json:"exited"`
	Members []int64  `json:"members"`
	Alerts  []int    `json:"alerts"`
}

func changesChart(pts []diff.HistoryPoint) changesData {
	d := changesData{}
	for _, p := range pts {
		d.Runs = append(d.Runs, p.Run)
		d.Time = append(d.Time, p.Start.Unix())
		d.Entered = append(d.Entered, p.Entered)
		d.Exited = append(d.Exited, p.Exited)
		d.Members = append(d.Members, p.Members)
		d.Alerts = append(d.Alerts, p.Alerts)
	}
	return d
}

type pathNode struct {
	X, Y, W int
	TX      int
	Label   string
	Key     string
	Where   bool
}

type pathEdge struct {
	X1, X2, Y int
	Label     string
	LX        int
	// Head is the arrowhead's points.
	Head string
}

type picture struct {
	Width, Height int
	Nodes         []pathNode
	Edges         []pathEdge
}

// pathPicture draws profile and the steps of the audience's primary path
// left to right, each box naming the entity and its key, each arrow the
// join it follows.
func pathPicture(ws *dsl.Workspace, a *dsl.Audience) picture {
	const w, gap, h = 150, 130, 44
	p := picture{Height: h + 40}
	add := func(label, key string, where bool) {
		x := 10 + len(p.Nodes)*(w+gap)
		p.Nodes = append(p.Nodes, pathNode{X: x, Y: 10, W: w, TX: x + w/2, Label: label, Key: key, Where: where})
	}
	prof := "profile"
	if ws.Graph != nil && ws.Graph.Profile != nil {
		prof = ws.Graph.Profile.Name
	}
	add(prof, "", false)
	if a.Primary != nil {
		for _, st := range a.Primary.Steps {
			add(st.Entity.Name, st.Entity.Key, st.Where != nil || st.Having != nil)
			n := len(p.Nodes)
			from, to := p.Nodes[n-2], p.Nodes[n-1]
			label := ""
			if r := st.Rel; r != nil && len(r.On) > 0 {
				label = r.On[0].Upper + " = " + r.On[0].Lower
				if r.Through != nil {
					label = "via " + r.Through.Alias
				}
			}
			x2, y := to.X-2, 10+h/2
			head := strconv.Itoa(x2) + "," + strconv.Itoa(y) + " " + strconv.Itoa(x2-8) + "," + strconv.Itoa(y-5) + " " + strconv.Itoa(x2-8) + "," + strconv.Itoa(y+5)
			p.Edges = append(p.Edges, pathEdge{X1: from.X + w, X2: x2 - 8, Y: y, Label: label, LX: from.X + w + gap/2, Head: head})
		}
	}
	p.Width = 20 + len(p.Nodes)*(w+gap) - gap
	return p
}
