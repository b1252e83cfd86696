package results

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ABPlotSuffix ends latency-<run>-ab.png.
const ABPlotSuffix = "-ab.png"

// ABPlotName is the picture of an A/B run: latency-<run>-ab.png.
func ABPlotName(run string) string { return FilePrefix + run + ABPlotSuffix }

// Colours of the verdict on the A/B picture.
var (
	abPassColor         = color.NRGBA{G: 0x9E, B: 0x73, A: 0xFF} // bluish green
	abFailColor         = color.NRGBA{R: 0xD5, G: 0x5E, A: 0xFF} // vermilion
	abInconclusiveColor = color.NRGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xFF}
)

// ABFigure is the picture of an A/B run, built but not rendered: one
// panel per keypress figure, each with the empirical CDFs of A and B,
// the threshold and the interval of the difference, so the verdict can
// be seen.
type ABFigure struct {
	Panels []*plot.Plot
	marks  []ABMarks
}

// ABMarks are the positions drawn on one panel, in milliseconds, read
// back from the plotters (what ends up in the picture).
type ABMarks struct {
	Metric string
	// Threshold is A's median plus LATENCY_AB_MAX_ADDED: B's median must
	// lie left of it.
	Threshold float64
	// CILo and CIHi are the interval of B − A placed at A's median, drawn
	// at the height of the medians (0.5).
	CILo, CIHi float64
}

// Marks returns what each panel marks.
func (f *ABFigure) Marks() []ABMarks { return slices.Clone(f.marks) }

// BuildABFigure lays out the picture of ab from each leg's samples of
// each figure (seconds, keyed by metric name).
func BuildABFigure(ab AB, a, b map[string][]float64) (*ABFigure, error) {
	f := &ABFigure{}
	for _, m := range ab.Metrics {
		av, bv := a[m.Metric], b[m.Metric]
		if len(av) == 0 || len(bv) == 0 {
			continue
		}
		p, marks, err := abPanel(ab, m, av, bv)
		if err != nil {
			return nil, fmt.Errorf("build A/B plot, %s: %w", m.Metric, err)
		}
		f.Panels = append(f.Panels, p)
		f.marks = append(f.marks, marks)
	}
	if len(f.Panels) == 0 {
		return nil, fmt.Errorf("build A/B plot of run %s: %w in either leg", ab.RunID, ErrNoSamples)
	}
	f.Panels[0].Title.Text = TitleFor(ab.Lane, fmt.Sprintf("A/B run %s: %s\n%s", ab.RunID, strings.ToUpper(ab.Verdict), f.Panels[0].Title.Text))
	return f, nil
}

func abPanel(ab AB, m ABMetric, a, b []float64) (*plot.Plot, ABMarks, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %s (B−A %+.1f ms, 95%% CI [%+.1f, %+.1f] ms)", m.Metric, outcomeOf(m), 1000*m.DifferenceS, 1000*m.DifferenceCIS[0], 1000*m.DifferenceCIS[1])
	p.X.Label.Text = "latency (ms)"
	p.Y.Label.Text = "fraction of samples at or below"
	p.Y.Min, p.Y.Max = 0, 1.05
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs = -vg.Points(4)
	p.Legend.YOffs = vg.Points(12)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	for i, leg := range []struct {
		name string
		v    []float64
		desc string
	}{{"A", a, ab.A.Console}, {"B", b, ab.B.Console}} {
		line, err := plotter.NewLine(cdf(leg.v))
		if err != nil {
			return nil, ABMarks{}, err
		}
		line.Color = seriesColors[i]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s, n=%d, median %.1f ms", leg.name, len(leg.v), 1000*median(leg.v)), line)
	}
	col := abInconclusiveColor
	switch m.Outcome {
	case "pass":
		col = abPassColor
	case "fail":
		col = abFailColor
	}
	am := 1000 * m.AMedianS
	marks := ABMarks{Metric: m.Metric, Threshold: am + 1000*ab.MaxAddedS, CILo: am + 1000*m.DifferenceCIS[0], CIHi: am + 1000*m.DifferenceCIS[1]}
	thr, err := plotter.NewLine(plotter.XYs{{X: marks.Threshold, Y: 0}, {X: marks.Threshold, Y: 1}})
	if err != nil {
		return nil, ABMarks{}, err
	}
	thr.Color = color.NRGBA{A: 0xFF}
	thr.Width = vg.Points(1.2)
	thr.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	p.Add(thr)
	p.Legend.Add(fmt.Sprintf("A median + max added (%.1f ms)", 1000*ab.MaxAddedS), thr)
	bar, err := plotter.NewLine(plotter.XYs{{X: marks.CILo, Y: 0.5}, {X: marks.CIHi, Y: 0.5}})
	if err != nil {
		return nil, ABMarks{}, err
	}
	bar.Color = col
	bar.Width = vg.Points(5)
	p.Add(bar)
	p.Legend.Add("95% CI of B−A, placed at A's median", bar)
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: marks.CIHi, Y: 0.53}}, Labels: []string{outcomeOf(m)}})
	if err != nil {
		return nil, ABMarks{}, err
	}
	lab.Offset = vg.Point{X: vg.Points(3)}
	for i := range lab.TextStyle {
		lab.TextStyle[i].XAlign = text.XLeft
		lab.TextStyle[i].Color = col
	}
	p.Add(lab)
	// Keep the threshold and the interval in view even when they lie
	// beyond every sample.
	hi := math.Max(marks.Threshold, marks.CIHi)
	for _, v := range slices.Concat(a, b) {
		hi = math.Max(hi, 1000*v)
	}
	p.X.Min = math.Min(0, marks.CILo)
	p.X.Max = hi * 1.05
	return p, marks, nil
}

func outcomeOf(m ABMetric) string {
	if m.Outcome == "" {
		return "not compared"
	}
	return m.Outcome
}

// cdf is the empirical CDF of seconds as a staircase in milliseconds.
func cdf(v []float64) plotter.XYs {
	s := slices.Clone(v)
	slices.Sort(s)
	n := float64(len(s))
	out := make(plotter.XYs, 0, 2*len(s))
	for i, x := range s {
		out = append(out, plotter.XY{X: 1000 * x, Y: float64(i) / n}, plotter.XY{X: 1000 * x, Y: float64(i+1) / n})
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// WritePNG renders the panels one above the other, FigureWidth x
// FigureHeight at FigureDPI.
func (f *ABFigure) WritePNG(w io.Writer) error {
	img := newCanvas()
	c := draw.New(img)
	tiles := draw.Tiles{Rows: len(f.Panels), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(18)}
	plots := make([][]*plot.Plot, len(f.Panels))
	for i, p := range f.Panels {
		plots[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(plots, tiles, c)
	for i, p := range f.Panels {
		p.Draw(canvases[i][0])
	}
	if err := encodePNG(w, img); err != nil {
		return fmt.Errorf("encode A/B plot as PNG: %w", err)
	}
	return nil
}

// WriteABPlot draws the picture of ab to path (a PNG), atomically.
func WriteABPlot(path string, ab AB, a, b map[string][]float64) error {
	f, err := BuildABFigure(ab, a, b)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return writeAtomic(path, f.WritePNG)
}
