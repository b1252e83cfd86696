package results

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/host"
)

func busyFigures() host.Figures {
	return host.Figures{Cores: 2, Reads: 40, RunnableMean: 6.2, RunnableMax: 9, Load1Max: 8.1,
		Lag: host.Lag{Ticks: 1000, P50S: 0.0004, P99S: 0.011, MaxS: 0.060, Late: 30},
		CPU: []host.ProcessCPU{{Role: "harness", Pid: 1, CPUS: 0.5, CoreShare: 0.05}}}
}

// TestHostRecordInSidecarAndSummary: the host figures, per block and
// pooled, reach the sidecar and the summary, and a busy host says why.
func TestHostRecordInSidecarAndSummary(t *testing.T) {
	quiet := host.Figures{Cores: 2, Reads: 40, RunnableMean: 1.1, Lag: host.Lag{Ticks: 1000, P50S: 0.0001, P99S: 0.0009, MaxS: 0.002}}
	rec := NewHostRecord(NewHostBlock(1, quiet, 10, nil, 0.001), NewHostBlock(2, busyFigures(), 10, []int{13, 14, 15}, 0.004))
	require.NotNil(t, rec)
	assert.Len(t, rec.Blocks, 2)
	assert.Empty(t, rec.Blocks[0].BusyReasons)
	assert.Len(t, rec.Blocks[1].BusyReasons, 3, "lag, runnable and the late share: %v", rec.Blocks[1].BusyReasons)
	assert.Equal(t, 20, rec.Samples)
	assert.Equal(t, 3, rec.LateSamples)
	assert.Equal(t, []int{13, 14, 15}, rec.LatePresses)
	assert.InDelta(t, 0.004, rec.MaxDrawLagS, 1e-12)
	assert.NotEmpty(t, rec.BusyReasons, "one busy block keeps the leg busy")
	assert.Nil(t, NewHostRecord())

	path := filepath.Join(t.TempDir(), SidecarName("h1"))
	require.NoError(t, WriteSidecar(path, Sidecar{RunID: "h1", Metric: "keypress_to_screen", Host: rec}))
	back, err := ReadSidecar(path)
	require.NoError(t, err)
	require.NotNil(t, back.Host)
	assert.InDelta(t, 0.011, back.Host.Lag.P99S, 1e-12)
	assert.Len(t, back.Host.Blocks, 2)
	assert.Equal(t, 3, back.Host.LateSamples)
	assert.Equal(t, rec.BusyReasons, back.Host.BusyReasons)

	var out bytes.Buffer
	back.RunID, back.ABVerdict = "run7-b", ABInconclusive
	require.NoError(t, WriteSummary(&out, back))
	assert.Contains(t, out.String(), "inconclusive (see latency-run7-ab.json)")
	assert.Contains(t, out.String(), "lag p50/p99/max")
	assert.Contains(t, out.String(), "3 of 20 taken while the harness was more than 5ms late")
	assert.Contains(t, out.String(), "host too busy")
}

func TestABTableShowsTheHostAndTheOutcome(t *testing.T) {
	ab := AB{RunID: "r", MaxAddedS: 0.01, Verdict: ABInconclusive,
		A:        ABLeg{Console: "a", Host: NewHostRecord(NewHostBlock(1, busyFigures(), 10, nil, 0))},
		HostBusy: []string{"leg A: busy"},
		Metrics:  []ABMetric{{Metric: "keypress_to_screen", Confidence: 0.95, Outcome: "inconclusive", Verdict: "inconclusive: B−A +1.0 ms"}}}
	var out bytes.Buffer
	require.NoError(t, WriteABTable(&out, ab))
	assert.Contains(t, out.String(), "outcome (threshold 10.0 ms)")
	assert.Contains(t, out.String(), "host during A")
	assert.Contains(t, out.String(), "host too busy")
	assert.Regexp(t, `(?m)^verdict +inconclusive$`, out.String())

	path := filepath.Join(t.TempDir(), ABName("r"))
	require.NoError(t, WriteAB(path, ab))
	back, err := ReadAB(path)
	require.NoError(t, err)
	assert.Equal(t, ABFormatVersion, back.FormatVersion)
	assert.Equal(t, ABInconclusive, back.Verdict)
	require.NotNil(t, back.A.Host)
}
