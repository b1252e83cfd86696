package compare

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/shakenfist/kerbside-latency/harness/results"
)

// DefaultMaxAdded is the threshold latency-compare judges "no worse
// than" by when it is given none: the loadtest's own default for
// LATENCY_AB_MAX_ADDED, 10 ms, in seconds.
const DefaultMaxAdded = 0.010

// Outcome is what the numbers prove about B against A.
type Outcome string

const (
	// Pass: the upper end of the confidence interval of B − A lies below
	// the threshold; B adds less than it, at the interval's confidence.
	Pass Outcome = "pass"
	// Fail: B adds more than the threshold, and the difference is
	// significant.
	Fail Outcome = "fail"
	// Inconclusive: neither: the interval reaches above the threshold
	// without a significant difference beyond it. The noise is wider
	// than the question; more samples (or a quieter host) can answer it.
	Inconclusive Outcome = "inconclusive"
)

// Equivalence is the judgement of median(b) − median(a) against a
// threshold: an equivalence check, not the absence of significance. "No
// significant difference" is not "no difference": a regression larger
// than the threshold passes a significance test whenever the noise is
// wider still.
type Equivalence struct {
	Outcome Outcome
	// Difference is median(b) − median(a); Lo and Hi bound its
	// confidence interval at Confidence (bootstrap, DifferenceCI).
	Difference, Lo, Hi float64
	// Threshold is the most b may add.
	Threshold float64
	// P is the Mann-Whitney U test's p-value, Significant P <= alpha.
	P           float64
	Significant bool
	// NA and NB are the sample counts; SEA and SEB the bootstrap
	// standard errors of each median, which say which side widened the
	// interval (its share of the variance of the difference).
	NA, NB   int
	SEA, SEB float64
	// SamplesNeeded is about how many samples per side would bring Hi
	// below Threshold at the spread measured, for an inconclusive
	// outcome; -1 when no number can (the difference itself is at or
	// above the threshold: more samples can only show a failure).
	SamplesNeeded int
}

// Equivalent judges b against a: Pass when the upper end of the
// Confidence interval of median(b) − median(a) lies below threshold,
// Fail when the difference is above threshold and significant at alpha
// (Mann-Whitney), Inconclusive otherwise. Both sides need at least two
// samples.
func Equivalent(a, b []float64, threshold, alpha float64) (Equivalence, error) {
	if len(a) < 2 || len(b) < 2 {
		return Equivalence{}, fmt.Errorf("judge equivalence: %d and %d samples; want at least 2 on each side", len(a), len(b))
	}
	if !(threshold > 0) || math.IsInf(threshold, 0) {
		return Equivalence{}, fmt.Errorf("judge equivalence: threshold %v; want a finite number above 0", threshold)
	}
	c, err := Runs(benchRun("A", a), benchRun("B", b), alpha)
	if err != nil {
		return Equivalence{}, fmt.Errorf("judge equivalence: %w", err)
	}
	lo, hi, _ := DifferenceCI(a, b, Confidence)
	e := Equivalence{
		Difference: c.Difference(), Lo: lo, Hi: hi, Threshold: threshold,
		P: c.P, Significant: c.Significant, NA: len(a), NB: len(b),
		SEA: MedianSE(a), SEB: MedianSE(b),
	}
	switch {
	case hi < threshold:
		e.Outcome = Pass
	case e.Significant && e.Difference > threshold:
		e.Outcome = Fail
	default:
		e.Outcome = Inconclusive
		e.SamplesNeeded = samplesNeeded(min(e.NA, e.NB), e.Difference, hi, threshold)
	}
	return e, nil
}

// samplesNeeded scales the interval's upper half-width as 1/sqrt(n):
// at n' samples per side the upper end is d + (hi−d)·sqrt(n/n').
func samplesNeeded(n int, d, hi, threshold float64) int {
	if d >= threshold {
		return -1
	}
	half := hi - d
	room := threshold - d
	need := float64(n) * (half / room) * (half / room)
	if need > 1e6 {
		return 1e6
	}
	return int(math.Ceil(need))
}

// Widened names the side whose median varies most, with its share of
// the variance of the difference: "A (78% of the variance, its median
// ±4.1 ms)".
func (e Equivalence) Widened() string {
	va, vb := e.SEA*e.SEA, e.SEB*e.SEB
	if va+vb == 0 {
		return "neither side (both medians are exact)"
	}
	side, v, se := "A", va, e.SEA
	if vb > va {
		side, v, se = "B", vb, e.SEB
	}
	return fmt.Sprintf("%s (%.0f%% of the variance of the difference; its median varies by ±%.1f ms, against ±%.1f ms for the other)",
		side, 100*v/(va+vb), 1000*se, 1000*min(e.SEA, e.SEB))
}

// Explain says the outcome in one sentence: the interval against the
// threshold and, when inconclusive, what widened it and how many samples
// might narrow it.
func (e Equivalence) Explain() string {
	iv := fmt.Sprintf("B−A %+.1f ms, %.0f%% CI [%+.1f, %+.1f] ms, p=%.3g", 1000*e.Difference, 100*Confidence, 1000*e.Lo, 1000*e.Hi, e.P)
	thr := fmt.Sprintf("%.1f ms", 1000*e.Threshold)
	switch e.Outcome {
	case Pass:
		return fmt.Sprintf("pass: %s; the upper end lies below %s", iv, thr)
	case Fail:
		return fmt.Sprintf("fail: B adds %.1f ms (%s), more than %s", 1000*e.Difference, iv, thr)
	}
	need := "no number of samples can narrow it below the threshold: the difference itself is at or above it"
	if e.SamplesNeeded > 0 {
		need = fmt.Sprintf("about %d samples per leg (now %d and %d) would narrow it below %s at the spread measured", e.SamplesNeeded, e.NA, e.NB, thr)
	}
	return fmt.Sprintf("inconclusive: %s; the upper end reaches %s or more without a significant difference beyond it; widened most by %s; %s",
		iv, thr, e.Widened(), need)
}

// MedianSE is the bootstrap standard error of the median of v (seeded,
// so the same samples give the same figure); 0 for fewer than two.
func MedianSE(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	rng := rand.New(rand.NewPCG(uint64(len(v)), 7))
	r := make([]float64, len(v))
	var sum, sum2 float64
	for range bootstrapRounds {
		for j := range r {
			r[j] = v[rng.IntN(len(v))]
		}
		m := median(r)
		sum += m
		sum2 += m * m
	}
	n := float64(bootstrapRounds)
	mean := sum / n
	return math.Sqrt(max(0, sum2/n-mean*mean))
}

// IQR is the interquartile range of v (linear interpolation), a spread
// that a few stalls do not dominate.
func IQR(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	q := func(p float64) float64 {
		h := p * float64(len(s)-1)
		i := int(h)
		if i >= len(s)-1 {
			return s[len(s)-1]
		}
		return s[i] + (h-float64(i))*(s[i+1]-s[i])
	}
	return q(0.75) - q(0.25)
}

func benchRun(label string, v []float64) results.BenchRun {
	return results.BenchRun{Source: label, Consoles: []results.BenchConsole{{Label: label, Samples: v}}}
}
