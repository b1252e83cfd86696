package loadtest

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// abWith makes an A/B whose legs measured the given first-draw and
// repaint latencies (seconds; the repaint is the first draw plus add),
// on a host that looked like hostA and hostB.
func abWith(t *testing.T, a, b []float64, add float64, hostA, hostB host.Figures) *AB {
	t.Helper()
	cfg := &config.Config{RunID: "verdict", Measure: measure.Config{Samples: len(a)}, AB: &config.AB{Block: 10, MaxAdded: 10 * time.Millisecond}}
	ab := &AB{Cfg: cfg}
	for i, v := range [][]float64{a, b} {
		l := &Leg{Name: string(rune('A' + i)), Cfg: cfg.Leg(i == 1)}
		var res measure.Result
		t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
		for j, x := range v {
			d := time.Duration(x * float64(time.Second))
			res.Presses = append(res.Presses, measure.Press{Number: j + 1, SentAt: t0.Add(time.Duration(j) * time.Second), Verdict: measure.VerdictSample,
				Answered: true, FirstDraw: d, Repaint: d + time.Duration(add*float64(time.Second))})
			res.Samples = append(res.Samples, measure.Sample{Index: j, Seq: j + 1, Value: x})
		}
		l.Measurement = &Measurement{Result: res}
		f := hostA
		if i == 1 {
			f = hostB
		}
		l.Hosts = []results.HostBlock{results.NewHostBlock(1, f, len(v), nil, 0)}
		ab.Legs[i] = l
	}
	return ab
}

func latencies(rng *rand.Rand, n int, median, tail float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = max(0.001, median+(rng.ExpFloat64()-math.Ln2)*tail)
	}
	return v
}

var quietHost = host.Figures{Cores: 2, Reads: 100, RunnableMean: 1.2, Lag: host.Lag{Ticks: 1000, P50S: 0.0001, P99S: 0.0008, MaxS: 0.002}}

func TestABVerdict(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 20))
	busyHost := host.Figures{Cores: 2, Reads: 100, RunnableMean: 7.5, Load1Max: 8.6, Lag: host.Lag{Ticks: 1000, P50S: 0.001, P99S: 0.018, MaxS: 0.090}}

	t.Run("the issue: wide noise on a busy host is not a pass", func(t *testing.T) {
		// A first-draw median of 83 ms, p95 near 250 ms, on a path that
		// is 20 ms on a quiet host; the difference is not significant.
		ab := abWith(t, latencies(rng, 60, 0.083, 0.080), latencies(rng, 60, 0.083, 0.080), 0, busyHost, busyHost)
		c := ab.Compare()
		require.Len(t, c.Metrics, 2)
		for _, m := range c.Metrics {
			assert.False(t, m.Significant, "the old rule passed on this: %s", m.Verdict)
			assert.Greater(t, m.DifferenceCIS[1], 0.010)
			assert.Equal(t, "inconclusive", m.Outcome)
			assert.NotZero(t, m.SamplesNeeded)
			assert.NotEmpty(t, m.Widened)
		}
		assert.Equal(t, results.ABInconclusive, c.Verdict)
		why := strings.Join(c.Reasons, "; ")
		assert.Contains(t, why, "keypress_to_screen: inconclusive: B−A")
		assert.Contains(t, why, "widened most by")
		assert.Contains(t, why, "host noise: leg A timer lag p99 18.0 ms")
		assert.Contains(t, why, "the host was too busy")
		assert.NotEmpty(t, c.HostBusy)
		require.NotNil(t, c.A.Host)
		assert.Len(t, c.A.Host.Blocks, 1, "per block")
	})

	t.Run("quiet and equal: pass", func(t *testing.T) {
		ab := abWith(t, latencies(rng, 60, 0.020, 0.004), latencies(rng, 60, 0.020, 0.004), 0.002, quietHost, quietHost)
		c := ab.Compare()
		assert.Equal(t, results.ABPass, c.Verdict, "%v", c.Reasons)
		for _, m := range c.Metrics {
			assert.Equal(t, "pass", m.Outcome)
			assert.Less(t, m.DifferenceCIS[1], 0.010)
		}
		assert.Empty(t, c.HostBusy)
	})

	t.Run("narrow interval on a busy host: inconclusive, naming the host", func(t *testing.T) {
		ab := abWith(t, latencies(rng, 60, 0.020, 0.004), latencies(rng, 60, 0.020, 0.004), 0.002, quietHost, busyHost)
		c := ab.Compare()
		for _, m := range c.Metrics {
			assert.Equal(t, "pass", m.Outcome, "the numbers alone would pass")
		}
		assert.Equal(t, results.ABInconclusive, c.Verdict)
		assert.Contains(t, strings.Join(c.Reasons, "; "), "leg B: 7.5 runnable tasks on average")
	})

	t.Run("nagle: the repaint fails, the first draw passes", func(t *testing.T) {
		a := latencies(rng, 60, 0.020, 0.004)
		ab := abWith(t, a, latencies(rng, 60, 0.020, 0.004), 0.002, quietHost, quietHost)
		// B's repaint ends 40 ms later: the delayed ACK.
		for i := range ab.Legs[1].Measurement.Result.Presses {
			ab.Legs[1].Measurement.Result.Presses[i].Repaint += 40 * time.Millisecond
		}
		c := ab.Compare()
		assert.Equal(t, results.ABFail, c.Verdict)
		assert.Equal(t, "pass", c.Metrics[0].Outcome)
		assert.Equal(t, "fail", c.Metrics[1].Outcome)
		assert.True(t, c.Metrics[1].Fails)
		assert.Contains(t, strings.Join(c.Reasons, "; "), "keypress_to_repaint: B adds ")
	})

	t.Run("a failure is told before an inconclusive figure", func(t *testing.T) {
		ab := abWith(t, latencies(rng, 60, 0.020, 0.004), latencies(rng, 60, 0.020, 0.040), 0.002, quietHost, quietHost)
		for i := range ab.Legs[1].Measurement.Result.Presses {
			ab.Legs[1].Measurement.Result.Presses[i].Repaint = ab.Legs[0].Measurement.Result.Presses[i].Repaint + 60*time.Millisecond
		}
		c := ab.Compare()
		require.Equal(t, results.ABFail, c.Verdict, "%v", c.Reasons)
		require.Equal(t, "inconclusive", c.Metrics[0].Outcome, c.Metrics[0].Verdict)
		assert.True(t, strings.HasPrefix(c.Reasons[0], "keypress_to_repaint: B adds "), c.Reasons[0])
	})

	t.Run("a leg without samples: incomplete", func(t *testing.T) {
		ab := abWith(t, latencies(rng, 60, 0.020, 0.004), nil, 0, quietHost, quietHost)
		assert.Equal(t, results.ABIncomplete, ab.Compare().Verdict)
	})
}
