package compare

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skewed draws n latencies whose median is centre: an exponential tail
// of the given mean, shifted so that its median is at centre, as a busy
// host makes them.
func skewed(rng *rand.Rand, n int, centre, tail float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = centre + (rng.ExpFloat64()-math.Ln2)*tail + rng.NormFloat64()*0.002
	}
	return v
}

func TestEquivalent(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 12))
	const threshold = 0.010

	t.Run("quiet and equal: pass", func(t *testing.T) {
		e, err := Equivalent(skewed(rng, 60, 0.020, 0.002), skewed(rng, 60, 0.020, 0.002), threshold, DefaultAlpha)
		require.NoError(t, err)
		assert.Equal(t, Pass, e.Outcome, e.Explain())
		assert.Less(t, e.Hi, threshold)
		assert.Contains(t, e.Explain(), "the upper end lies below 10.0 ms")
	})

	t.Run("the issue's busy host: a wide interval is not a pass", func(t *testing.T) {
		// A first-draw median of 83 ms on a 20 ms path, a p95 near 250:
		// the difference is not significant, and its interval is wider
		// than a four-times-the-threshold regression.
		a := skewed(rng, 60, 0.020, 0.080)
		b := skewed(rng, 60, 0.020, 0.080)
		e, err := Equivalent(a, b, threshold, DefaultAlpha)
		require.NoError(t, err)
		assert.False(t, e.Significant, "the old rule would have passed this: %s", e.Explain())
		assert.Greater(t, e.Hi, threshold)
		assert.Equal(t, Inconclusive, e.Outcome)
		msg := e.Explain()
		assert.Contains(t, msg, "inconclusive: B−A")
		assert.Contains(t, msg, "widened most by")
		if e.Difference < threshold {
			assert.Greater(t, e.SamplesNeeded, 60, "more samples than were taken: %s", msg)
			assert.Contains(t, msg, "samples per leg (now 60 and 60)")
		}
	})

	t.Run("a real regression: fail", func(t *testing.T) {
		e, err := Equivalent(skewed(rng, 60, 0.020, 0.003), skewed(rng, 60, 0.060, 0.003), threshold, DefaultAlpha)
		require.NoError(t, err)
		assert.Equal(t, Fail, e.Outcome)
		assert.Contains(t, e.Explain(), "fail: B adds ")
		assert.InDelta(t, 0.040, e.Difference, 0.005)
	})

	t.Run("B noisier: B widened it", func(t *testing.T) {
		e, err := Equivalent(skewed(rng, 40, 0.020, 0.001), skewed(rng, 40, 0.020, 0.060), threshold, DefaultAlpha)
		require.NoError(t, err)
		require.Equal(t, Inconclusive, e.Outcome, e.Explain())
		assert.Contains(t, e.Widened(), "B (")
	})

	t.Run("too few samples", func(t *testing.T) {
		_, err := Equivalent([]float64{0.02}, []float64{0.02, 0.03}, threshold, DefaultAlpha)
		assert.ErrorContains(t, err, "at least 2")
		_, err = Equivalent([]float64{0.02, 0.03}, []float64{0.02, 0.03}, 0, DefaultAlpha)
		assert.ErrorContains(t, err, "threshold")
	})
}

// TestSamplesNeededNarrowsTheInterval: the estimate is about right: at
// twice the samples it asks for, from the same distributions, the upper
// end lies below the threshold.
func TestSamplesNeededNarrowsTheInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const threshold = 0.010
	a, b := skewed(rng, 20, 0.020, 0.012), skewed(rng, 20, 0.020, 0.012)
	e, err := Equivalent(a, b, threshold, DefaultAlpha)
	require.NoError(t, err)
	require.Equal(t, Inconclusive, e.Outcome, e.Explain())
	require.Greater(t, e.SamplesNeeded, 20)
	require.Less(t, e.SamplesNeeded, 5000, e.Explain())
	n := 2 * e.SamplesNeeded
	e2, err := Equivalent(skewed(rng, n, 0.020, 0.012), skewed(rng, n, 0.020, 0.012), threshold, DefaultAlpha)
	require.NoError(t, err)
	assert.Equal(t, Pass, e2.Outcome, "at %d samples: %s", n, e2.Explain())
}

func TestSamplesNeeded(t *testing.T) {
	assert.Equal(t, -1, samplesNeeded(60, 0.012, 0.020, 0.010), "a difference above the threshold cannot be narrowed to a pass")
	assert.Equal(t, 240, samplesNeeded(60, 0, 0.020, 0.010), "half the width needs four times the samples")
}

func TestMedianSEAndIQR(t *testing.T) {
	assert.Zero(t, MedianSE([]float64{1}))
	assert.Zero(t, MedianSE([]float64{2, 2, 2, 2}))
	rng := rand.New(rand.NewPCG(5, 6))
	narrow, wide := skewed(rng, 60, 0.02, 0.001), skewed(rng, 60, 0.02, 0.050)
	assert.Greater(t, MedianSE(wide), 3*MedianSE(narrow))
	assert.InDelta(t, 2.0, IQR([]float64{1, 2, 3, 4, 5}), 1e-12)
}
