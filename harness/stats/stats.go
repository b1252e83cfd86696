// Package stats summarises latency samples for the loadtest's progress log,
// JSON sidecar and summary table.
//
// Percentiles use linear interpolation between closest ranks (the method
// numpy calls "linear" and spreadsheets call PERCENTILE.INC, Hyndman and
// Fan's type 7): for p in [0, 100] over n sorted values x[0..n-1], the rank
// is h = p/100 * (n-1) and the result is x[floor(h)] + (h-floor(h)) *
// (x[floor(h)+1] - x[floor(h)]). It is chosen because it is what people
// checking our numbers with numpy or a spreadsheet will get by default, it
// never falls outside the observed range, and P0 and P100 are Min and Max.
package stats

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
)

// Summary describes a set of samples. All values are in the unit of the
// input (seconds for the loadtest).
//
// When Count is 0 every other field is zero and means nothing; JSON
// encoding writes them as null so that a reader cannot mistake "no
// samples" for "a latency of zero".
type Summary struct {
	Count int
	Min   float64
	Mean  float64
	P50   float64
	P90   float64
	P95   float64
	P99   float64
	Max   float64
}

// summaryJSON fixes the field names of the on-disk form, so renaming a Go
// field cannot silently change a file format other tools read.
type summaryJSON struct {
	Count int      `json:"count"`
	Min   *float64 `json:"min"`
	Mean  *float64 `json:"mean"`
	P50   *float64 `json:"p50"`
	P90   *float64 `json:"p90"`
	P95   *float64 `json:"p95"`
	P99   *float64 `json:"p99"`
	Max   *float64 `json:"max"`
}

// MarshalJSON writes snake_case fields, with null values when Count is 0.
func (s Summary) MarshalJSON() ([]byte, error) {
	out := summaryJSON{Count: s.Count}
	if s.Count > 0 {
		out.Min, out.Mean, out.P50, out.P90 = &s.Min, &s.Mean, &s.P50, &s.P90
		out.P95, out.P99, out.Max = &s.P95, &s.P99, &s.Max
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes; null values become zero.
func (s *Summary) UnmarshalJSON(b []byte) error {
	var in summaryJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	val := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	*s = Summary{
		Count: in.Count,
		Min:   val(in.Min), Mean: val(in.Mean),
		P50: val(in.P50), P90: val(in.P90), P95: val(in.P95), P99: val(in.P99),
		Max: val(in.Max),
	}
	return nil
}

// Summarize computes the Summary of values. The input is not modified.
// NaN and infinite values are left out (and not counted): they cannot be
// latencies and would make the JSON encoding fail.
func Summarize(values []float64) Summary {
	sorted := make([]float64, 0, len(values))
	sum := 0.0
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		sorted = append(sorted, v)
		sum += v
	}
	if len(sorted) == 0 {
		return Summary{}
	}
	slices.Sort(sorted)
	return Summary{
		Count: len(sorted),
		Min:   sorted[0],
		Mean:  sum / float64(len(sorted)),
		P50:   Percentile(sorted, 50),
		P90:   Percentile(sorted, 90),
		P95:   Percentile(sorted, 95),
		P99:   Percentile(sorted, 99),
		Max:   sorted[len(sorted)-1],
	}
}

// Percentile returns the p-th percentile (p in [0, 100], clamped) of
// sorted, which must be sorted ascending, by the interpolation described
// in the package comment. It returns 0 for an empty slice.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	p = max(0, min(100, p))
	h := p / 100 * float64(n-1)
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// Running keeps samples sorted as they arrive so that the progress log can
// print a median every few seconds without re-sorting the whole run. An
// insert costs O(n) moves, which is nothing at loadtest sample counts
// (hundreds to a few thousand). The zero value is ready to use; it is not
// safe for concurrent use.
type Running struct {
	sorted []float64
}

// Add records v. NaN and infinities are ignored, as in Summarize.
func (r *Running) Add(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	i := sort.SearchFloat64s(r.sorted, v)
	r.sorted = slices.Insert(r.sorted, i, v)
}

// Len returns the number of values added.
func (r *Running) Len() int { return len(r.sorted) }

// Median returns the median so far, and false when nothing was added.
func (r *Running) Median() (float64, bool) {
	if len(r.sorted) == 0 {
		return 0, false
	}
	return Percentile(r.sorted, 50), true
}
