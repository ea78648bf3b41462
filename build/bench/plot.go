package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The plot's layout in SVG user units (pixels): panels stacked on one time axis, the legend
// on the right.
const (
	plotWidth   = 1000
	plotLeft    = 80
	plotRight   = 170 // room for the legend
	plotTop     = 58
	panelHeight = 150
	panelGap    = 45
	plotBottom  = 50
)

// seriesColor is each server's colour, the same in every panel.
var seriesColor = map[string]string{
	"registry":     "#1f77b4",
	"replica":      "#d62728",
	"registry-10k": "#2ca02c",
	"file":         "#7f7f7f",
	"empty":        "#9467bd",
}

// point is one value of a series at a time from the start of its run.
type point struct {
	at    time.Duration
	value float64
}

// series is one server's line in a panel.
type series struct {
	label  string
	points []point
}

// goalLine is a dashed horizontal line at a goal's value.
type goalLine struct {
	id, label string
	value     float64
}

// panel is one chart of the plot.
type panel struct {
	id, title, unit string
	log             bool // a logarithmic value axis, for latencies: a 5 ms goal and 500 ms spikes both show
	series          []series
	goals           []goalLine
}

// plotCapacity draws the run's windows: DNS q/s and p99, ping rate and p99 per window, and
// memory at every sample, one line per server.
func plotCapacity(servers []*capacityServer, p capacityPlan) []byte {
	perWindow := func(cs *capacityServer, f func(capacityWindow) float64) series {
		s := series{label: cs.label}
		for _, w := range cs.windows {
			s.points = append(s.points, point{at: (w.lo + w.hi) / 2, value: f(w)})
		}
		return s
	}
	panels := []panel{
		{id: "qps", title: "DNS queries/s per 10-s window", unit: "q/s"},
		{id: "p99", title: "DNS p99 per window (log scale)", unit: "ms", log: true, goals: []goalLine{{"goal-p99", "goal 5 ms", msOf(goalP99)}}},
		{id: "pings", title: "pings scheduled per second, per window", unit: "pings/s"},
		{id: "ping-p99", title: "ping p99 per window, from the scheduled time (log scale)", unit: "ms", log: true, goals: []goalLine{{"goal-ping-p99", "goal 50 ms", msOf(goalPingP99)}}},
		{id: "rss", title: "RSS of the server and its descendants, every 1 s", unit: "GiB", goals: []goalLine{
			{"goal-rss-registry", "registry goal 1.5 GiB", gib(goalRegistryRSS)}, {"goal-rss-replica", "replica goal 1 GiB", gib(goalReplicaRSS)}}},
	}
	for _, cs := range servers {
		panels[0].series = append(panels[0].series, perWindow(cs, func(w capacityWindow) float64 { return w.perf.QPS }))
		panels[1].series = append(panels[1].series, perWindow(cs, func(w capacityWindow) float64 { return msOf(w.perf.P99) }))
		if cs.pings != nil {
			panels[2].series = append(panels[2].series, perWindow(cs, func(w capacityWindow) float64 {
				return float64(w.pings.scheduled) / w.span().Seconds()
			}))
			panels[3].series = append(panels[3].series, perWindow(cs, func(w capacityWindow) float64 { return msOf(w.pings.p99) }))
		}
		rss := series{label: cs.label}
		for _, m := range cs.memory {
			rss.points = append(rss.points, point{at: m.at, value: gib(m.total())})
		}
		panels[4].series = append(panels[4].series, rss)
	}
	return drawPlot(panels, p.main, fmt.Sprintf("regdns capacity: N=%d, dnsperf -q %d, %.0f pings/s + burst of %d", p.n, p.outstanding, pingRate(p.n), p.n*burstPercent/100))
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func gib(b int64) float64          { return float64(b) / (1 << 30) }

// plotHeight is the height of a plot of n panels.
func plotHeight(n int) int { return plotTop + n*(panelHeight+panelGap) - panelGap + plotBottom }

// drawPlot writes the panels as one SVG, with time from 0 to span on the x axis.
func drawPlot(panels []panel, span time.Duration, title string) []byte {
	var b bytes.Buffer
	height := plotHeight(len(panels))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", plotLeft, html.EscapeString(title))
	// The last memory samples and windows may end a little after the planned span.
	for _, p := range panels {
		for _, s := range p.series {
			for _, pt := range s.points {
				span = max(span, pt.at)
			}
		}
	}
	x := linear(0, span.Seconds(), plotLeft, plotWidth-plotRight)
	for i, p := range panels {
		top := float64(plotTop + i*(panelHeight+panelGap))
		drawPanel(&b, p, x, span, top, i == len(panels)-1)
	}
	drawLegend(&b, panels)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// drawPanel draws one panel: frame, ticks, goal lines and one polyline per series.
func drawPanel(b *bytes.Buffer, p panel, x func(float64) float64, span time.Duration, top float64, last bool) {
	y := valueAxis(p, top+panelHeight, top)
	fmt.Fprintf(b, `<g id="panel-%s">`+"\n", p.id)
	drawAxes(b, p, x, y, span, top, last)
	right := float64(plotWidth - plotRight)
	for _, g := range p.goals {
		fmt.Fprintf(b, `<line id="%s" class="goal" x1="%d" x2="%.1f" y1="%.2f" y2="%.2f" stroke="#000" stroke-dasharray="6,4"/>`+"\n", g.id, plotLeft, right, y.at(g.value), y.at(g.value))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="10">%s</text>`+"\n", right-4, y.at(g.value)-3, html.EscapeString(g.label))
	}
	for _, s := range p.series {
		drawSeries(b, p.id, s, x, y.at)
	}
	b.WriteString("</g>\n")
}

// yAxis is a panel's value scale: where a value is drawn, and the ticks to label.
type yAxis struct {
	at    func(float64) float64
	ticks []float64
	label func(float64) string
}

// valueAxis fits a panel's values and goals between bottom and top.
func valueAxis(p panel, bottom, top float64) yAxis {
	hi, lo := 0.0, math.Inf(1)
	for _, s := range p.series {
		for _, pt := range s.points {
			hi = max(hi, pt.value)
			if pt.value > 0 {
				lo = min(lo, pt.value)
			}
		}
	}
	for _, g := range p.goals {
		hi, lo = max(hi, g.value), min(lo, g.value)
	}
	if p.log {
		return logAxis(lo, hi, bottom, top)
	}
	step := niceStep(hi / 4)
	yTop := step * math.Ceil(hi*1.05/step)
	var ticks []float64
	for v := 0.0; v <= yTop+step/2; v += step {
		ticks = append(ticks, v)
	}
	return yAxis{at: linear(0, yTop, bottom, top), ticks: ticks, label: func(v float64) string { return tickLabel(v, step) }}
}

// logAxis spans whole decades around [lo, hi]; values at or under its bottom are drawn there.
func logAxis(lo, hi, bottom, top float64) yAxis {
	if math.IsInf(lo, 1) || hi <= 0 {
		lo, hi = 1, 10
	}
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	f := linear(d0, d1, bottom, top)
	var ticks []float64
	for d := d0; d <= d1; d++ {
		ticks = append(ticks, math.Pow(10, d))
	}
	at := func(v float64) float64 {
		if v <= 0 {
			return bottom
		}
		return f(max(math.Log10(v), d0))
	}
	return yAxis{at: at, ticks: ticks, label: func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }}
}

// drawAxes draws a panel's title, grid, ticks with their labels, frame and unit; under the
// last panel, the time axis's label.
func drawAxes(b *bytes.Buffer, p panel, x func(float64) float64, y yAxis, span time.Duration, top float64, last bool) {
	bottom := top + panelHeight
	right := float64(plotWidth - plotRight)
	fmt.Fprintf(b, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", plotLeft, top-6, html.EscapeString(p.title))
	for _, v := range y.ticks {
		fmt.Fprintf(b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", plotLeft, right, y.at(v), y.at(v))
		fmt.Fprintf(b, `<text class="tick-y" x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-5, y.at(v)+4, y.label(v))
	}
	xStep := niceStep(span.Seconds() / 8)
	for t := 0.0; t <= span.Seconds(); t += xStep {
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", x(t), x(t), top, bottom+4)
		fmt.Fprintf(b, `<text class="tick-x" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(t), bottom+15, tickLabel(t, xStep))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="none" stroke="#333"/>`+"\n", plotLeft, top, right-plotLeft, panelHeight)
	fmt.Fprintf(b, `<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", plotLeft-48, top+panelHeight/2, html.EscapeString(p.unit))
	if last {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">seconds from the start of each server's run</text>`+"\n", (plotLeft+right)/2, bottom+32)
	}
}

// drawSeries draws one server's line in a panel; a short one (the reference runs) also gets
// markers, so that one or two points show.
func drawSeries(b *bytes.Buffer, panelID string, s series, x, y func(float64) float64) {
	if len(s.points) == 0 {
		return
	}
	var pts []string
	for _, pt := range s.points {
		pts = append(pts, fmt.Sprintf("%.2f,%.2f", x(pt.at.Seconds()), y(pt.value)))
	}
	color := seriesColor[s.label]
	fmt.Fprintf(b, `<polyline id="%s-%s" class="series" fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", panelID, s.label, color, strings.Join(pts, " "))
	if len(s.points) <= 3 {
		for _, pt := range s.points {
			fmt.Fprintf(b, `<circle cx="%.2f" cy="%.2f" r="3" fill="%s"/>`+"\n", x(pt.at.Seconds()), y(pt.value), color)
		}
	}
}

// drawLegend lists every server drawn, in the order they first appear.
func drawLegend(b *bytes.Buffer, panels []panel) {
	var labels []string
	for _, p := range panels {
		for _, s := range p.series {
			if !slices.Contains(labels, s.label) {
				labels = append(labels, s.label)
			}
		}
	}
	x := plotWidth - plotRight + 15
	b.WriteString(`<g id="legend">` + "\n")
	for i, l := range labels {
		y := plotTop + 10 + 20*i
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", x, x+25, y, y, seriesColor[l])
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+32, y+4, html.EscapeString(l))
	}
	y := plotTop + 10 + 20*len(labels)
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#000" stroke-dasharray="6,4"/>`+"\n", x, x+25, y, y)
	fmt.Fprintf(b, `<text x="%d" y="%d">goal</text>`+"\n", x+32, y+4)
	b.WriteString("</g>\n")
}

// linear maps [d0, d1] onto [r0, r1].
func linear(d0, d1, r0, r1 float64) func(float64) float64 {
	if d1 == d0 {
		d1 = d0 + 1
	}
	return func(v float64) float64 { return r0 + (v-d0)*(r1-r0)/(d1-d0) }
}

// niceStep is the smallest 1, 2 or 5 times a power of ten at least raw.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// tickLabel prints v with as many decimals as the step needs.
func tickLabel(v, step float64) string {
	decimals := max(0, int(math.Ceil(-math.Log10(step))))
	return fmt.Sprintf("%.*f", decimals, v)
}
