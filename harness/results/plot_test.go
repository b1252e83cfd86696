package results

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// msSeries returns a series with one sample per millisecond value, one
// second apart, starting at 1 s.
func msSeries(tb testing.TB, label string, values ...float64) Series {
	tb.Helper()
	s := Series{Label: label}
	for i, v := range values {
		s.Samples = append(s.Samples, Point{At: time.Duration(i+1) * time.Second, Value: v / 1000})
	}
	return s
}

func oneToHundred() []float64 {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i) // descending: Build must not rely on order
	}
	return v
}

func TestBuildMarksArePercentiles(t *testing.T) {
	tests := []struct {
		name   string
		series []Series
		// Expected p50, p95, p99 in ms, worked out by hand with linear
		// interpolation between closest ranks.
		want [3]float64
	}{
		{
			name:   "1 to 100 ms",
			series: []Series{msSeries(t, "c0", oneToHundred()...)},
			want:   [3]float64{50.5, 95.05, 99.01},
		},
		{
			name:   "single sample",
			series: []Series{msSeries(t, "c0", 42)},
			want:   [3]float64{42, 42, 42},
		},
		{
			name: "pooled over two consoles",
			series: []Series{
				msSeries(t, "c0", 10, 30),
				msSeries(t, "c1", 20, 40, 50),
			},
			// sorted 10 20 30 40 50: p50 at rank 2, p95 at 3.8, p99 at 3.96
			want: [3]float64{30, 48, 49.6},
		},
		{
			name:   "times unknown",
			series: []Series{ValuesSeries("all", []float64{0.004, 0.002}, 3)},
			want:   [3]float64{3, 3.9, 3.98},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := BuildFigure("test", tc.series...)
			require.NoError(t, err)
			marks := f.Marks()
			require.Len(t, marks, 3)
			for i, name := range []string{"p50", "p95", "p99"} {
				assert.Equal(t, name, marks[i].Name)
				assert.InDelta(t, tc.want[i], marks[i].Seconds*1000, 1e-9, name)
			}
			n := 0
			for _, s := range tc.series {
				n += len(s.Samples)
			}
			assert.Equal(t, n, f.Summary.Count)
		})
	}
}

func TestBuildMarksEveryPlacedMiss(t *testing.T) {
	c0 := msSeries(t, "c0", 20, 21, 19)
	c0.Misses = []time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond}
	c1 := msSeries(t, "c1", 22, 23)
	c1.Misses = []time.Duration{4 * time.Second}
	c1.UnplacedMisses = 2 // counted, never drawn
	c2 := msSeries(t, "c2", 25)

	f, err := BuildFigure("three consoles", c0, c1, c2)
	require.NoError(t, err)
	assert.Equal(t, []MissMark{
		{Series: "c0", At: 1500 * time.Millisecond},
		{Series: "c0", At: 2500 * time.Millisecond},
		{Series: "c1", At: 4 * time.Second},
	}, f.MissMarks())
	assert.Equal(t, 6, f.Summary.Count)
}

func TestBuildWithoutTimesPlacesNoMiss(t *testing.T) {
	timed := msSeries(t, "c0", 20)
	timed.Misses = []time.Duration{time.Second}
	// One series without times puts the whole panel on a sample-number
	// axis, where a miss time has no place.
	f, err := BuildFigure("mixed", timed, ValuesSeries("c1", []float64{0.02}, 1))
	require.NoError(t, err)
	assert.Empty(t, f.MissMarks())
	assert.Contains(t, f.Timeline.X.Label.Text, "sample number")
}

func TestBuildRefusesBadInput(t *testing.T) {
	tests := []struct {
		name      string
		series    []Series
		noSamples bool
		msg       string
	}{
		{name: "no series", series: nil, noSamples: true},
		{name: "only misses", series: []Series{{Label: "c0", Misses: []time.Duration{time.Second}}}, noSamples: true},
		{name: "NaN", series: []Series{{Samples: []Point{{Value: math.NaN()}}}}, msg: "not a finite"},
		{name: "infinite", series: []Series{{Samples: []Point{{Value: math.Inf(1)}}}}, msg: "not a finite"},
		{name: "negative time", series: []Series{{Samples: []Point{{At: -time.Second, Value: 0.01}}}}, msg: "negative time"},
		{name: "negative miss time", series: []Series{{Samples: []Point{{Value: 0.01}}, Misses: []time.Duration{-1}}}, msg: "negative time"},
		{name: "negative miss count", series: []Series{{Samples: []Point{{Value: 0.01}}, UnplacedMisses: -1}}, msg: "negative miss count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildFigure("bad", tc.series...)
			require.Error(t, err)
			if tc.noSamples {
				assert.ErrorIs(t, err, ErrNoSamples)
			} else {
				assert.Contains(t, err.Error(), tc.msg)
			}
		})
	}
}

// missPixels counts pixels close to MissColor. Anti-aliasing blends edges
// with the background, so "close" means clearly red, not exactly red.
func missPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 > 200 && g>>8 < 60 && bl>>8 < 60 {
				n++
			}
		}
	}
	return n
}

func TestPlotWritesPNG(t *testing.T) {
	withMisses := msSeries(t, "c0", oneToHundred()...)
	withMisses.Misses = []time.Duration{10 * time.Second, 50 * time.Second}
	tests := []struct {
		name       string
		series     []Series
		wantMisses bool
	}{
		{name: "with misses", series: []Series{withMisses}, wantMisses: true},
		{name: "without misses", series: []Series{msSeries(t, "c0", oneToHundred()...)}},
		{name: "pooled", series: []Series{withMisses, msSeries(t, "c1", 30, 31, 29), ValuesSeries("c2", []float64{0.05}, 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "latency-run.png")
			require.NoError(t, Plot(path, "keypress to screen, run "+tc.name, tc.series...))
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			img, err := png.Decode(bytes.NewReader(raw))
			require.NoError(t, err, "the file must be a valid PNG")
			want := image.Rect(0, 0, 960, 768) // 10 x 8 inches at 96 dpi
			assert.Equal(t, want, img.Bounds())
			if tc.wantMisses {
				assert.Positive(t, missPixels(img), "miss glyphs must be drawn in MissColor")
			} else {
				assert.Zero(t, missPixels(img), "nothing but a miss may be drawn in MissColor")
			}
			leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
			require.NoError(t, err)
			assert.Empty(t, leftovers, "the temporary file must be renamed away")
		})
	}
}

func TestPlotWritesSVG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latency-run.svg")
	require.NoError(t, Plot(path, "svg", msSeries(t, "c0", 1, 2, 3)))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(raw), "<svg")
}

func TestPlotRefusesUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	err := Plot(filepath.Join(dir, "latency-run.gif"), "gif", msSeries(t, "c0", 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown image format")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "a refused plot leaves no file")
}

func BenchmarkPlotPNG(b *testing.B) {
	s := msSeries(b, "c0", oneToHundred()...)
	s.Misses = []time.Duration{time.Second}
	f, err := BuildFigure("bench", s)
	require.NoError(b, err)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := f.WritePNG(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "png-bytes")
}

func TestSeriesBeyondThePaletteDifferInShape(t *testing.T) {
	n := len(seriesColors)
	assert.Equal(t, seriesColor(0), seriesColor(n), "the palette repeats")
	assert.NotEqual(t, seriesGlyph(0), seriesGlyph(n), "so the shape changes")
	assert.Equal(t, seriesGlyph(0), seriesGlyph(n-1))
}

func TestLegendNamesConsolesOnlyWhenThereAreSeveral(t *testing.T) {
	assert.Equal(t, "3 samples, 0 misses", legendLabel(Series{Label: "c0"}, 1, "3 samples, 0 misses"))
	assert.Equal(t, "c1 (3 samples, 0 misses)", legendLabel(Series{Label: "c1"}, 2, "3 samples, 0 misses"))
}

// TestTimelineDoesNotJoinAcrossBreaks: an A/B leg measured from 1 to 3 s
// and again from 21 to 23 s (the other leg between) is drawn as two
// lines, not one with a straight stretch across 3..21 s.
func TestTimelineDoesNotJoinAcrossBreaks(t *testing.T) {
	s := Series{Label: "c0"}
	for _, at := range []int{1, 2, 3, 21, 22, 23} {
		s.Samples = append(s.Samples, Point{At: time.Duration(at) * time.Second, Value: 0.02})
	}
	f, err := BuildFigure("joined", s)
	require.NoError(t, err)
	require.Len(t, f.Segments()["c0"], 1, "without breaks the samples are one line")

	s.Breaks = []time.Duration{20 * time.Second}
	f, err = BuildFigure("leg", s)
	require.NoError(t, err)
	segs := f.Segments()["c0"]
	require.Len(t, segs, 2, "a break splits the line")
	assert.Equal(t, 3.0, segs[0][len(segs[0])-1].X, "the first block's line ends at its last sample")
	assert.Equal(t, 21.0, segs[1][0].X, "the second block's line starts at its first sample")
	var buf bytes.Buffer
	require.NoError(t, f.WritePNG(&buf))
}
