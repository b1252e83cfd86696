package results

import (
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/shakenfist/kerbside-latency/harness/atomicfile"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// Image geometry. 10 x 8 inches at 96 dpi is 960 x 768 pixels: big enough
// to read a few hundred samples per console, small enough to attach to an
// issue or a CI artefact list.
const (
	FigureWidth  = 10 * vg.Inch
	FigureHeight = 8 * vg.Inch
	FigureDPI    = 96
)

// MissColor is the colour of the glyphs that mark a key press with no
// draw. No series colour is close to it, so a miss never looks like a
// sample; tests look for it in the rendered image.
var MissColor = color.NRGBA{R: 0xFF, A: 0xFF}

// seriesColors is the Okabe-Ito palette (readable for the common forms of
// colour blindness) without its vermilion and yellow: vermilion is too
// close to MissColor and yellow vanishes on white.
var seriesColors = []color.NRGBA{
	{R: 0x00, G: 0x72, B: 0xB2, A: 0xFF}, // blue
	{R: 0xE6, G: 0x9F, B: 0x00, A: 0xFF}, // orange
	{R: 0x00, G: 0x9E, B: 0x73, A: 0xFF}, // bluish green
	{R: 0xCC, G: 0x79, B: 0xA7, A: 0xFF}, // reddish purple
	{R: 0x56, G: 0xB4, B: 0xE9, A: 0xFF}, // sky blue
	{R: 0x00, G: 0x00, B: 0x00, A: 0xFF}, // black
}

// ErrNoSamples is returned when there is nothing to draw or compare. A
// run in which every key press was missed still has a sidecar saying so;
// an empty plot would only suggest the latency was zero.
var ErrNoSamples = errors.New("no samples")

// Point is one latency sample.
type Point struct {
	// At is when the key press was sent, measured from the start of the
	// run, so that samples of several consoles share one time axis.
	At time.Duration
	// Value is the latency in seconds.
	Value float64
}

// Series is the samples of one console in one run.
type Series struct {
	// Label names the console in the legend and in benchmark names, e.g.
	// "c0". An empty label becomes "console N".
	Label string
	// Samples in the order they were taken.
	Samples []Point
	// Misses are the times (since the start of the run) of key presses
	// that got no draw. They are not samples: plotting them as a latency
	// would invent a number, so they are drawn as glyphs along the top.
	Misses []time.Duration
	// NoTimes says the samples carry no timestamps (for example, read
	// back from a CSV). The time series is then drawn against the sample
	// number, and Misses cannot be placed, so they are only counted.
	NoTimes bool
	// UnplacedMisses counts misses whose time is unknown. They appear in
	// the legend's count but not on the time axis.
	UnplacedMisses int
	// Breaks are times at which the series stopped and started again
	// (an A/B leg's blocks, with the other leg's blocks between them):
	// the line joining the samples is not drawn across them, so that no
	// straight line stands for a stretch in which this console was not
	// measured at all.
	Breaks []time.Duration
}

// ValuesSeries makes a Series from bare values, as read from a CSV whose
// sidecar gives only a count of misses.
func ValuesSeries(label string, seconds []float64, misses int) Series {
	s := Series{Label: label, NoTimes: true, UnplacedMisses: misses, Samples: make([]Point, len(seconds))}
	for i, v := range seconds {
		s.Samples[i] = Point{Value: v}
	}
	return s
}

// Values returns the sample values in seconds, in sample order.
func (s Series) Values() []float64 {
	out := make([]float64, len(s.Samples))
	for i, p := range s.Samples {
		out[i] = p.Value
	}
	return out
}

// MissCount is the number of misses, placed or not.
func (s Series) MissCount() int { return len(s.Misses) + s.UnplacedMisses }

// Mark is a percentile line drawn on the distribution panel.
type Mark struct {
	// Name is "p50", "p95" or "p99".
	Name string
	// Seconds is where the line is drawn.
	Seconds float64
}

// MissMark is a miss glyph drawn on the time-series panel.
type MissMark struct {
	// Series is the label of the console the miss belongs to.
	Series string
	// At is the time of the key press that got no draw.
	At time.Duration
}

// Figure is a built but not yet rendered plot: the two panels and the
// pieces tests and callers may want to inspect. Build it with Build and
// render it with Save, WritePNG or WriteSVG.
type Figure struct {
	// Timeline is the upper panel: milliseconds against seconds since the
	// start (or sample number), one colour per console, misses on top.
	Timeline *plot.Plot
	// Distribution is the lower panel: the empirical CDF of all samples
	// pooled, with p50, p95 and p99 lines.
	Distribution *plot.Plot
	// TimelineLegend and DistributionLegend are drawn in a column to
	// the right of their panels rather than inside them, so that a legend
	// never hides a sample or a miss.
	TimelineLegend, DistributionLegend plot.Legend
	// Summary describes the pooled samples, in seconds.
	Summary stats.Summary

	markLines  []namedLine
	missGlyphs []seriesScatter
	lines      []seriesLine
}

type seriesLine struct {
	label string
	line  *plotter.Line
}

// Segments returns, per series label, the runs of samples the timeline
// joins with a line, as drawn (x in seconds or sample number, y in ms).
func (f *Figure) Segments() map[string][]plotter.XYs {
	out := map[string][]plotter.XYs{}
	for _, l := range f.lines {
		out[l.label] = append(out[l.label], l.line.XYs)
	}
	return out
}

// segments splits a series' points where it has a break: no line is
// drawn from the last sample before a break to the first after it.
func segments(s Series, xys plotter.XYs, byIndex bool) []plotter.XYs {
	if byIndex || len(s.Breaks) == 0 {
		return []plotter.XYs{xys}
	}
	var out []plotter.XYs
	from := 0
	for j := 1; j < len(s.Samples); j++ {
		prev, cur := s.Samples[j-1].At, s.Samples[j].At
		if slices.ContainsFunc(s.Breaks, func(b time.Duration) bool { return b > prev && b <= cur }) {
			out = append(out, xys[from:j])
			from = j
		}
	}
	return append(out, xys[from:])
}

type namedLine struct {
	name string
	line *plotter.Line
}

type seriesScatter struct {
	label   string
	scatter *plotter.Scatter
}

// Marks returns the percentile lines as drawn: it reads the positions
// back from the plotters on the distribution panel rather than from the
// summary, so a test of it checks what ends up in the picture.
func (f *Figure) Marks() []Mark {
	out := make([]Mark, 0, len(f.markLines))
	for _, m := range f.markLines {
		out = append(out, Mark{Name: m.name, Seconds: m.line.XYs[0].X / 1000})
	}
	return out
}

// MissMarks returns the miss glyphs as drawn on the time-series panel, in
// series order. Misses that could not be placed (no times) are absent.
func (f *Figure) MissMarks() []MissMark {
	var out []MissMark
	for _, g := range f.missGlyphs {
		for _, xy := range g.scatter.XYs {
			out = append(out, MissMark{Series: g.label, At: time.Duration(math.Round(xy.X * float64(time.Second)))})
		}
	}
	return out
}

// Plot draws series into one image at path: the samples over time on top,
// the pooled distribution with p50/p95/p99 below. The format follows the
// extension (.png or .svg). Several series make the pooled plot of a
// multi-console run. The file is replaced atomically, so a reader never
// sees half an image.
func Plot(path, title string, series ...Series) error {
	f, err := BuildFigure(title, series...)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Save(path)
}

// Build lays out the figure for series without rendering it. It refuses
// non-finite values, negative times and an input without any sample.
func BuildFigure(title string, series ...Series) (*Figure, error) {
	if err := validate(series); err != nil {
		return nil, err
	}
	series = withLabels(series)
	var pooled []float64
	for _, s := range series {
		pooled = append(pooled, s.Values()...)
	}
	if len(pooled) == 0 {
		return nil, fmt.Errorf("build latency plot: %w in %d series", ErrNoSamples, len(series))
	}
	f := &Figure{Summary: stats.Summarize(pooled), TimelineLegend: newLegend(), DistributionLegend: newLegend()}
	var err error
	if f.Timeline, err = f.buildTimeline(title, series); err != nil {
		return nil, fmt.Errorf("build latency time series: %w", err)
	}
	if f.Distribution, err = f.buildDistribution(pooled, len(series)); err != nil {
		return nil, fmt.Errorf("build latency distribution: %w", err)
	}
	return f, nil
}

func validate(series []Series) error {
	if len(series) == 0 {
		return fmt.Errorf("build latency plot: %w: no series given", ErrNoSamples)
	}
	for i, s := range series {
		for j, p := range s.Samples {
			if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
				return fmt.Errorf("build latency plot: series %d (%q) sample %d: %v is not a finite number of seconds", i, s.Label, j, p.Value)
			}
			if p.At < 0 {
				return fmt.Errorf("build latency plot: series %d (%q) sample %d: negative time %v", i, s.Label, j, p.At)
			}
		}
		for j, m := range s.Misses {
			if m < 0 {
				return fmt.Errorf("build latency plot: series %d (%q) miss %d: negative time %v", i, s.Label, j, m)
			}
		}
		if s.UnplacedMisses < 0 {
			return fmt.Errorf("build latency plot: series %d (%q): negative miss count %d", i, s.Label, s.UnplacedMisses)
		}
	}
	return nil
}

func withLabels(series []Series) []Series {
	out := slices.Clone(series)
	for i := range out {
		if strings.TrimSpace(out[i].Label) == "" {
			out[i].Label = fmt.Sprintf("console %d", i)
		}
	}
	return out
}

// legendLabel names a series in the legend: a run of one console needs
// no console label ("c0" means nothing to a reader), several do.
func legendLabel(s Series, n int, counts string) string {
	if n == 1 {
		return counts
	}
	return s.Label + " (" + counts + ")"
}

func seriesColor(i int) color.Color { return seriesColors[i%len(seriesColors)] }

// seriesGlyphs tell apart series that share a colour: the palette has six
// colours, so the seventh console gets the first colour with another
// shape, and so on.
var seriesGlyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.SquareGlyph{}, draw.PlusGlyph{}, draw.CrossGlyph{}, draw.RingGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}}

func seriesGlyph(i int) draw.GlyphDrawer {
	return seriesGlyphs[(i/len(seriesColors))%len(seriesGlyphs)]
}

func (f *Figure) buildTimeline(title string, series []Series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "latency (ms)"
	lg := &f.TimelineLegend

	byIndex := slices.ContainsFunc(series, func(s Series) bool { return s.NoTimes })
	if byIndex {
		p.X.Label.Text = "sample number (sample times not recorded)"
	} else {
		p.X.Label.Text = "seconds since start"
	}

	maxMs, minMs := math.Inf(-1), 0.0
	for _, s := range series {
		for _, pt := range s.Samples {
			maxMs = max(maxMs, pt.Value*1000)
			minMs = min(minMs, pt.Value*1000)
		}
	}
	if math.IsInf(maxMs, -1) || maxMs <= 0 {
		maxMs = 1
	}
	// Misses sit just above the highest sample, one row per series so
	// that the misses of different consoles can be told apart.
	missY := func(i int) float64 { return maxMs * (1.06 + 0.03*float64(i)) }

	totalMisses, unplaced := 0, 0
	for i, s := range series {
		col := seriesColor(i)
		if len(s.Samples) > 0 {
			xys := make(plotter.XYs, len(s.Samples))
			for j, pt := range s.Samples {
				xys[j].X = pt.At.Seconds()
				if byIndex {
					xys[j].X = float64(j + 1)
				}
				xys[j].Y = pt.Value * 1000
			}
			points, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("series %q: %w", s.Label, err)
			}
			points.Color = col
			points.Shape = seriesGlyph(i)
			points.Radius = vg.Points(2)
			var first *plotter.Line
			for _, seg := range segments(s, xys, byIndex) {
				line, err := plotter.NewLine(seg)
				if err != nil {
					return nil, fmt.Errorf("series %q: %w", s.Label, err)
				}
				line.Color = col
				line.Width = vg.Points(0.6)
				p.Add(line)
				f.lines = append(f.lines, seriesLine{label: s.Label, line: line})
				if first == nil {
					first = line
				}
			}
			p.Add(points)
			thumbs := []plot.Thumbnailer{points}
			if first != nil {
				thumbs = []plot.Thumbnailer{first, points}
			}
			lg.Add(legendLabel(s, len(series), fmt.Sprintf("%d samples, %d misses", len(s.Samples), s.MissCount())), thumbs...)
		} else {
			lg.Add(legendLabel(s, len(series), fmt.Sprintf("no samples, %d misses", s.MissCount())))
		}
		totalMisses += s.MissCount()
		placeable := s.Misses
		if byIndex {
			unplaced += len(s.Misses)
			placeable = nil
		}
		unplaced += s.UnplacedMisses
		if len(placeable) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(placeable))
		for j, m := range placeable {
			xys[j].X = m.Seconds()
			xys[j].Y = missY(i)
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, fmt.Errorf("misses of series %q: %w", s.Label, err)
		}
		sc.Color = MissColor
		sc.Shape = draw.CrossGlyph{}
		sc.Radius = vg.Points(4)
		p.Add(sc)
		f.missGlyphs = append(f.missGlyphs, seriesScatter{label: s.Label, scatter: sc})
	}
	if len(f.missGlyphs) > 0 {
		lg.Add(fmt.Sprintf("no draw for key press (%d)", totalMisses-unplaced), f.missGlyphs[0].scatter)
	}
	if unplaced > 0 {
		lg.Add(fmt.Sprintf("%d of the misses have no time: not drawn", unplaced))
	}
	p.Y.Min = minMs
	p.Y.Max = missY(len(series)) + maxMs*0.02
	p.Add(plotter.NewGrid())
	return p, nil
}

func (f *Figure) buildDistribution(pooled []float64, nSeries int) (*plot.Plot, error) {
	p := plot.New()
	what := "distribution"
	if nSeries > 1 {
		what = fmt.Sprintf("distribution, pooled over %d consoles", nSeries)
	}
	p.Title.Text = fmt.Sprintf("%s (n=%d)", what, len(pooled))
	p.X.Label.Text = "latency (ms)"
	p.Y.Label.Text = "fraction of samples at or below"
	p.Y.Min, p.Y.Max = 0, 1.05

	sorted := slices.Clone(pooled)
	slices.Sort(sorted)
	n := float64(len(sorted))
	// An empirical CDF is a staircase: at each sample it rises by 1/n.
	cdf := make(plotter.XYs, 0, 2*len(sorted))
	for i, v := range sorted {
		ms := v * 1000
		cdf = append(cdf, plotter.XY{X: ms, Y: float64(i) / n}, plotter.XY{X: ms, Y: float64(i+1) / n})
	}
	line, err := plotter.NewLine(cdf)
	if err != nil {
		return nil, fmt.Errorf("cdf: %w", err)
	}
	line.Color = seriesColors[0]
	line.Width = vg.Points(1.5)
	p.Add(plotter.NewGrid(), line)
	f.DistributionLegend.Add("all samples (CDF)", line)

	marks := []struct {
		name   string
		value  float64
		color  color.Color
		dashes []vg.Length
		labelY float64
	}{
		{"p50", f.Summary.P50, color.NRGBA{A: 0xFF}, nil, 0.06},
		{"p95", f.Summary.P95, seriesColors[1], []vg.Length{vg.Points(6), vg.Points(3)}, 0.16},
		{"p99", f.Summary.P99, seriesColors[3], []vg.Length{vg.Points(2), vg.Points(2)}, 0.26},
	}
	labels := plotter.XYLabels{}
	for _, m := range marks {
		ms := m.value * 1000
		ml, err := plotter.NewLine(plotter.XYs{{X: ms, Y: 0}, {X: ms, Y: 1}})
		if err != nil {
			return nil, fmt.Errorf("%s line: %w", m.name, err)
		}
		ml.Color = m.color
		ml.Width = vg.Points(1.2)
		ml.Dashes = m.dashes
		p.Add(ml)
		f.DistributionLegend.Add(fmt.Sprintf("%s %.2f ms", m.name, ms), ml)
		f.markLines = append(f.markLines, namedLine{name: m.name, line: ml})
		labels.XYs = append(labels.XYs, plotter.XY{X: ms, Y: m.labelY})
		labels.Labels = append(labels.Labels, m.name)
	}
	lab, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("percentile labels: %w", err)
	}
	lab.Offset = vg.Point{X: vg.Points(3)}
	for i := range lab.TextStyle {
		lab.TextStyle[i].XAlign = text.XLeft
	}
	p.Add(lab)
	return p, nil
}

// legendWidth is the column right of the panels that holds their
// legends.
const legendWidth = 2.4 * vg.Inch

func newLegend() plot.Legend {
	lg := plot.NewLegend()
	lg.Top, lg.Left = true, true
	lg.TextStyle.Font.Size = vg.Points(10)
	return lg
}

// draw renders both panels, one above the other, onto c, each with its
// legend to its right.
func (f *Figure) draw(c draw.Canvas) {
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(6), PadY: vg.Points(18)}
	plots := [][]*plot.Plot{{f.Timeline}, {f.Distribution}}
	canvases := plot.Align(plots, tiles, draw.Crop(c, 0, -legendWidth, 0, 0))
	for i, lg := range []*plot.Legend{&f.TimelineLegend, &f.DistributionLegend} {
		tile := canvases[i][0]
		plots[i][0].Draw(tile)
		// Start below the panel's title so the legend lines up with
		// the data.
		col := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: tile.Max.X + vg.Points(6), Y: tile.Min.Y},
			Max: vg.Point{X: c.Max.X, Y: tile.Max.Y - vg.Points(24)},
		}}
		lg.Draw(col)
	}
}

// newCanvas is a white FigureWidth x FigureHeight canvas at FigureDPI, the
// size of every PNG figure here.
func newCanvas() *vgimg.Canvas {
	return vgimg.NewWith(vgimg.UseWH(FigureWidth, FigureHeight), vgimg.UseDPI(FigureDPI), vgimg.UseBackgroundColor(color.White))
}

// encodePNG writes c as a PNG at zlib's fastest level. A chart is mostly
// flat colour, so the file grows a little while the encoding, which was
// most of a run's CPU for its results, takes a fraction of the time.
func encodePNG(w io.Writer, c *vgimg.Canvas) error {
	return (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(w, c.Image())
}

// WritePNG renders the figure as a FigureWidth x FigureHeight PNG at
// FigureDPI.
func (f *Figure) WritePNG(w io.Writer) error {
	img := newCanvas()
	f.draw(draw.New(img))
	if err := encodePNG(w, img); err != nil {
		return fmt.Errorf("encode latency plot as PNG: %w", err)
	}
	return nil
}

// WriteSVG renders the figure as SVG, for documents that scale it.
func (f *Figure) WriteSVG(w io.Writer) error {
	img := vgsvg.New(FigureWidth, FigureHeight)
	f.draw(draw.New(img))
	if _, err := img.WriteTo(w); err != nil {
		return fmt.Errorf("encode latency plot as SVG: %w", err)
	}
	return nil
}

// Save renders the figure to path, as PNG or SVG after its extension,
// through a temporary file renamed into place.
func (f *Figure) Save(path string) error {
	var render func(io.Writer) error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		render = f.WritePNG
	case ".svg":
		render = f.WriteSVG
	default:
		return fmt.Errorf("save latency plot %s: unknown image format %q (want .png or .svg)", path, filepath.Ext(path))
	}
	return writeAtomic(path, render)
}

func writeAtomic(path string, render func(io.Writer) error) error {
	if err := atomicfile.Write(path, 0o644, render); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
