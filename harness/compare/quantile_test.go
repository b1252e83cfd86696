package compare

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestQuantileDifferenceCICoversATailShift(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a, b := make([]float64, 60), make([]float64, 60)
	for i := range a {
		a[i] = 0.020 + 0.005*rng.Float64()
		b[i] = 0.050 + 0.005*rng.Float64()
	}
	lo, hi, ok := QuantileDifferenceCI(a, b, 95, 0.95)
	assert.True(t, ok)
	assert.Less(t, lo, 0.030)
	assert.Greater(t, hi, 0.030)
	assert.Greater(t, lo, 0.020, "a 30 ms shift is proven above 20 ms")
	lo2, hi2, _ := QuantileDifferenceCI(a, b, 95, 0.95)
	assert.Equal(t, [2]float64{lo, hi}, [2]float64{lo2, hi2}, "seeded")
	_, _, ok = QuantileDifferenceCI(a[:1], b, 95, 0.95)
	assert.False(t, ok)

	qlo, qhi, ok := QuantileCI(a, 50, 0.95)
	assert.True(t, ok)
	assert.Less(t, qlo, 0.0225+0.001)
	assert.Greater(t, qhi, 0.0225-0.001)
	_, _, ok = QuantileCI(nil, 50, 0.95)
	assert.False(t, ok)
}
