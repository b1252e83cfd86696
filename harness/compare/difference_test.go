package compare

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDifferenceCICoversTheShift(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(centre float64, n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = centre + rng.NormFloat64()*0.003
		}
		return v
	}
	a, b := gen(0.020, 60), gen(0.060, 60)
	lo, hi, ok := DifferenceCI(a, b, 0.95)
	assert.True(t, ok)
	assert.Less(t, lo, 0.040)
	assert.Greater(t, hi, 0.040)
	assert.Greater(t, lo, 0.030, "a 40 ms shift with 3 ms noise is well resolved")
	lo2, hi2, _ := DifferenceCI(a, b, 0.95)
	assert.Equal(t, [2]float64{lo, hi}, [2]float64{lo2, hi2}, "seeded: the same samples give the same interval")

	c := gen(0.020, 60)
	lo, hi, _ = DifferenceCI(a, c, 0.95)
	assert.Less(t, lo, 0.0)
	assert.Greater(t, hi, 0.0, "no shift: the interval holds zero")

	_, _, ok = DifferenceCI([]float64{1}, b, 0.95)
	assert.False(t, ok)
}
