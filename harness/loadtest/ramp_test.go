package loadtest

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/ramp"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// rampWith makes a ramp whose blocks measured repaints around each
// step's centre (seconds), each block 1 s long with the given CPU per
// role, while the source's samples grew by bytesPerSession per session
// a block.
func rampWith(t *testing.T, steps []int, centre map[int]float64, perStep int, cpu []host.ProcessCPU, busy bool) *Ramp {
	t.Helper()
	rc := &config.Ramp{Steps: steps, Source: "synthetic", Activity: "video", Rate: 1_000_000, Repeat: 2, MaxAdded: 10 * time.Millisecond}
	cfg := &config.Config{RunID: "ramp", Measure: measure.Config{Samples: perStep}, Ramp: rc}
	plan, err := ramp.Plan(steps, rc.Repeat, perStep)
	require.NoError(t, err)
	r := &Ramp{Cfg: cfg, Plan: plan}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	var bytes int64
	for i, b := range plan {
		var res measure.Result
		for j := range b.Samples {
			d := time.Duration((centre[b.Sessions] + 0.004*rng.Float64()) * float64(time.Second))
			res.Presses = append(res.Presses, measure.Press{Number: j + 1, Verdict: measure.VerdictSample, Answered: true, FirstDraw: d / 2, Repaint: d})
		}
		res.Presses = append(res.Presses, measure.Press{Number: b.Samples + 1, Verdict: measure.VerdictMiss})
		start := t0.Add(time.Duration(i) * time.Second)
		f := host.Figures{StartTime: start, EndTime: start.Add(time.Second), Cores: 2, Reads: 4, CPU: cpu}
		f.Lag.Ticks = 100
		if busy {
			f.Lag.P99S, f.Lag.MaxS = 0.020, 0.030
		}
		before := load.Sample{Sessions: b.Sessions, Bytes: bytes}
		bytes += int64(b.Sessions) * 125_000
		after := load.Sample{Sessions: b.Sessions, Bytes: bytes, Processes: []load.Process{{Role: "generator", Pid: 7, RSS: 10 << 20}}}
		r.Blocks = append(r.Blocks, RampBlock{Block: b, Result: res, Host: results.NewHostBlock(i+1, f, b.Samples, nil, 0), Before: before, After: after})
	}
	return r
}

func TestRampJudgesItsBlocks(t *testing.T) {
	cpu := []host.ProcessCPU{{Role: "harness", CPUS: 0.1}, {Role: "qemu", CPUS: 0.3}, {Role: ramp.ProxyRole, CPUS: 0.5}}
	r := rampWith(t, []int{0, 8, 16}, map[int]float64{0: 0.020, 8: 0.021, 16: 0.060}, 30, cpu, false)
	l := r.Judge()
	assert.Equal(t, []int{0, 8, 16, 16, 8, 0}, l.Order)
	require.Len(t, l.Steps, 3)
	for _, s := range l.Steps {
		assert.Equal(t, 30, s.Repaint.Samples, "each step's samples over its rounds")
		assert.Equal(t, 2, s.Blocks)
		assert.Equal(t, 2, s.Misses, "one miss a block, counted, not a sample")
		assert.InDelta(t, float64(s.Sessions)*125_000, s.BytesPerS, 1e-6, "bytes through the proxy per second of its blocks")
		require.NotNil(t, s.Host)
	}
	// Per role: CPU seconds over the step's 2 s.
	assert.Equal(t, []results.LoadCPU{{Role: "harness", CPUS: 0.2, CoreShare: 0.1}, {Role: "qemu", CPUS: 0.6, CoreShare: 0.3}, {Role: "proxy", CPUS: 1, CoreShare: 0.5}}, l.Steps[1].CPU)
	assert.InDelta(t, 0.4, l.Steps[1].LoadCores, 1e-9, "everything but the proxy")
	assert.InDelta(t, 0.0115, l.Steps[1].FirstDraw.P50S, 0.002, "the first draw is its own figure (half the repaint here)")
	require.NotNil(t, l.Knee)
	assert.Equal(t, 16, *l.Knee)
	assert.Equal(t, ramp.Knee, l.Verdict, "%v", l.Reasons)
	assert.False(t, l.Fails)
	assert.True(t, l.Steps[2].Above)
	assert.Equal(t, 2, l.Cores)

	t.Run("a busy host is host-bound", func(t *testing.T) {
		r := rampWith(t, []int{0, 8}, map[int]float64{0: 0.020, 8: 0.060}, 30, cpu, true)
		l := r.Judge()
		assert.Equal(t, ramp.HostBound, l.Verdict)
		assert.True(t, l.Fails)
		assert.NotEmpty(t, l.Steps[0].Saturated)
	})
	t.Run("a ramp that ended early is no pass", func(t *testing.T) {
		r := rampWith(t, []int{0, 8}, map[int]float64{0: 0.020, 8: 0.020}, 30, cpu, false)
		r.Err = context.DeadlineExceeded
		l := r.Judge()
		assert.True(t, l.Fails)
		assert.Equal(t, ramp.Inconclusive, l.Verdict)
		assert.Contains(t, l.Reasons[0], "ended early")
	})
	t.Run("blocks missing", func(t *testing.T) {
		r := rampWith(t, []int{0, 8}, map[int]float64{0: 0.020, 8: 0.020}, 30, cpu, false)
		r.Blocks = r.Blocks[:2]
		l := r.Judge()
		assert.Equal(t, ramp.Inconclusive, l.Verdict, "half the samples at each step")
	})
}

// TestProcessRigSetsSessionsUpAndDown runs loadrig's proxy and
// synthetic sessions as the ramp does: Set starts and stops them through
// the proxy, Sample's counters grow while they run, and each is a
// process of its own.
func TestProcessRigSetsSessionsUpAndDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	m, err := spiceproxy.Parse("nodelay")
	require.NoError(t, err)
	rc := &config.Ramp{Steps: []int{0, 3}, Source: config.LoadSynthetic, Activity: "typing", Rate: 200_000, Proxy: m}
	rig, err := processRig(ctx, &config.Config{Ramp: rc}, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, rig.Source.Close(context.Background()))
		assert.NoError(t, rig.Proxy.Close(context.Background()))
	})
	assert.Equal(t, "synthetic", rig.Source.Name())
	assert.Positive(t, rig.Proxy.Pid(), "a process of its own")
	assert.Contains(t, rig.Proxy.Describe(), "nodelay")

	require.NoError(t, rig.Source.Set(ctx, 3))
	s1, err := rig.Source.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, s1.Sessions)
	assert.Positive(t, s1.Bytes, "Set returns once every session read display traffic")
	require.NotEmpty(t, s1.Processes)
	assert.Equal(t, "generator", s1.Processes[0].Role)
	require.NoError(t, rig.Source.Set(ctx, 1))
	s2, err := rig.Source.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s2.Sessions)
	assert.GreaterOrEqual(t, s2.Bytes, s1.Bytes, "cumulative, stopped sessions included")
	p, err := rig.Proxy.Process()
	require.NoError(t, err)
	assert.Equal(t, rig.Proxy.Pid(), p.Pid)
}

// TestProcessRigRunsBusyQemuGuests: with LATENCY_LOAD_SOURCE=qemu the
// ramp's busy sessions are guests of our own running the activity,
// reached through the proxy process, each QEMU's CPU in the samples.
func TestProcessRigRunsBusyQemuGuests(t *testing.T) {
	if _, err := exec.LookPath(config.DefaultQemu); err != nil {
		t.Skipf("busy QEMU guests need %s: apt-get install -y qemu-system-x86", config.DefaultQemu)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	m, err := spiceproxy.Parse("nodelay")
	require.NoError(t, err)
	cfg := &config.Config{Qemu: config.DefaultQemu, ResultsDir: t.TempDir(), RunID: "rigqemu",
		Ramp: &config.Ramp{Steps: []int{0, 1}, Source: config.LoadQemu, Activity: "video", Proxy: m}}
	rig, err := processRig(ctx, cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, rig.Source.Close(context.Background()))
		assert.NoError(t, rig.Proxy.Close(context.Background()))
	})
	assert.Equal(t, "qemu", rig.Source.Name())
	require.NoError(t, rig.Source.Set(ctx, 1))
	s, err := rig.Source.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Sessions)
	assert.Positive(t, s.Bytes, "the guest's display reached its viewer")
	require.NotEmpty(t, s.Processes)
	assert.Equal(t, "qemu", s.Processes[0].Role)
	tot, err := rig.Proxy.(processProxy).Totals(ctx)
	require.NoError(t, err)
	assert.Positive(t, tot.Routes, "the viewer went through the proxy under test")
}
