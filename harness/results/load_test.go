package results

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleLoad() Load {
	knee := 16
	fig := func(p50, p95 float64) LoadFigure {
		return LoadFigure{Samples: 40, P50S: p50, P95S: p95, P99S: p95 + 0.002,
			P50CIS: [2]float64{p50 - 0.001, p50 + 0.001}, P95CIS: [2]float64{p95 - 0.002, p95 + 0.003}, P99CIS: [2]float64{p95, p95 + 0.004}}
	}
	return Load{RunID: "r1", Console: "qemu guest through proxy nodelay", Source: "synthetic", Activity: "video", RateBitsPerS: 1_000_000,
		Proxy: "nodelay", Rounds: 2, SamplesPerStep: 40, Order: []int{0, 8, 16, 16, 8, 0}, MaxAddedS: 0.010, Confidence: 0.95, Cores: 2,
		Steps: []LoadStep{
			{Sessions: 0, Blocks: 2, FirstDraw: fig(0.015, 0.020), Repaint: fig(0.020, 0.025), BytesPerS: 0,
				CPU: []LoadCPU{{Role: "proxy", CPUS: 0.1, CoreShare: 0.01}, {Role: "qemu", CPUS: 4, CoreShare: 0.4}}},
			{Sessions: 8, Blocks: 2, FirstDraw: fig(0.016, 0.021), Repaint: fig(0.021, 0.027), P95AddedS: 0.002, P95AddedCIS: [2]float64{-0.002, 0.006}, Within: true, BytesPerS: 1e6},
			{Sessions: 16, Blocks: 2, FirstDraw: fig(0.030, 0.050), Repaint: fig(0.040, 0.060), P95AddedS: 0.035, P95AddedCIS: [2]float64{0.020, 0.045}, Above: true, BytesPerS: 2e6, Misses: 1},
		},
		Knee: &knee, Verdict: "knee", Reasons: []string{"knee at 16 sessions: ..."}, Sidecar: SidecarName("r1")}
}

func TestLoadRoundTripsAndNamesItsFields(t *testing.T) {
	l := sampleLoad()
	path := filepath.Join(t.TempDir(), LoadName("r1"))
	require.NoError(t, WriteLoad(path, l))
	got, err := ReadLoad(path)
	require.NoError(t, err)
	assert.Equal(t, LoadFormatVersion, got.FormatVersion)
	l.FormatVersion = LoadFormatVersion
	assert.Equal(t, l, got)

	// The field names other tools read.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	for _, k := range []string{"steps", "knee", "verdict", "max_added_s", "proxy", "source", "cores", "order"} {
		assert.Contains(t, m, k)
	}
	step := m["steps"].([]any)[2].(map[string]any)
	for _, k := range []string{"sessions", "keypress_to_screen", "keypress_to_repaint", "misses", "suspects", "bytes_per_s", "cpu", "p95_added_ci_s", "above"} {
		assert.Contains(t, step, k)
	}
	assert.Contains(t, step["keypress_to_repaint"], "p95_ci_s")

	l.Knee = nil
	require.NoError(t, WriteLoad(path, l))
	raw, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"knee": null`, "no knee is said, not left out")

	require.NoError(t, os.WriteFile(path, []byte(`{"format_version": 9}`), 0o644))
	_, err = ReadLoad(path)
	assert.ErrorContains(t, err, "format_version 9")
}

func TestLoadTable(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteLoadTable(&b, sampleLoad()))
	out := b.String()
	assert.Contains(t, out, "baseline")
	assert.Contains(t, out, "+35.0 [+20.0, +45.0]")
	assert.Regexp(t, `(?m)^knee +16 sessions$`, out)
	assert.Contains(t, out, "ramp verdict")
	assert.Contains(t, out, "1mbit each")
	assert.Contains(t, out, "proxy 0.01, qemu 0.40")
}

func TestLoadCurveMarksTheThresholdAndTheKnee(t *testing.T) {
	l := sampleLoad()
	c, err := BuildLoadCurve(l)
	require.NoError(t, err)
	assert.InDelta(t, 35.0, c.Marks.Threshold, 1e-9, "baseline repaint p95 25 ms + 10 ms")
	assert.Equal(t, 16, c.Marks.Knee)
	require.Len(t, c.Marks.Lines, 4, "both figures' p50 and p95")
	rp95 := c.Marks.Lines["repaint p95"]
	require.Len(t, rp95, 3)
	assert.Equal(t, 16.0, rp95[2].X)
	assert.InDelta(t, 60.0, rp95[2].Y, 1e-9)
	assert.Contains(t, c.Plot.Title.Text, "knee")

	path := filepath.Join(t.TempDir(), LoadPlotName("r1"))
	require.NoError(t, WriteLoadPlot(path, l))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(raw))
	require.NoError(t, err)
	assert.Equal(t, 960, img.Bounds().Dx())

	l.Knee = nil
	c, err = BuildLoadCurve(l)
	require.NoError(t, err)
	assert.Equal(t, -1, c.Marks.Knee)

	l.Lane = "simulated"
	c, err = BuildLoadCurve(l)
	require.NoError(t, err)
	assert.Contains(t, c.Plot.Title.Text, "SIMULATED")

	_, err = BuildLoadCurve(Load{RunID: "r2", Steps: []LoadStep{{Sessions: 0}}})
	assert.ErrorIs(t, err, ErrNoSamples)
}
