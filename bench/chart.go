package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chartColors are distinguishable line colours, one per subject.
var chartColors = []string{
	"#9e9e9e", "#616161", "#212121", // floors
	"#d62728", "#ff7f0e", "#bcbd22", // ours
	"#1f77b4", "#9467bd", "#2ca02c", // peers
	"#e377c2", "#17becf",
}

// chartSVG draws decisions per second by concurrency, many keys and hot key
// side by side, one line per subject. Hand-written SVG, no dependencies.
func (r *report) chartSVG() string {
	const (
		panelW, panelH = 420, 300
		left, top      = 70, 50
		gap            = 80
		legendW        = 230
	)
	width := left + 2*panelW + gap + legendW
	height := top + panelH + 60
	var ymax float64
	for _, sr := range r.Subjects {
		for _, cs := range sr.Cells {
			ymax = math.Max(ymax, median(cs, cell.PerSecond))
		}
	}
	ymax = niceCeil(ymax)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	w(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	w(`<text x="%d" y="22" font-size="15" font-weight="bold">Decisions per second by goroutines (median of %d × %v, Redis %s, %d cores)</text>`+"\n",
		left, r.Opts.Reps, r.Opts.Duration, html.EscapeString(r.Env.Redis), r.Env.Cores)
	n := len(r.Opts.Concs)
	xAt := func(i int) float64 {
		if n == 1 {
			return panelW / 2
		}
		return 20 + float64(i)*(panelW-40)/float64(n-1)
	}
	yAt := func(v float64) float64 { return panelH - v/ymax*panelH }
	for p, hot := range []bool{false, true} {
		x0 := left + p*(panelW+gap)
		title := "many keys"
		if hot {
			title = "one hot key"
		}
		w(`<g transform="translate(%d,%d)">`+"\n", x0, top)
		w(`<text x="%d" y="-8" text-anchor="middle" font-weight="bold">%s</text>`+"\n", panelW/2, title)
		for t := 0; t <= 5; t++ {
			v := ymax * float64(t) / 5
			y := yAt(v)
			w(`<line x1="0" x2="%d" y1="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", panelW, y, y)
			label := fmtRate(v)
			if v == 0 {
				label = "0"
			}
			w(`<text x="-6" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", y, label)
		}
		w(`<line x1="0" x2="0" y1="0" y2="%d" stroke="black"/><line x1="0" x2="%d" y1="%d" y2="%d" stroke="black"/>`+"\n", panelH, panelW, panelH, panelH)
		for i, c := range r.Opts.Concs {
			w(`<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", xAt(i), panelH+18, c)
		}
		w(`<text x="%d" y="%d" text-anchor="middle">goroutines</text>`+"\n", panelW/2, panelH+36)
		for si, sr := range r.Subjects {
			if hot && sr.S.Keyless {
				continue
			}
			color := chartColors[si%len(chartColors)]
			dash := ""
			if sr.S.Kind == kindFloor {
				dash = ` stroke-dasharray="5,4"`
			}
			var pts []string
			for i, c := range r.Opts.Concs {
				v := median(sr.Cells[cellKey{Conc: c, Hot: hot}], cell.PerSecond)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(i), yAt(v)))
			}
			w(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", color, dash, strings.Join(pts, " "))
			for _, pt := range pts {
				x, y, _ := strings.Cut(pt, ",")
				w(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", x, y, color)
			}
		}
		w("</g>\n")
	}
	lx := left + 2*panelW + gap + 10
	for si, sr := range r.Subjects {
		y := top + 10 + si*20
		color := chartColors[si%len(chartColors)]
		dash := ""
		if sr.S.Kind == kindFloor {
			dash = ` stroke-dasharray="5,4"`
		}
		w(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, lx+24, y, y, color, dash)
		w(`<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", lx+30, y, html.EscapeString(sr.S.Name))
	}
	w("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
