package results

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestABPlotMarksTheThresholdAndTheInterval(t *testing.T) {
	ab := AB{RunID: "r1", MaxAddedS: 0.010, Verdict: ABInconclusive, Metrics: []ABMetric{
		{Metric: "keypress_to_screen", AMedianS: 0.020, BMedianS: 0.021, DifferenceS: 0.001, DifferenceCIS: [2]float64{-0.004, 0.006}, Outcome: "pass"},
		{Metric: "keypress_to_repaint", AMedianS: 0.030, BMedianS: 0.032, DifferenceS: 0.002, DifferenceCIS: [2]float64{-0.010, 0.015}, Outcome: "inconclusive"},
	}}
	a := map[string][]float64{"keypress_to_screen": {0.019, 0.020, 0.021}, "keypress_to_repaint": {0.029, 0.030, 0.031}}
	b := map[string][]float64{"keypress_to_screen": {0.020, 0.021, 0.022}, "keypress_to_repaint": {0.031, 0.032, 0.033}}
	f, err := BuildABFigure(ab, a, b)
	require.NoError(t, err)
	require.Len(t, f.Panels, 2, "one panel per keypress figure")
	marks := f.Marks()
	assert.InDelta(t, 30.0, marks[0].Threshold, 1e-9, "A's median 20 ms + 10 ms")
	assert.InDelta(t, 16.0, marks[0].CILo, 1e-9)
	assert.InDelta(t, 26.0, marks[0].CIHi, 1e-9)
	assert.InDelta(t, 40.0, marks[1].Threshold, 1e-9)
	assert.InDelta(t, 45.0, marks[1].CIHi, 1e-9, "the interval reaches past the threshold: inconclusive")
	assert.Contains(t, f.Panels[0].Title.Text, "INCONCLUSIVE")

	path := filepath.Join(t.TempDir(), ABPlotName("r1"))
	require.NoError(t, WriteABPlot(path, ab, a, b))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(raw))
	require.NoError(t, err)
	assert.Equal(t, 960, img.Bounds().Dx())

	_, err = BuildABFigure(ab, nil, nil)
	assert.ErrorIs(t, err, ErrNoSamples)
}
