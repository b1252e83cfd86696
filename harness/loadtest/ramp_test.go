package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"strings"
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

// fakeSource is a load.Source that records the steps it was set to.
type fakeSource struct {
	sets  []int
	n     int
	bytes int64
}

func (s *fakeSource) Name() string { return "synthetic" }
func (s *fakeSource) Set(_ context.Context, n int) error {
	s.sets, s.n = append(s.sets, n), n
	return nil
}
func (s *fakeSource) Sample(context.Context) (load.Sample, error) {
	s.bytes += int64(s.n) * 125_000
	return load.Sample{Sessions: s.n, Bytes: s.bytes}, nil
}
func (s *fakeSource) Close(context.Context) error { return nil }

// fakeProxy is the proxy under test of a ramp that measures nothing
// through it.
type fakeProxy struct{}

func (fakeProxy) Router() load.Router                     { return nil }
func (fakeProxy) Describe() string                        { return "nodelay (fake)" }
func (fakeProxy) Pid() int                                { return 0 }
func (fakeProxy) Process() (load.Process, error)          { return load.Process{}, nil }
func (fakeProxy) Close(context.Context) error             { return nil }
func (k *fakeKeys) CountsKeys() bool                      { return true }
func (k *fakeKeys) KeysSeen(context.Context) (int, error) { return k.seen(), nil }

// fakeKeys is the guest's key counter: every key sent but those lost.
type fakeKeys struct {
	sent, lost int
}

func (k *fakeKeys) seen() int { return k.sent - k.lost }

// rig is a ramp over steps whose blocks measure repaints around 20 ms
// without ryll or a guest: a block at failAt sessions or more fails as
// fail says (nil: none fails), after a few samples, with hostCPU as its
// host's CPU.
type rig struct {
	t       *testing.T
	r       *Ramp
	src     *fakeSource
	keys    *fakeKeys
	failAt  int
	fail    func(sessions int) error
	round   int // the first round whose blocks fail
	lost    int // keys the failing block loses
	failCPU []host.ProcessCPU
}

func newRig(t *testing.T, steps []int, samples int) *rig {
	t.Helper()
	rc := &config.Ramp{Steps: steps, Source: "synthetic", Activity: "video", Rate: 1_000_000, Repeat: 2, MaxAdded: 10 * time.Millisecond}
	cfg := &config.Config{RunID: "overload", ResultsDir: t.TempDir(), Ramp: rc,
		Measure: measure.Config{Metric: measure.KeypressToScreen, Samples: samples, MaxDuration: time.Minute}}
	plan, err := ramp.Plan(steps, rc.Repeat, samples)
	require.NoError(t, err)
	sink, err := newSink(cfg)
	require.NoError(t, err)
	g := &rig{t: t, src: &fakeSource{}, keys: &fakeKeys{}, failAt: -1}
	g.r = &Ramp{Cfg: cfg, Plan: plan, Rig: RampRig{Proxy: fakeProxy{}, Source: g.src}, sink: sink,
		logger: slog.New(slog.DiscardHandler), keys: g.keys, consoleCfg: cfg}
	g.r.measureBlock = g.block
	return g
}

var blockStart = time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)

func (g *rig) block(_ context.Context, b ramp.Block, keys *int) (measure.Result, results.HostBlock, error) {
	rng := rand.New(rand.NewPCG(uint64(b.Index+1), 7))
	res := measure.Result{Start: blockStart.Add(time.Duration(b.Index) * time.Second), StopReason: measure.StopSamplesReached}
	n, failing := b.Samples, g.failAt >= 0 && b.Sessions >= g.failAt && b.Round >= g.round
	var err error
	if failing {
		n, err, res.StopReason = 3, g.fail(b.Sessions), measure.StopStall
	}
	for j := range n {
		d := time.Duration((0.020 + 0.004*rng.Float64()) * float64(time.Second))
		res.Presses = append(res.Presses, measure.Press{Number: j + 1, Verdict: measure.VerdictSample, Answered: true, FirstDraw: d / 2, Repaint: d})
	}
	cpu := []host.ProcessCPU{{Role: "harness", CPUS: 0.1}, {Role: "qemu", CPUS: 0.2}}
	if failing {
		for j := range 4 {
			res.Presses = append(res.Presses, measure.Press{Number: n + j + 1, Verdict: measure.VerdictMiss})
		}
		g.keys.lost += g.lost
		if g.failCPU != nil {
			cpu = g.failCPU
		}
	}
	*keys += len(res.Presses)
	g.keys.sent += len(res.Presses)
	f := host.Figures{StartTime: res.Start, EndTime: res.Start.Add(time.Second), Cores: 2, Reads: 4, CPU: cpu}
	f.Lag.Ticks = 100
	return res, results.NewHostBlock(b.Index+1, f, n, nil, 0), err
}

func stall(sessions int) error {
	return fmt.Errorf("%w: press 4 got no draw for 3s (at %d sessions)", measure.ErrStall, sessions)
}

func (g *rig) sessionsTaken() []int {
	var out []int
	for _, b := range g.r.Blocks {
		out = append(out, b.Sessions)
	}
	return out
}

// A block the proxy cannot carry is the ramp's answer: the steps above
// it are not run, the rounds below it are finished, everything is
// written, and the knee is at or below it.
func TestRampAStepThatCannotBeMeasuredIsOverloaded(t *testing.T) {
	g := newRig(t, []int{0, 8, 16, 32}, 30)
	g.failAt, g.fail, g.lost = 16, stall, 2
	require.NoError(t, g.r.Run(t.Context()), "the load's failure is a finding, not the ramp's error")
	assert.Equal(t, []int{0, 8, 16, 8, 0}, g.sessionsTaken(), "nothing at or above 16 after it failed; the second round below it finished")
	assert.Equal(t, []int{0, 8, 16, 8, 0}, g.src.sets, "32 sessions were never started")
	assert.Equal(t, "the measured console stalled", g.r.Blocks[2].Overload)
	assert.Equal(t, 2, g.r.Blocks[2].KeysLost, "the keys it held or lost are the block's, not an error")

	l := g.r.Judge()
	assert.Equal(t, ramp.Overloaded, l.Verdict, "%v", l.Reasons)
	require.NotNil(t, l.Overloaded)
	assert.Equal(t, 16, *l.Overloaded)
	assert.Nil(t, l.Knee, "no step below it is proven above the margin")
	assert.False(t, l.Fails, "without a target the limit is reported, as a knee is")
	assert.Empty(t, l.Errors)
	require.Len(t, l.Steps, 4)
	s := l.Steps[2]
	assert.True(t, s.Overloaded)
	assert.Equal(t, "the measured console stalled (block 3)", s.Failure)
	assert.Contains(t, s.FailureError, "press 4 got no draw")
	assert.Contains(t, s.FailureError, "2 of its key presses never reached the guest")
	assert.True(t, s.NotRun, "its second block was not taken")
	assert.True(t, l.Steps[3].NotRun)
	assert.Zero(t, l.Steps[3].Blocks)
	for _, s := range l.Steps[:2] {
		assert.Equal(t, 30, s.Repaint.Samples, "%d sessions: both rounds below the failed step", s.Sessions)
		assert.False(t, s.NotRun || s.TooFew)
	}
	assert.Contains(t, l.Reasons[0], "overloaded at 16 sessions")

	out, err := g.r.WriteResults(io.Discard)
	require.NoError(t, err)
	back, err := results.ReadLoad(out.Path)
	require.NoError(t, err)
	assert.Equal(t, ramp.Overloaded, back.Verdict)
	require.NotNil(t, back.Overloaded)
	assert.Equal(t, 16, *back.Overloaded)
	assert.FileExists(t, out.Plot)
	assert.Equal(t, results.StopStall, out.Console.Sidecar.StopReason, "the console's own record says what it did")
	assert.Contains(t, strings.Join(out.Console.Sidecar.Errors, "\n"), "went on below them")
	assert.Contains(t, strings.Join(out.Console.Sidecar.Errors, "\n"), "2 of its key presses never reached the guest")
	require.NotNil(t, out.Console.Sidecar.KeysSent)
	assert.Equal(t, g.keys.sent, *out.Console.Sidecar.KeysSent, "every key sent, those lost too")
	assert.Equal(t, g.keys.seen(), *out.Console.Sidecar.KeysSeenByGuest)

	t.Run("target at or above it fails", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, []int{0, 8, 16, 32}, 30)
		g.failAt, g.fail = 16, stall
		g.r.Cfg.Ramp.Target, g.r.Cfg.Ramp.TargetSet = 16, true
		require.NoError(t, g.r.Run(t.Context()))
		l := g.r.Judge()
		assert.True(t, l.Fails)
		assert.Equal(t, ramp.Overloaded, l.Verdict)
		assert.Contains(t, l.Reasons[0], "LATENCY_LOAD_TARGET=16")
	})
	t.Run("target below it passes", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, []int{0, 8, 16, 32}, 30)
		g.failAt, g.fail = 16, stall
		g.r.Cfg.Ramp.Target, g.r.Cfg.Ramp.TargetSet = 8, true
		require.NoError(t, g.r.Run(t.Context()))
		l := g.r.Judge()
		assert.False(t, l.Fails, "%v", l.Reasons)
	})
	t.Run("on a saturated host it is host-bound", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, []int{0, 8, 16, 32}, 30)
		g.failAt, g.fail = 16, stall
		g.failCPU = []host.ProcessCPU{{Role: "harness", CPUS: 0.6}, {Role: "generator", CPUS: 1.0}, {Role: "qemu", CPUS: 0.3}}
		require.NoError(t, g.r.Run(t.Context()))
		assert.Equal(t, []int{0, 8, 16, 8, 0}, g.sessionsTaken(), "no higher step either: load only grows")
		l := g.r.Judge()
		assert.Equal(t, ramp.HostBound, l.Verdict, "%v", l.Reasons)
		assert.True(t, l.Fails)
		assert.Nil(t, l.Overloaded)
		assert.False(t, l.Steps[2].Overloaded)
		assert.NotEmpty(t, l.Steps[2].Failure)
	})
	t.Run("a lower step failing in a later round", func(t *testing.T) {
		// 0,8,16 then 16,8(fails),0: 16 ran in full but is above it.
		g := newRig(t, []int{0, 8, 16}, 30)
		g.failAt, g.fail, g.round = 8, stall, 1
		require.NoError(t, g.r.Run(t.Context()))
		assert.Equal(t, []int{0, 8, 16, 16, 8, 0}, g.sessionsTaken())
		l := g.r.Judge()
		assert.Equal(t, ramp.Overloaded, l.Verdict, "%v", l.Reasons)
		require.NotNil(t, l.Overloaded)
		assert.Equal(t, 8, *l.Overloaded)
		assert.False(t, l.Steps[2].NotRun, "16 took both its blocks")
		assert.False(t, l.Steps[2].Above || l.Steps[2].Within || l.Steps[2].TooFew, "but is not judged above a failed step")
		assert.False(t, l.Steps[1].NotRun, "8 took both its blocks, the second failed")
	})
	t.Run("more keys lost than went unanswered is an error", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, []int{0, 8, 16}, 30)
		g.failAt, g.fail, g.lost = 16, stall, 5
		err := g.r.Run(t.Context())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "more than the block's 4 unanswered presses")
		assert.Equal(t, []int{0, 8, 16}, g.sessionsTaken())
	})
}

// Whatever else ends a block ends the ramp with an error, as before:
// it is no finding about the load.
func TestRampEndsOnAFailureThatIsNotTheLoads(t *testing.T) {
	for name, fail := range map[string]func(int) error{
		"ryll exited": func(int) error { return errors.New("ryll exited during the run: exit status 2") },
		"interrupted": func(int) error { return fmt.Errorf("interrupted after 3 of 15 samples: %w", context.Canceled) },
	} {
		t.Run(name, func(t *testing.T) {
			g := newRig(t, []int{0, 8, 16, 32}, 30)
			g.failAt, g.fail = 16, fail
			require.Error(t, g.r.Run(t.Context()))
			assert.Equal(t, []int{0, 8, 16}, g.sessionsTaken())
			assert.Empty(t, g.r.Blocks[2].Overload)
			l := g.r.Judge()
			assert.Equal(t, ramp.Inconclusive, l.Verdict)
			assert.True(t, l.Fails)
			assert.Nil(t, l.Overloaded)
			require.Len(t, l.Errors, 1, "the record says what ended it")
			assert.Contains(t, l.Errors[0], "block 3, 16 busy sessions")
		})
	}
	t.Run("a stall at the baseline", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, []int{0, 8}, 30)
		g.failAt, g.fail = 0, stall
		require.Error(t, g.r.Run(t.Context()), "no load at the baseline: its failure is the console's")
		assert.Equal(t, []int{0}, g.sessionsTaken())
		assert.Equal(t, ramp.Inconclusive, g.r.Judge().Verdict)
	})
}
