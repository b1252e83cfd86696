package compare

import (
	"math/rand/v2"
	"slices"

	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// QuantileCI is a percentile-bootstrap confidence interval, at level
// (e.g. 0.95), for the p-th percentile of v (p in [0, 100], the
// interpolation of stats.Percentile), seeded like DifferenceCI. A tail
// percentile of few samples is barely resampled, which the interval
// shows by its width. ok is false for fewer than two samples.
func QuantileCI(v []float64, p, level float64) (lo, hi float64, ok bool) {
	if len(v) < 2 || level <= 0 || level >= 1 {
		return 0, 0, false
	}
	rng := rand.New(rand.NewPCG(uint64(len(v)), uint64(p*1000)+11))
	qs := make([]float64, bootstrapRounds)
	r := make([]float64, len(v))
	for i := range qs {
		for j := range r {
			r[j] = v[rng.IntN(len(v))]
		}
		slices.Sort(r)
		qs[i] = stats.Percentile(r, p)
	}
	return interval(qs, level)
}

// QuantileDifferenceCI is a percentile-bootstrap confidence interval,
// at level, for percentile(b, p) − percentile(a, p): how much b's tail
// lies above a's (a ramp's step against its baseline), seeded. ok is
// false when either side has fewer than two samples.
func QuantileDifferenceCI(a, b []float64, p, level float64) (lo, hi float64, ok bool) {
	if len(a) < 2 || len(b) < 2 || level <= 0 || level >= 1 {
		return 0, 0, false
	}
	rng := rand.New(rand.NewPCG(uint64(len(a))<<20|uint64(len(b)), uint64(p*1000)+13))
	return interval(bootstrapDifference(a, b, rng, func(v []float64) float64 {
		slices.Sort(v)
		return stats.Percentile(v, p)
	}), level)
}

// interval sorts draws and returns their central level interval.
func interval(draws []float64, level float64) (lo, hi float64, ok bool) {
	slices.Sort(draws)
	tail := (1 - level) / 2
	lo = draws[int(tail*float64(len(draws)))]
	hi = draws[min(len(draws)-1, int((1-tail)*float64(len(draws))))]
	return lo, hi, true
}
