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

// overloadedLoad is sampleLoad with its 16-session step overloaded (the
// measured console stalled in its first block) and a 32-session step
// above it not run.
func overloadedLoad() Load {
	l := sampleLoad()
	s := &l.Steps[2]
	s.Above, s.P95AddedS, s.P95AddedCIS = false, 0, [2]float64{}
	s.Repaint.Samples, s.Blocks = 7, 1
	s.Failure, s.FailureError, s.Overloaded, s.NotRun = "the measured console stalled (block 3)", "block 3, 16 busy sessions: stall: press 8 got no draw for 4.8s", true, true
	l.Steps = append(l.Steps, LoadStep{Sessions: 32, NotRun: true})
	over := 16
	l.Knee, l.Overloaded, l.Verdict = nil, &over, "overloaded"
	l.Order = []int{0, 8, 16, 8, 0}
	l.Reasons = []string{"overloaded at 16 sessions: the measured console stalled (block 3): the proxy could not carry them"}
	return l
}

func TestLoadRecordsAnOverloadedStep(t *testing.T) {
	l := overloadedLoad()
	path := filepath.Join(t.TempDir(), LoadName("r1"))
	require.NoError(t, WriteLoad(path, l))
	got, err := ReadLoad(path)
	require.NoError(t, err)
	l.FormatVersion = LoadFormatVersion
	assert.Equal(t, l, got, "the record round-trips")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"overloaded": 16`)
	assert.Contains(t, string(raw), `"failure": "the measured console stalled (block 3)"`)
	assert.Contains(t, string(raw), `"not_run": true`)

	var b bytes.Buffer
	require.NoError(t, WriteLoadTable(&b, l))
	out := b.String()
	assert.Regexp(t, `(?m)^16 +7 .* OVERLOADED `, out)
	assert.Regexp(t, `(?m)^32 +0 .* not run `, out)
	assert.Regexp(t, `(?m)^16 sessions +overloaded: the measured console stalled \(block 3\)$`, out)
	assert.Regexp(t, `(?m)^knee +at or below 16 sessions`, out)
	assert.Contains(t, out, "ramp verdict  overloaded: ")

	c, err := BuildLoadCurve(l)
	require.NoError(t, err)
	assert.Equal(t, 16, c.Marks.Failed)
	assert.True(t, c.Marks.Overloaded)
	assert.Len(t, c.Marks.Lines["repaint p95"], 2, "the overloaded step's few samples are no figure of it")
	assert.GreaterOrEqual(t, c.Plot.X.Max, 16.0, "the overloaded step is on the curve")
	assert.Contains(t, c.Plot.Title.Text, "overloaded")
	require.NoError(t, WriteLoadPlot(filepath.Join(t.TempDir(), LoadPlotName("r1")), l))

	t.Run("a step above it that ran in full is not judged", func(t *testing.T) {
		l := overloadedLoad()
		l.Steps[3] = LoadStep{Sessions: 32, Blocks: 2, Repaint: LoadFigure{Samples: 40, P95S: 0.03}}
		var b bytes.Buffer
		require.NoError(t, WriteLoadTable(&b, l))
		assert.Regexp(t, `(?m)^32 +40 .* not judged \(above a failed step\) `, b.String())
		c, err := BuildLoadCurve(l)
		require.NoError(t, err)
		assert.Len(t, c.Marks.Lines["repaint p95"], 2)
	})
	t.Run("on a saturated host", func(t *testing.T) {
		l := overloadedLoad()
		l.Steps[2].Overloaded, l.Steps[2].Saturated = false, "everything but the proxy took 1.90 of 2 cores"
		l.Overloaded, l.Verdict = nil, "host-bound"
		var b bytes.Buffer
		require.NoError(t, WriteLoadTable(&b, l))
		assert.Contains(t, b.String(), "failed on a saturated host (host-bound, not the proxy)")
		assert.NotContains(t, b.String(), "OVERLOADED")
		c, err := BuildLoadCurve(l)
		require.NoError(t, err)
		assert.Equal(t, 16, c.Marks.Failed)
		assert.False(t, c.Marks.Overloaded)
	})
}

// A format 1 record, written before a step could be overloaded, still
// reads: as one without an overloaded step.
func TestLoadReadsFormatOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), LoadName("old"))
	require.NoError(t, os.WriteFile(path, []byte(`{"format_version": 1, "run_id": "old", "source": "synthetic",
  "steps": [{"sessions": 0, "keypress_to_repaint": {"samples": 20, "p95_s": 0.03}}, {"sessions": 8, "above": true}],
  "knee": 8, "verdict": "knee", "fails": false, "sidecar": "latency-old.json"}`), 0o644))
	l, err := ReadLoad(path)
	require.NoError(t, err)
	assert.Equal(t, 1, l.FormatVersion)
	require.NotNil(t, l.Knee)
	assert.Equal(t, 8, *l.Knee)
	assert.Nil(t, l.Overloaded)
	for _, s := range l.Steps {
		assert.Empty(t, s.Failure)
		assert.False(t, s.Overloaded || s.NotRun)
	}
}
