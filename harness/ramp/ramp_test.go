package ramp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/measure"
)

func TestPlanInterleavesRoundsAndSplitsSamples(t *testing.T) {
	blocks, err := Plan([]int{0, 8, 16, 32}, 2, 25)
	require.NoError(t, err)
	var order []int
	per := map[int]int{}
	for i, b := range blocks {
		assert.Equal(t, i, b.Index)
		order = append(order, b.Sessions)
		per[b.Sessions] += b.Samples
	}
	assert.Equal(t, []int{0, 8, 16, 32, 32, 16, 8, 0}, order, "each round the reverse of the one before")
	for _, s := range []int{0, 8, 16, 32} {
		assert.Equal(t, 25, per[s], "step %d takes LATENCY_SAMPLES in all", s)
	}
	assert.Equal(t, 13, blocks[0].Samples, "the first round takes the remainder")
	assert.Equal(t, 12, blocks[7].Samples)
}

func TestPlanRoundsBoundedBySamples(t *testing.T) {
	blocks, err := Plan([]int{0, 4}, 5, 2)
	require.NoError(t, err)
	assert.Len(t, blocks, 4, "no block of zero samples")
	for _, b := range blocks {
		assert.Equal(t, 1, b.Samples)
	}
}

func TestPlanRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		steps           []int
		rounds, samples int
	}{
		"no baseline":    {[]int{8, 16}, 1, 10},
		"not increasing": {[]int{0, 16, 8}, 1, 10},
		"empty":          {nil, 1, 10},
		"no rounds":      {[]int{0, 1}, 0, 10},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Plan(tc.steps, tc.rounds, tc.samples)
			assert.Error(t, err)
		})
	}
}

// samples draws n repaints around centre (seconds) with a few ms of
// noise.
func samples(seed uint64, n int, centre float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	v := make([]float64, n)
	for i := range v {
		v[i] = centre + 0.004*rng.Float64()
	}
	return v
}

func steps(centres map[int]float64, order []int, n int) []Step {
	var out []Step
	for i, s := range order {
		v := samples(uint64(i+1), n, centres[s])
		out = append(out, Step{Sessions: s, FirstDraw: v, Repaint: v, Want: n,
			CPU: []RoleCPU{{"harness", 0.2}, {"qemu", 0.3}, {ProxyRole, 1.5}}})
	}
	return out
}

var rules = Rules{MaxAdded: 0.010, Cores: 2}

func TestJudgeFindsTheKneeAtTheRightStep(t *testing.T) {
	st := steps(map[int]float64{0: 0.020, 8: 0.021, 16: 0.050, 32: 0.090}, []int{0, 8, 16, 32}, 40)
	j := Judge(st, rules)
	assert.Equal(t, Knee, j.Verdict, "%v", j.Reasons)
	assert.Equal(t, 16, j.Knee)
	assert.False(t, j.Fails, "without a target a knee is reported, not failed")
	assert.True(t, j.Steps[2].Above)
	assert.False(t, j.Steps[1].Above)
	assert.InDelta(t, 0.030, j.Steps[2].P95AddedS, 0.004)
	assert.Contains(t, j.Reasons[0], "knee at 16 sessions")

	t.Run("target at the knee fails", func(t *testing.T) {
		r := rules
		r.Target, r.TargetSet = 16, true
		j := Judge(st, r)
		assert.True(t, j.Fails)
		assert.Contains(t, j.Reasons[0], "LATENCY_LOAD_TARGET=16")
	})
	t.Run("target below the knee passes when proven", func(t *testing.T) {
		r := rules
		r.Target, r.TargetSet = 8, true
		j := Judge(st, r)
		assert.False(t, j.Fails, "%v", j.Reasons)
		assert.True(t, j.Steps[1].Within)
	})
}

func TestJudgeNoKneeWhenFlat(t *testing.T) {
	st := steps(map[int]float64{0: 0.020, 8: 0.021, 16: 0.020, 32: 0.022}, []int{0, 8, 16, 32}, 40)
	j := Judge(st, rules)
	assert.Equal(t, NoKnee, j.Verdict, "%v", j.Reasons)
	assert.Equal(t, -1, j.Knee)
	assert.False(t, j.Fails)
	for _, sj := range j.Steps[1:] {
		assert.False(t, sj.Above)
		assert.True(t, sj.Within)
	}
}

// A rise smaller than the margin, or one the noise cannot prove, is no
// knee.
func TestJudgeNoKneeBelowTheMargin(t *testing.T) {
	st := steps(map[int]float64{0: 0.020, 8: 0.026}, []int{0, 8}, 40)
	j := Judge(st, rules)
	assert.Equal(t, NoKnee, j.Verdict)
}

func TestJudgeHostBoundWinsOverAKnee(t *testing.T) {
	st := steps(map[int]float64{0: 0.020, 8: 0.021, 16: 0.050, 32: 0.090}, []int{0, 8, 16, 32}, 40)
	st[2].CPU = []RoleCPU{{"harness", 0.4}, {"generator", 0.9}, {"qemu", 0.5}, {ProxyRole, 0.2}}
	j := Judge(st, rules)
	assert.Equal(t, HostBound, j.Verdict)
	assert.True(t, j.Fails)
	assert.Equal(t, 16, j.Knee, "the rise is still recorded")
	assert.Contains(t, j.Reasons[0], "(2 cores)")
	assert.Contains(t, j.Reasons[0], "not the proxy's knee")
	assert.InDelta(t, 1.8, j.Steps[2].LoadCores, 1e-9)

	t.Run("a busy host by its own rule", func(t *testing.T) {
		st := steps(map[int]float64{0: 0.020, 8: 0.050}, []int{0, 8}, 40)
		st[0].HostBusy = []string{"the harness's timer lag p99 was 9.0 ms"}
		j := Judge(st, rules)
		assert.Equal(t, HostBound, j.Verdict)
		assert.Contains(t, j.Reasons[0], "timer lag")
	})
	t.Run("saturation after the knee does not matter", func(t *testing.T) {
		st := steps(map[int]float64{0: 0.020, 8: 0.050, 16: 0.090}, []int{0, 8, 16}, 40)
		st[2].CPU = []RoleCPU{{"generator", 1.9}}
		j := Judge(st, rules)
		assert.Equal(t, Knee, j.Verdict, "%v", j.Reasons)
		assert.Equal(t, 8, j.Knee)
	})
	t.Run("the proxy's own CPU is not the host's saturation", func(t *testing.T) {
		st := steps(map[int]float64{0: 0.020, 8: 0.050}, []int{0, 8}, 40)
		st[1].CPU = []RoleCPU{{ProxyRole, 1.95}, {"harness", 0.1}}
		j := Judge(st, rules)
		assert.Equal(t, Knee, j.Verdict)
	})
}

func TestJudgeInconclusiveWithFewSamples(t *testing.T) {
	st := steps(map[int]float64{0: 0.020, 8: 0.021, 16: 0.020}, []int{0, 8, 16}, 40)
	st[1].Repaint = st[1].Repaint[:MinStepSamples-1]
	j := Judge(st, rules)
	assert.Equal(t, Inconclusive, j.Verdict)
	assert.True(t, j.Fails, "never a pass")
	assert.Contains(t, j.Reasons[0], "8 sessions: 19 samples")

	t.Run("fewer than asked", func(t *testing.T) {
		st := steps(map[int]float64{0: 0.020, 8: 0.021}, []int{0, 8}, 40)
		st[1].Want = 60
		assert.Equal(t, Inconclusive, Judge(st, rules).Verdict)
	})
	t.Run("a short baseline", func(t *testing.T) {
		st := steps(map[int]float64{0: 0.020, 8: 0.090}, []int{0, 8}, 40)
		st[0].Repaint = st[0].Repaint[:5]
		j := Judge(st, rules)
		assert.Equal(t, Inconclusive, j.Verdict)
		assert.Equal(t, -1, j.Knee, "no knee against a baseline too short to judge")
	})
	t.Run("target unproven", func(t *testing.T) {
		// A wide step: its interval reaches above the margin without
		// proving a knee.
		st := steps(map[int]float64{0: 0.020, 8: 0.024}, []int{0, 8}, 40)
		for i := range st[1].Repaint {
			if i%8 == 0 {
				st[1].Repaint[i] += 0.030
			}
		}
		r := rules
		r.Target, r.TargetSet = 8, true
		j := Judge(st, r)
		assert.Equal(t, Inconclusive, j.Verdict, "%v %+v", j.Reasons, j.Steps[1])
		assert.True(t, j.Fails)
	})
	t.Run("nothing measured", func(t *testing.T) {
		assert.Equal(t, Inconclusive, Judge(nil, rules).Verdict)
	})
}

func TestNewFigure(t *testing.T) {
	v := samples(3, 50, 0.020)
	f := NewFigure(v)
	assert.Equal(t, 50, f.N)
	for _, c := range []struct {
		p  float64
		ci [2]float64
	}{{f.P50, f.P50CI}, {f.P95, f.P95CI}, {f.P99, f.P99CI}} {
		assert.LessOrEqual(t, c.ci[0], c.p)
		assert.GreaterOrEqual(t, c.ci[1], c.p)
	}
	assert.Less(t, f.P50, f.P95)
	assert.Equal(t, Figure{}, NewFigure(nil))
}

// A p95 above the margin that the interval cannot separate from the
// baseline's (a few stalls in the tail) is no knee: noise never makes
// one.
func TestJudgeNoKneeFromATailTheIntervalCannotProve(t *testing.T) {
	st := steps(map[int]float64{0: 0.020, 8: 0.020}, []int{0, 8}, 40)
	for _, i := range []int{3, 17, 31} {
		st[1].Repaint[i] += 0.040
	}
	j := Judge(st, rules)
	require.Len(t, j.Steps, 2)
	assert.Greater(t, j.Steps[1].P95AddedS, rules.MaxAdded, "the point estimate is above the margin")
	assert.LessOrEqual(t, j.Steps[1].P95AddedCIS[0], rules.MaxAdded, "its interval's lower end is not")
	assert.Equal(t, NoKnee, j.Verdict, "%v", j.Reasons)
	assert.Equal(t, -1, j.Knee)
}

// overloadAt marks step i as failed at its load in its block block, on
// a host that kept up, and every step above it as not run.
func overloadAt(st []Step, i, block int) []Step {
	st[i].Failed = &FailedBlock{Block: block, Cause: "the measured console stalled", Err: "stall: press 4 got no draw for 3s",
		CPU: []RoleCPU{{"harness", 0.2}, {"qemu", 0.3}, {ProxyRole, 1.0}}}
	st[i].Repaint = st[i].Repaint[:len(st[i].Repaint)/3]
	for k := i; k < len(st); k++ {
		st[k].NotRun = true
	}
	for k := i + 1; k < len(st); k++ {
		st[k].Repaint, st[k].FirstDraw = nil, nil
	}
	return st
}

func TestJudgeAStepTheProxyCouldNotCarryBoundsTheKnee(t *testing.T) {
	flat := func() []Step {
		return steps(map[int]float64{0: 0.020, 8: 0.021, 16: 0.021, 32: 0.020}, []int{0, 8, 16, 32}, 40)
	}
	j := Judge(overloadAt(flat(), 2, 3), rules)
	assert.Equal(t, Overloaded, j.Verdict, "%v", j.Reasons)
	assert.Equal(t, 16, j.Overloaded)
	assert.Equal(t, -1, j.Knee, "no step below it is proven above the margin")
	assert.False(t, j.Fails, "without a target the limit is reported, as a knee is, not failed")
	require.Len(t, j.Steps, 4)
	assert.True(t, j.Steps[2].Overloaded)
	assert.Contains(t, j.Steps[2].Failure, "stalled (block 3)")
	assert.False(t, j.Steps[2].TooFew, "a step that failed is not judged short: it is the answer")
	assert.True(t, j.Steps[3].NotRun)
	assert.False(t, j.Steps[3].TooFew, "a step above it that was not run is not judged")
	assert.True(t, j.Steps[1].Within)
	assert.Contains(t, j.Reasons[0], "overloaded at 16 sessions")
	assert.Contains(t, j.Reasons[0], "at or below 16 sessions")
	assert.Contains(t, j.Reasons[0], "not run (load only grows)")

	t.Run("target at or above it fails", func(t *testing.T) {
		for _, target := range []int{16, 32} {
			r := rules
			r.Target, r.TargetSet = target, true
			j := Judge(overloadAt(flat(), 2, 3), r)
			assert.True(t, j.Fails, "target %d", target)
			assert.Equal(t, Overloaded, j.Verdict)
			assert.Contains(t, j.Reasons[0], "could not carry 16 sessions")
		}
	})
	t.Run("target below it passes when proven", func(t *testing.T) {
		r := rules
		r.Target, r.TargetSet = 8, true
		j := Judge(overloadAt(flat(), 2, 3), r)
		assert.False(t, j.Fails, "%v", j.Reasons)
		assert.Equal(t, Overloaded, j.Verdict)
	})
	t.Run("target below it unproven is inconclusive", func(t *testing.T) {
		st := overloadAt(flat(), 2, 3)
		st[1].Repaint = st[1].Repaint[:10]
		r := rules
		r.Target, r.TargetSet = 8, true
		j := Judge(st, r)
		assert.True(t, j.Fails)
		assert.Equal(t, Inconclusive, j.Verdict, "%v", j.Reasons)
	})
	t.Run("a knee below it stays the knee", func(t *testing.T) {
		st := steps(map[int]float64{0: 0.020, 8: 0.050, 16: 0.090, 32: 0.090}, []int{0, 8, 16, 32}, 40)
		j := Judge(overloadAt(st, 2, 3), rules)
		assert.Equal(t, Knee, j.Verdict, "%v", j.Reasons)
		assert.Equal(t, 8, j.Knee)
		assert.Equal(t, -1, j.Overloaded)
		assert.Contains(t, j.Reasons[1], "at 16 sessions the measured console could not be measured")
	})
	t.Run("the lowest failed step decides", func(t *testing.T) {
		st := overloadAt(flat(), 2, 3)
		st[3].Failed = &FailedBlock{Block: 4, Cause: "no draw"}
		j := Judge(st, rules)
		assert.Equal(t, 16, j.Overloaded)
	})
	t.Run("a short step below it does not move the bound", func(t *testing.T) {
		st := overloadAt(flat(), 2, 3)
		st[1].Repaint = st[1].Repaint[:10]
		j := Judge(st, rules)
		assert.Equal(t, Overloaded, j.Verdict, "the knee is at or below 16 whatever 8 did")
		assert.Contains(t, j.Reasons[0], "8 sessions: 10 samples")
	})
}

func TestJudgeAFailureOnABusyHostIsHostBound(t *testing.T) {
	st := overloadAt(steps(map[int]float64{0: 0.020, 8: 0.021, 16: 0.021}, []int{0, 8, 16}, 40), 2, 3)
	st[2].Failed.CPU = []RoleCPU{{"harness", 0.5}, {"generator", 1.0}, {"qemu", 0.4}, {ProxyRole, 0.1}}
	j := Judge(st, rules)
	assert.Equal(t, HostBound, j.Verdict, "%v", j.Reasons)
	assert.True(t, j.Fails)
	assert.Equal(t, -1, j.Overloaded, "never overloaded on a saturated host")
	assert.False(t, j.Steps[2].Overloaded)
	assert.NotEmpty(t, j.Steps[2].Failure, "what happened is still said")
	assert.Contains(t, j.Reasons[0], "not the proxy's limit")
	assert.Contains(t, j.Reasons[0], "during the block that failed")

	t.Run("by the host's own rule", func(t *testing.T) {
		st := overloadAt(steps(map[int]float64{0: 0.020, 8: 0.021}, []int{0, 8}, 40), 1, 2)
		st[1].Failed.HostBusy = []string{"the harness's timer lag p99 was 12.0 ms"}
		r := rules
		r.Target, r.TargetSet = 8, true
		j := Judge(st, r)
		assert.Equal(t, HostBound, j.Verdict)
		assert.Contains(t, j.Reasons[0], "timer lag")
	})
}

func TestLoadFailureTellsTheLoadFromEverythingElse(t *testing.T) {
	for name, tc := range map[string]struct {
		sessions int
		err      error
		load     bool
	}{
		"stall":              {16, fmt.Errorf("block 3: %w: press 4", measure.ErrStall), true},
		"late draws":         {16, fmt.Errorf("%w", measure.ErrLateDraws), true},
		"no draws":           {16, errors.Join(fmt.Errorf("%w", measure.ErrNoDraws), errors.New("the guest counted 3 key presses")), true},
		"background":         {16, fmt.Errorf("%w: 40 draws", measure.ErrBackground), true},
		"at the baseline":    {0, fmt.Errorf("%w", measure.ErrStall), false},
		"interrupted":        {16, fmt.Errorf("interrupted: %w", context.Canceled), false},
		"max duration":       {16, fmt.Errorf("%w (cause: LATENCY_MAX_DURATION)", context.DeadlineExceeded), false},
		"ryll exited":        {16, errors.New("ryll exited during the run: exit status 2"), false},
		"connection lost":    {16, fmt.Errorf("the control connection to ryll was lost: %w", measure.ErrSourceClosed), false},
		"no error":           {16, nil, false},
		"interrupted stall":  {16, errors.Join(measure.ErrStall, context.Canceled), false},
		"setup of the block": {16, errors.New("start ryll: no such file"), false},
	} {
		t.Run(name, func(t *testing.T) {
			cause, ok := LoadFailure(tc.sessions, tc.err)
			assert.Equal(t, tc.load, ok)
			assert.Equal(t, tc.load, cause != "", "a cause exactly when it is the load's")
		})
	}
}
