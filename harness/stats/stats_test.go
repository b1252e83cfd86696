package stats

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Summary
	}{
		{name: "empty", in: nil, want: Summary{}},
		{name: "only non-finite", in: []float64{math.NaN(), math.Inf(1)}, want: Summary{}},
		{
			name: "one element",
			in:   []float64{0.25},
			want: Summary{Count: 1, Min: 0.25, Mean: 0.25, P50: 0.25, P90: 0.25, P95: 0.25, P99: 0.25, Max: 0.25},
		},
		{
			// Even count: the median interpolates halfway between the two
			// middle values; p90 has rank 0.9*3 = 2.7.
			name: "even count, unsorted",
			in:   []float64{4, 1, 3, 2},
			want: Summary{Count: 4, Min: 1, Mean: 2.5, P50: 2.5, P90: 3.7, P95: 3.85, P99: 3.97, Max: 4},
		},
		{
			name: "odd count",
			in:   []float64{5, 1, 3},
			want: Summary{Count: 3, Min: 1, Mean: 3, P50: 3, P90: 4.6, P95: 4.8, P99: 4.96, Max: 5},
		},
		{
			name: "eleven values 0..10",
			in:   []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
			want: Summary{Count: 11, Min: 0, Mean: 5, P50: 5, P90: 9, P95: 9.5, P99: 9.9, Max: 10},
		},
		{
			name: "non-finite values are left out",
			in:   []float64{2, math.NaN(), 1, math.Inf(-1)},
			want: Summary{Count: 2, Min: 1, Mean: 1.5, P50: 1.5, P90: 1.9, P95: 1.95, P99: 1.99, Max: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.in...)
			got := Summarize(in)
			assertSummary(t, tc.want, got)
			if len(tc.in) > 0 && !math.IsNaN(tc.in[0]) {
				assert.Equal(t, tc.in[0], in[0], "input must not be reordered")
			}
		})
	}
}

func assertSummary(t *testing.T, want, got Summary) {
	t.Helper()
	const eps = 1e-12
	assert.Equal(t, want.Count, got.Count, "count")
	assert.InDelta(t, want.Min, got.Min, eps, "min")
	assert.InDelta(t, want.Mean, got.Mean, eps, "mean")
	assert.InDelta(t, want.P50, got.P50, eps, "p50")
	assert.InDelta(t, want.P90, got.P90, eps, "p90")
	assert.InDelta(t, want.P95, got.P95, eps, "p95")
	assert.InDelta(t, want.P99, got.P99, eps, "p99")
	assert.InDelta(t, want.Max, got.Max, eps, "max")
}

func TestPercentileEdges(t *testing.T) {
	sorted := []float64{1, 2, 3}
	tests := []struct {
		p, want float64
	}{
		{p: -5, want: 1}, {p: 0, want: 1}, {p: 25, want: 1.5}, {p: 100, want: 3}, {p: 250, want: 3},
	}
	for _, tc := range tests {
		assert.InDelta(t, tc.want, Percentile(sorted, tc.p), 1e-12, "p=%v", tc.p)
	}
	assert.Zero(t, Percentile(nil, 50))
}

func TestSummaryJSON(t *testing.T) {
	t.Run("empty has nulls, not zeros or NaN", func(t *testing.T) {
		b, err := json.Marshal(Summarize(nil))
		require.NoError(t, err)
		assert.JSONEq(t, `{"count":0,"min":null,"mean":null,"p50":null,"p90":null,"p95":null,"p99":null,"max":null}`, string(b))
		var back Summary
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, Summary{}, back)
	})
	t.Run("round trip", func(t *testing.T) {
		s := Summarize([]float64{0.012, 0.034, 0.018})
		b, err := json.Marshal(s)
		require.NoError(t, err)
		assert.JSONEq(t, `{"count":3,"min":0.012,"mean":0.021333333333333333,"p50":0.018,"p90":0.0308,"p95":0.0324,"p99":0.03368,"max":0.034}`, string(b))
		var back Summary
		require.NoError(t, json.Unmarshal(b, &back))
		assertSummary(t, s, back)
	})
	t.Run("bad JSON is an error", func(t *testing.T) {
		var s Summary
		assert.Error(t, json.Unmarshal([]byte(`{"count":"x"}`), &s))
	})
}

func TestRunningMedian(t *testing.T) {
	var r Running
	_, ok := r.Median()
	assert.False(t, ok, "no median before any value")

	steps := []struct {
		add  float64
		want float64
	}{
		{add: 5, want: 5},
		{add: 1, want: 3},
		{add: 9, want: 5},
		{add: 2, want: 3.5},
		{add: math.NaN(), want: 3.5},
	}
	for _, s := range steps {
		r.Add(s.add)
		got, ok := r.Median()
		require.True(t, ok)
		assert.InDelta(t, s.want, got, 1e-12, "after adding %v", s.add)
	}
	assert.Equal(t, 4, r.Len())
}
