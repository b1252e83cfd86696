package compare

import (
	"math/rand/v2"
	"slices"
)

// bootstrapRounds is how many resamples DifferenceCI draws: enough for a
// stable 95 % interval, cheap for a few hundred samples.
const bootstrapRounds = 2000

// DifferenceCI is a percentile-bootstrap confidence interval, at level
// (e.g. 0.95), for median(b) - median(a), in the samples' unit.
// benchmath gives an interval for each median, not for their difference;
// an A/B verdict needs the difference's. The resampling is seeded, so the
// same samples always give the same interval. It returns ok false when
// either side has fewer than two samples.
func DifferenceCI(a, b []float64, level float64) (lo, hi float64, ok bool) {
	if len(a) < 2 || len(b) < 2 || level <= 0 || level >= 1 {
		return 0, 0, false
	}
	rng := rand.New(rand.NewPCG(uint64(len(a)), uint64(len(b))))
	return interval(bootstrapDifference(a, b, rng, median), level)
}

// bootstrapDifference draws bootstrapRounds resamples of a and of b
// (with replacement, from rng) and returns stat(b) - stat(a) of each:
// the one bootstrap of a difference that the median's and a
// percentile's intervals share. stat may sort its argument.
func bootstrapDifference(a, b []float64, rng *rand.Rand, stat func([]float64) float64) []float64 {
	diffs := make([]float64, bootstrapRounds)
	ra, rb := make([]float64, len(a)), make([]float64, len(b))
	for i := range diffs {
		for j := range ra {
			ra[j] = a[rng.IntN(len(a))]
		}
		for j := range rb {
			rb[j] = b[rng.IntN(len(b))]
		}
		diffs[i] = stat(rb) - stat(ra)
	}
	return diffs
}

// median sorts v in place and returns its median.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
