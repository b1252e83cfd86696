package loadtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
)

// TestSidecarSettingsAreTheConfigurationsOne: every measurement setting
// the sidecar records comes from the one measurement configuration that
// config.Load defaulted and judged, measured or not (a run refused
// before it measured still says what it was asked to do).
func TestSidecarSettingsAreTheConfigurationsOne(t *testing.T) {
	cfg, err := config.Load([]string{"LATENCY_PROVIDER=fake", "LATENCY_CADENCE=500ms", "LATENCY_SETTLE=90ms",
		"LATENCY_MAX_MISSES=4", "LATENCY_MAX_CONTAMINATION=0.02", "LATENCY_SAMPLES=7"})
	require.NoError(t, err)
	s := (&Session{Cfg: cfg}).Sidecar(nil, time.Now())
	mc := cfg.Measure
	assert.Equal(t, 7, s.SamplesRequested)
	assert.Equal(t, mc.Cadence.Seconds(), s.CadenceS)
	assert.Equal(t, mc.Jitter.Seconds(), s.JitterS)
	assert.Equal(t, mc.Hold.Seconds(), s.HoldS)
	assert.Equal(t, 0.5, s.WindowS, "the window the measurement derived from the cadence")
	assert.Equal(t, 0.5, s.QuietS, "and the quiet gap from the window")
	assert.Equal(t, 0.09, s.SettleS)
	assert.Equal(t, 4, s.MaxMisses)
	assert.Equal(t, 0.02, s.MaxContamination)
	assert.Equal(t, mc.MaxDuration.Seconds(), s.MaxDurationS)

	ping, err := config.Load([]string{"LATENCY_PROVIDER=fake", "LATENCY_METRIC=ping"})
	require.NoError(t, err)
	p := (&Session{Cfg: ping}).Sidecar(nil, time.Now())
	assert.Zero(t, p.HoldS+p.JitterS+p.WindowS+p.QuietS+p.SettleS, "the ping metric presses no key")
	assert.Empty(t, p.Scancode)
	assert.Equal(t, ping.Measure.Samples, p.SamplesRequested)
}
