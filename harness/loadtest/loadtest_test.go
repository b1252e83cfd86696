package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

var fakeryll string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loadtest-pkg-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeryll = filepath.Join(dir, "fakeryll")
	if out, err := exec.Command("go", "build", "-o", fakeryll, FakeryllPackage).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fakeryll: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func fakeConfig(t testing.TB, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{
		"LATENCY_RYLL": fakeryll, "LATENCY_RESULTS_DIR": t.TempDir(),
		"LATENCY_SAMPLES": "5", "LATENCY_CADENCE": "100ms", "LATENCY_KEY_HOLD": "10ms",
		"LATENCY_CADENCE_JITTER": "20ms", "LATENCY_READY_TIMEOUT": "20s", "LATENCY_MAX_DURATION": "60s",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.Load(func(k string) string { return base[k] })
	require.NoError(t, err)
	return cfg
}

// session runs Setup, Measure and Teardown against fakeryll with knobs.
func session(t testing.TB, cfg *config.Config, knobs ...string) (*Run, *Measurement) {
	t.Helper()
	r, err := Setup(context.Background(), cfg, Options{RyllEnv: knobs, Environ: func() []string { return nil }})
	t.Cleanup(func() {
		ctx, cancel := cloud.CleanupContext(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, r.Teardown(ctx))
	})
	require.NoError(t, err)
	m, err := r.Measure(context.Background())
	require.NoError(t, err)
	return r, m
}

func TestKeypressRunWritesEverySample(t *testing.T) {
	cfg := fakeConfig(t, nil)
	r, m := session(t, cfg)
	require.NoError(t, m.Err)
	require.Len(t, m.Result.Samples, 5)
	csv, err := results.ReadCSV(m.CSVPath)
	require.NoError(t, err)
	assert.Len(t, csv, 5)
	assert.Equal(t, []string{"surface_drawn", "dropped"}, r.Subscribed)

	var table bytes.Buffer
	s := r.Sidecar(m, time.Now())
	files, err := r.WriteResults(&table, m, s)
	require.NoError(t, err)
	for _, f := range []string{files.CSV, files.Sidecar, files.Plot, files.Bench, files.RyllLog} {
		assert.FileExists(t, f)
	}
	back, err := results.ReadSidecar(files.Sidecar)
	require.NoError(t, err)
	assert.Equal(t, "keypress_to_screen", back.Metric)
	assert.Equal(t, "0x39", back.Scancode)
	assert.Equal(t, "1.2", back.ProtocolVersionAnswered)
	assert.Equal(t, 5, back.SamplesCollected)
	assert.Contains(t, back.Files, filepath.Base(files.Plot))
	assert.Contains(t, table.String(), filepath.Base(files.Bench), "the summary names the files")
}

// TestMeasuredMinusModelledIsCausal compares every CSV line with the
// delay fakeryll modelled for that key press (its truth file). The
// measured value starts just before send_key is written; the modelled one
// when fakeryll read it; so measured - modelled is the time the request
// spent in flight, never negative (to the microsecond of wallclock_us).
// How large it is depends on the machine, so it is reported by
// BenchmarkAccuracy, not asserted here.
func TestMeasuredMinusModelledIsCausal(t *testing.T) {
	errs := accuracyRun(t, 12)
	require.Len(t, errs, 12)
	for i, e := range errs {
		assert.GreaterOrEqual(t, e, -2e-6, "line %d: measured is below the modelled delay", i+1)
	}
}

// accuracyRun measures n samples against fakeryll with a fixed delay, no
// jitter and no refresh timer, and returns measured - modelled per line.
func accuracyRun(t testing.TB, n int) []float64 {
	t.Helper()
	truth := filepath.Join(t.TempDir(), "truth.csv")
	cfg := fakeConfig(t, map[string]string{"LATENCY_SAMPLES": fmt.Sprint(n)})
	_, m := session(t, cfg, "FAKERYLL_DRAW_DELAY=25ms", "FAKERYLL_DRAW_JITTER=0",
		"FAKERYLL_DISPLAY_REFRESH=0", "FAKERYLL_TRUTH_FILE="+truth)
	require.NoError(t, m.Err)
	measured, err := results.ReadCSV(m.CSVPath)
	require.NoError(t, err)
	modelled := modelledFirstDraws(t, truth)
	require.Len(t, modelled, len(measured), "one truth row per sample: no miss, no extra pairing")
	out := make([]float64, len(measured))
	for i := range measured {
		assert.InDelta(t, 0.025, modelled[i], 1e-6, "fakeryll modelled the configured delay")
		out[i] = measured[i] - modelled[i]
	}
	return out
}

// modelledFirstDraws reads fakeryll's truth file: the modelled
// keypress-to-first-draw latency of every press, in seconds, in press
// order.
func modelledFirstDraws(t testing.TB, path string) []float64 {
	t.Helper()
	rows, err := sim.ReadTruthFile(path)
	require.NoError(t, err)
	out := make([]float64, len(rows))
	for i, r := range rows {
		require.True(t, r.Drawn(), "press %d drew nothing", r.Press)
		out[i] = r.FirstDraw().Seconds()
	}
	return out
}

// BenchmarkAccuracy reports the distribution of measured minus modelled
// delay, in microseconds, over 30 key presses per iteration.
func BenchmarkAccuracy(b *testing.B) {
	var all []float64
	for b.Loop() {
		all = append(all, accuracyRun(b, 30)...)
	}
	s := stats.Summarize(all)
	b.ReportMetric(s.P50*1e6, "err-p50-us")
	b.ReportMetric(s.P99*1e6, "err-p99-us")
	b.ReportMetric(s.Max*1e6, "err-max-us")
}

func TestPingMetricIsInSeconds(t *testing.T) {
	cfg := fakeConfig(t, map[string]string{"LATENCY_METRIC": "ping", "LATENCY_SAMPLES": "4"})
	r, m := session(t, cfg, "FAKERYLL_PING_PATTERN=50ms")
	require.NoError(t, m.Err)
	assert.Equal(t, []string{"latency", "dropped"}, r.Subscribed)
	require.Len(t, m.Result.Samples, 4)
	for _, v := range m.Result.Values() {
		// 50 ms between PINGs: seconds put it near 0.05, milliseconds
		// near 50. The bound only tells the units apart.
		assert.Less(t, v, 5.0)
		assert.Greater(t, v, 0.0)
	}
	s := r.Sidecar(m, time.Now())
	assert.Equal(t, "ping_interval", s.Metric)
	assert.Empty(t, s.Scancode, "no key is pressed for the ping metric")
}

func TestProtocol10RefusesKeypressButServesPing(t *testing.T) {
	cfg := fakeConfig(t, nil)
	r, err := Setup(t.Context(), cfg, Options{RyllEnv: []string{"FAKERYLL_PROTOCOL_VERSION=1.0"}, Environ: func() []string { return nil }})
	t.Cleanup(func() { _ = r.Teardown(context.Background()) })
	require.NoError(t, err)
	err = r.CheckHandshake()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LATENCY_METRIC=ping")
	_, err = r.Measure(t.Context())
	require.Error(t, err)

	cfg = fakeConfig(t, map[string]string{"LATENCY_METRIC": "ping", "LATENCY_SAMPLES": "2"})
	_, m := session(t, cfg, "FAKERYLL_PROTOCOL_VERSION=1.0", "FAKERYLL_PING_PATTERN=20ms")
	require.NoError(t, m.Err)
	assert.Len(t, m.Result.Samples, 2)
}

func TestFakeryllKnobsComeFromTheEnvironment(t *testing.T) {
	cfg := fakeConfig(t, map[string]string{"LATENCY_READY_TIMEOUT": "1s"})
	r, err := Setup(t.Context(), cfg, Options{Environ: func() []string {
		return []string{"FAKERYLL_SURFACES_DELAY=1h", "OTHER=1"}
	}})
	t.Cleanup(func() { _ = r.Teardown(context.Background()) })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "status.surfaces is still empty")
	assert.Contains(t, err.Error(), "LATENCY_READY_TIMEOUT=1s")
}

func TestSetupFailsBeforeProvisioningWhenRyllIsMissing(t *testing.T) {
	cfg := fakeConfig(t, map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "127.0.0.1:5900"})
	cfg.Ryll = "no-such-ryll-binary"
	r, err := Setup(t.Context(), cfg, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LATENCY_RYLL")
	assert.Nil(t, r.Console, "nothing provisioned")
	require.NoError(t, r.Teardown(t.Context()))
}

func TestTeardownTwiceAndCleanCloud(t *testing.T) {
	cfg := fakeConfig(t, map[string]string{"LATENCY_SAMPLES": "1"})
	r, err := Setup(t.Context(), cfg, Options{Environ: func() []string { return nil }})
	require.NoError(t, err)
	fc := r.Console.FakeCloud
	require.Equal(t, 1, fc.ServersAlive())
	sock := r.Ryll.SocketPath()
	require.NoError(t, r.Teardown(t.Context()))
	require.NoError(t, r.Teardown(t.Context()))
	_, statErr := os.Stat(filepath.Dir(sock))
	assert.True(t, os.IsNotExist(statErr), "socket directory removed")
	select {
	case <-r.Ryll.Exited():
	default:
		t.Fatal("ryll still running after Teardown")
	}
	assert.True(t, slices.Contains(r.Secrets(), fc.Password()))
}
