package results

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// LoadFigureMarks are what the curve of a ramp marks, in milliseconds
// and sessions, read back from the plotters.
type LoadFigureMarks struct {
	// Threshold is the baseline's repaint p95 plus the margin: a knee
	// lies proven above it.
	Threshold float64
	// Knee is the knee's sessions; -1 when there is none.
	Knee int
	// Failed is the sessions of the lowest step that failed at its load
	// (overloaded, or on a saturated host); -1 when none did. Overloaded
	// says which.
	Failed     int
	Overloaded bool
	// Lines names each curve drawn, with its points (sessions, ms).
	Lines map[string]plotter.XYs
}

// LoadCurve is the curve of a ramp, built but not rendered.
type LoadCurve struct {
	Plot  *plot.Plot
	Marks LoadFigureMarks
}

// BuildLoadCurve lays out the curve of l: both keypress figures' p50
// and p95 against sessions, each point with its interval, the threshold
// (the baseline's repaint p95 plus the margin), the knee, and the lowest
// step that failed at its load ("overloaded: <cause>"; its partial
// samples, and the steps above it, are not drawn: they are not judged).
func BuildLoadCurve(l Load) (*LoadCurve, error) {
	var measured []LoadStep
	var failed *LoadStep
	for i, s := range l.Steps {
		if s.Failure != "" && failed == nil {
			failed = &l.Steps[i]
		}
		if s.Repaint.Samples > 0 && failed == nil && !s.NotRun {
			measured = append(measured, s)
		}
	}
	if len(measured) == 0 {
		return nil, fmt.Errorf("build the curve of ramp %s: %w at any step", l.RunID, ErrNoSamples)
	}
	p := plot.New()
	title := fmt.Sprintf("load ramp %s: %s (%s sessions through %s)", l.RunID, l.Verdict, l.Source, l.Proxy)
	p.Title.Text = TitleFor(l.Lane, title)
	p.X.Label.Text = "busy sessions"
	p.Y.Label.Text = "latency (ms)"
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	c := &LoadCurve{Plot: p, Marks: LoadFigureMarks{Knee: -1, Failed: -1, Lines: map[string]plotter.XYs{}}}
	hi := 0.0
	curves := []struct {
		name string
		fig  func(LoadStep) LoadFigure
		p95  bool
	}{
		{"first draw p50", func(s LoadStep) LoadFigure { return s.FirstDraw }, false},
		{"first draw p95", func(s LoadStep) LoadFigure { return s.FirstDraw }, true},
		{"repaint p50", func(s LoadStep) LoadFigure { return s.Repaint }, false},
		{"repaint p95", func(s LoadStep) LoadFigure { return s.Repaint }, true},
	}
	for i, cv := range curves {
		pts := make(plotter.XYs, 0, len(measured))
		errs := make(plotter.YErrors, 0, len(measured))
		for _, s := range measured {
			f := cv.fig(s)
			v, ci := f.P50S, f.P50CIS
			if cv.p95 {
				v, ci = f.P95S, f.P95CIS
			}
			pts = append(pts, plotter.XY{X: float64(s.Sessions), Y: 1000 * v})
			lo, up := 0.0, 0.0
			if ci != [2]float64{} {
				lo, up = math.Max(0, 1000*(v-ci[0])), math.Max(0, 1000*(ci[1]-v))
			}
			errs = append(errs, struct{ Low, High float64 }{lo, up})
			hi = math.Max(hi, 1000*math.Max(v, ci[1]))
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, fmt.Errorf("build the curve of ramp %s: %w", l.RunID, err)
		}
		col := seriesColors[i/2%len(seriesColors)]
		line.Color, points.Color = col, col
		line.Width = vg.Points(1.5)
		if !cv.p95 {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		points.Shape = seriesGlyph(i)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return nil, fmt.Errorf("build the curve of ramp %s: %w", l.RunID, err)
		}
		bars.Color = col
		p.Add(line, points, bars)
		p.Legend.Add(fmt.Sprintf("%s (%.0f%% CI)", cv.name, 100*l.Confidence), line, points)
		c.Marks.Lines[cv.name] = pts
	}
	xmax := float64(measured[len(measured)-1].Sessions)
	if failed != nil {
		xmax = math.Max(xmax, float64(failed.Sessions))
	}
	if base := l.Steps[0]; base.Repaint.Samples > 0 {
		c.Marks.Threshold = 1000 * (base.Repaint.P95S + l.MaxAddedS)
		thr, err := plotter.NewLine(plotter.XYs{{X: 0, Y: c.Marks.Threshold}, {X: math.Max(xmax, 1), Y: c.Marks.Threshold}})
		if err != nil {
			return nil, err
		}
		thr.Color = color.NRGBA{A: 0xFF}
		thr.Width = vg.Points(1.2)
		thr.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(thr)
		p.Legend.Add(fmt.Sprintf("baseline repaint p95 + %.1f ms", 1000*l.MaxAddedS), thr)
		hi = math.Max(hi, c.Marks.Threshold)
	}
	if l.Knee != nil {
		c.Marks.Knee = *l.Knee
		k, err := plotter.NewLine(plotter.XYs{{X: float64(*l.Knee), Y: 0}, {X: float64(*l.Knee), Y: hi * 1.05}})
		if err != nil {
			return nil, err
		}
		k.Color = abFailColor
		if l.Verdict != "knee" {
			k.Color = abInconclusiveColor
		}
		k.Width = vg.Points(2)
		p.Add(k)
		p.Legend.Add(fmt.Sprintf("knee: %d sessions (%s)", *l.Knee, l.Verdict), k)
	}
	if failed != nil {
		c.Marks.Failed, c.Marks.Overloaded = failed.Sessions, failed.Overloaded
		f, err := plotter.NewLine(plotter.XYs{{X: float64(failed.Sessions), Y: 0}, {X: float64(failed.Sessions), Y: hi * 1.05}})
		if err != nil {
			return nil, err
		}
		f.Color = abFailColor
		label := fmt.Sprintf("overloaded at %d sessions: %s; the knee is at or below", failed.Sessions, failed.Failure)
		if !failed.Overloaded {
			f.Color = abInconclusiveColor
			label = fmt.Sprintf("failed at %d sessions on a saturated host: %s", failed.Sessions, failed.Failure)
		}
		f.Width = vg.Points(2)
		f.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(f)
		p.Legend.Add(label, f)
	}
	p.X.Min, p.X.Max = 0, math.Max(xmax, 1)*1.05
	p.Y.Min, p.Y.Max = 0, hi*1.1
	return c, nil
}

// WritePNG renders the curve, FigureWidth x FigureHeight at FigureDPI.
func (c *LoadCurve) WritePNG(w io.Writer) error {
	img := newCanvas()
	c.Plot.Draw(draw.New(img))
	if err := encodePNG(w, img); err != nil {
		return fmt.Errorf("encode the load curve as PNG: %w", err)
	}
	return nil
}

// WriteLoadPlot draws the curve of l to path (a PNG), atomically.
func WriteLoadPlot(path string, l Load) error {
	c, err := BuildLoadCurve(l)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return writeAtomic(path, c.WritePNG)
}
