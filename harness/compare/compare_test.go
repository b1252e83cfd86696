package compare

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modelledRun returns n samples around centreMs with normal noise of
// sdMs, from a fixed seed so every run of the test sees the same data.
func modelledRun(tb testing.TB, seed uint64, label string, centreMs, sdMs float64, n int) results.BenchRun {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	samples := make([]float64, n)
	for i := range samples {
		samples[i] = (centreMs + r.NormFloat64()*sdMs) / 1000
	}
	return results.BenchRun{
		Source:   label + ".bench.txt",
		Info:     results.BenchInfo{RunID: label, Metric: "keypress_to_screen", Provider: label},
		Consoles: []results.BenchConsole{{Label: "c0", Samples: samples}},
	}
}

func TestCompareDetectsModelledDelay(t *testing.T) {
	direct := modelledRun(t, 1, "direct", 20, 1, 30)
	kerbside := modelledRun(t, 2, "kerbside", 35, 1, 30)

	tests := []struct {
		name     string
		old, new results.BenchRun
		wantDiff float64 // ms
		wantWord string
	}{
		{"through the proxy is slower", direct, kerbside, 15, "NEW is slower"},
		{"direct is faster", kerbside, direct, -15, "NEW is faster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Runs(tc.old, tc.new, DefaultAlpha)
			require.NoError(t, err)
			assert.True(t, c.Significant)
			assert.Less(t, c.P, 0.001)
			// The medians of 30 samples with 1 ms noise lie well
			// within 1 ms of the modelled centres.
			assert.InDelta(t, tc.wantDiff, c.Difference()*1000, 1)
			assert.Equal(t, 30, c.Old.N)
			assert.Equal(t, 30, c.New.N)
			assert.Less(t, c.Old.Lo, c.Old.Median)
			assert.Greater(t, c.Old.Hi, c.Old.Median)
			assert.GreaterOrEqual(t, c.Old.Confidence, Confidence)
			assert.Empty(t, c.Warnings)

			line := c.SummaryLine()
			assert.Contains(t, line, "significant difference (alpha 0.05)")
			assert.NotContains(t, line, "no significant")
			assert.Contains(t, line, tc.wantWord)
			assert.Contains(t, line, "p<0.001 n=30+30")
			sign := "+"
			if tc.wantDiff < 0 {
				sign = "-"
			}
			assert.Contains(t, line, "difference "+sign+"1", "the difference is printed in ms with its sign")

			var table bytes.Buffer
			require.NoError(t, c.WriteTable(&table, "OLD", "NEW"))
			assert.Contains(t, table.String(), "sec/op")
			assert.Contains(t, table.String(), "(p=0.000 n=30)")
			assert.Contains(t, table.String(), sign, "benchstat's delta column shows a percentage")
			assert.NotContains(t, table.String(), " ~ ")
		})
	}
}

func TestCompareIdenticalRunsShowNoDifference(t *testing.T) {
	a := modelledRun(t, 7, "a", 20, 1, 30)
	b := modelledRun(t, 7, "b", 20, 1, 30)
	c, err := Runs(a, b, DefaultAlpha)
	require.NoError(t, err)
	assert.False(t, c.Significant)
	assert.InDelta(t, 1.0, c.P, 1e-9)
	assert.Zero(t, c.Difference())
	assert.Contains(t, c.SummaryLine(), "no significant difference (alpha 0.05)")
	assert.Contains(t, c.SummaryLine(), "difference +0.00 ms")

	var table bytes.Buffer
	require.NoError(t, c.WriteTable(&table, "a", "b"))
	assert.Contains(t, table.String(), "~", "benchstat prints ~ for no significant change")
}

func TestCompareSameDistributionIsNotSignificant(t *testing.T) {
	// Different draws from one distribution. At alpha 0.05 about one
	// pair of seeds in 20 shows a "significant" difference (checked: 20
	// of 400 pairs), so this pins a pair that does not; it shows that
	// noise alone is not reported, not that it never could be.
	c, err := Runs(modelledRun(t, 2, "a", 20, 1, 30), modelledRun(t, 3, "b", 20, 1, 30), DefaultAlpha)
	require.NoError(t, err)
	assert.False(t, c.Significant, "p=%v", c.P)
}

func TestCompareRowsPerConsoleAndPooled(t *testing.T) {
	old := results.BenchRun{Source: "old", Info: results.BenchInfo{Metric: "k"}, Consoles: []results.BenchConsole{
		{Label: "c0", Samples: []float64{0.020, 0.021, 0.022, 0.019, 0.020, 0.021}},
		{Label: "c1", Samples: []float64{0.030, 0.031}},
	}}
	new := results.BenchRun{Source: "new", Consoles: []results.BenchConsole{ // metric unknown: allowed
		{Label: "c0", Samples: []float64{0.025, 0.026, 0.024, 0.025, 0.026, 0.027}},
		{Label: "c2", Samples: []float64{0.040}},
	}}
	c, err := Runs(old, new, DefaultAlpha)
	require.NoError(t, err)
	var labels []string
	for _, r := range c.Rows {
		labels = append(labels, r.Label)
	}
	assert.Equal(t, []string{"c0", "c1", "c2", PooledLabel}, labels)
	assert.Equal(t, 8, c.Old.N)
	assert.Equal(t, 7, c.New.N)

	var table bytes.Buffer
	require.NoError(t, c.WriteTable(&table, "old", "new"))
	lines := strings.Split(strings.TrimRight(table.String(), "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 6)
	assert.True(t, strings.HasPrefix(lines[3], "c1"))
	assert.Contains(t, lines[3], "-", "c1 has no NEW samples")
	// Too few samples for an interval: benchmath's note is a footnote.
	assert.Contains(t, table.String(), "need >= 6 samples for confidence interval at level 0.95")
	assert.Contains(t, table.String(), "∞")
}

func TestCompareSingleConsoleHasNoPooledRow(t *testing.T) {
	c, err := Runs(modelledRun(t, 1, "a", 20, 1, 10), modelledRun(t, 2, "b", 20, 1, 10), DefaultAlpha)
	require.NoError(t, err)
	require.Len(t, c.Rows, 1)
	assert.Equal(t, "c0", c.Rows[0].Label)
}

func TestCompareTooFewSamplesSaysSo(t *testing.T) {
	c, err := Runs(modelledRun(t, 1, "a", 20, 1, 2), modelledRun(t, 2, "b", 40, 1, 2), DefaultAlpha)
	require.NoError(t, err)
	assert.False(t, c.Significant, "two samples each cannot show a difference at 0.05")
	assert.Contains(t, c.SummaryLine(), "unknown (too few samples)")
	require.NotEmpty(t, c.Warnings)
	assert.Contains(t, c.Warnings[0], "samples to detect a difference")
}

func TestCompareRefusesBadInput(t *testing.T) {
	good := modelledRun(t, 1, "a", 20, 1, 10)
	other := good
	other.Info.Metric = "ping_interval"
	empty := results.BenchRun{Source: "empty.csv", Consoles: []results.BenchConsole{{Label: "all"}}}
	tests := []struct {
		name     string
		old, new results.BenchRun
		alpha    float64
		msg      string
	}{
		{"empty old", empty, good, DefaultAlpha, "OLD (empty.csv): no samples"},
		{"empty new", good, results.BenchRun{Source: "none"}, DefaultAlpha, "NEW (none): no samples"},
		{"different metrics", good, other, DefaultAlpha, "different metrics"},
		{"alpha zero", good, good, 0, "alpha"},
		{"alpha one", good, good, 1, "alpha"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Runs(tc.old, tc.new, tc.alpha)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestCompareLeavesInputOrder(t *testing.T) {
	run := results.BenchRun{Consoles: []results.BenchConsole{{Label: "c0", Samples: []float64{3, 1, 2}}}}
	_, err := Runs(run, run, DefaultAlpha)
	require.NoError(t, err)
	assert.Equal(t, []float64{3, 1, 2}, run.Consoles[0].Samples)
}

func BenchmarkCompare(b *testing.B) {
	old := modelledRun(b, 1, "a", 20, 1, 300)
	new := modelledRun(b, 2, "b", 35, 1, 300)
	for b.Loop() {
		if _, err := Runs(old, new, DefaultAlpha); err != nil {
			b.Fatal(err)
		}
	}
}
