package ramp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/compare"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// MinStepSamples is the fewest samples of a step whose p95 the ramp
// judges: below it the 95th percentile is one of the last one or two
// samples, and a step so short is inconclusive, never a pass.
const MinStepSamples = 20

// SaturatedShare is the share of the host's cores at which the
// processes that make and measure the load (the harness, the load
// generator, QEMU, the measuring client: everything but the proxy)
// saturate the host: beyond it the proxy competes for what is left, and
// a rise in latency is the host's, not the proxy's.
const SaturatedShare = 0.85

// Confidence is the level of every interval the ramp reports.
const Confidence = compare.Confidence

// The verdicts of a ramp.
const (
	// NoKnee: no step's repaint p95 is proven above the baseline's by
	// the margin, on a host that kept up.
	NoKnee = "no-knee"
	// Knee: a step's repaint p95 is proven above the baseline's by more
	// than the margin (Judgement.Knee names the first).
	Knee = "knee"
	// HostBound: the host saturated (its cores, or its busy rule) at or
	// before the knee, or anywhere in a ramp without one: what rose, or
	// did not, says nothing of the proxy.
	HostBound = "host-bound"
	// Inconclusive: a step has too few samples, or the numbers cannot
	// prove what LATENCY_LOAD_TARGET asks.
	Inconclusive = "inconclusive"
)

// ProxyRole is the role of the proxy's process: its CPU is the one the
// saturation of the host leaves out.
const ProxyRole = "proxy"

// RoleCPU is how much of a core one role's processes took over a step
// (1 is a whole core all along).
type RoleCPU struct {
	Role  string
	Share float64
}

// Step is what the measured console saw at one step, over all its
// blocks.
type Step struct {
	Sessions int
	// FirstDraw and Repaint are the two keypress figures' samples, in
	// seconds.
	FirstDraw, Repaint []float64
	// Want is how many samples the step was to take.
	Want int
	// HostBusy says why the host was too busy to measure to a few
	// milliseconds in any of the step's blocks (host.Figures.Judge).
	HostBusy []string
	// CPU is each role's share of a core over the step.
	CPU []RoleCPU
}

// Rules are what a ramp is judged by.
type Rules struct {
	// MaxAdded is LATENCY_LOAD_MAX_ADDED, in seconds.
	MaxAdded float64
	// Target is LATENCY_LOAD_TARGET when TargetSet: the run fails when
	// the knee is at or below it, and passes only when every step at or
	// below it is proven within MaxAdded.
	Target    int
	TargetSet bool
	// Cores are the host's CPUs.
	Cores int
}

// Figure is one keypress figure at one step: its percentiles with
// bootstrap intervals, in seconds.
type Figure struct {
	N                   int
	P50, P95, P99       float64
	P50CI, P95CI, P99CI [2]float64
}

// NewFigure summarises samples (seconds).
func NewFigure(v []float64) Figure {
	f := Figure{N: len(v)}
	if len(v) == 0 {
		return f
	}
	s := stats.Summarize(v)
	f.P50, f.P95, f.P99 = s.P50, s.P95, s.P99
	for _, q := range []struct {
		p  float64
		ci *[2]float64
	}{{50, &f.P50CI}, {95, &f.P95CI}, {99, &f.P99CI}} {
		if lo, hi, ok := compare.QuantileCI(v, q.p, Confidence); ok {
			*q.ci = [2]float64{lo, hi}
		}
	}
	return f
}

// StepJudgement is one step judged against the baseline.
type StepJudgement struct {
	Sessions int
	Samples  int
	// P95AddedS is the step's repaint p95 less the baseline's;
	// P95AddedCIS its bootstrap interval (zero for the baseline or a
	// step too short to judge).
	P95AddedS   float64
	P95AddedCIS [2]float64
	// Above: the interval's lower end is above MaxAdded (a knee).
	// Within: its upper end is below MaxAdded (proven within).
	Above, Within bool
	// TooFew: fewer than MinStepSamples samples, or fewer than the step
	// was to take.
	TooFew bool
	// Saturated says why the host saturated during the step ("" when it
	// did not).
	Saturated string
	// LoadCores is the cores everything but the proxy took.
	LoadCores float64
}

// Judgement is a ramp's verdict.
type Judgement struct {
	Steps []StepJudgement
	// Verdict is NoKnee, Knee, HostBound or Inconclusive.
	Verdict string
	// Knee is the sessions of the first step proven above the margin;
	// -1 when there is none.
	Knee int
	// Fails says whether the run fails: a knee at or below the target,
	// a host-bound or inconclusive ramp.
	Fails bool
	// Reasons say the verdict in words, the deciding one first.
	Reasons []string
}

// Judge finds the knee of steps (steps[0] the baseline, 0 sessions) and
// gives the verdict. A host that saturated at or before the knee (or
// anywhere, without a knee) wins over the knee; a step too short to
// judge at or before it makes the ramp inconclusive.
func Judge(steps []Step, r Rules) Judgement {
	j := Judgement{Knee: -1}
	if len(steps) == 0 {
		j.Verdict, j.Fails = Inconclusive, true
		j.Reasons = []string{"no step was measured"}
		return j
	}
	base := steps[0].Repaint
	for i, s := range steps {
		sj := StepJudgement{Sessions: s.Sessions, Samples: len(s.Repaint)}
		sj.TooFew = len(s.Repaint) < MinStepSamples || len(s.Repaint) < s.Want
		sj.Saturated, sj.LoadCores = saturation(s, r.Cores)
		if i > 0 && !sj.TooFew && len(base) >= MinStepSamples {
			b, v := slices.Clone(base), slices.Clone(s.Repaint)
			slices.Sort(b)
			slices.Sort(v)
			sj.P95AddedS = stats.Percentile(v, 95) - stats.Percentile(b, 95)
			if lo, hi, ok := compare.QuantileDifferenceCI(base, s.Repaint, 95, Confidence); ok {
				sj.P95AddedCIS = [2]float64{lo, hi}
				sj.Above, sj.Within = lo > r.MaxAdded, hi < r.MaxAdded
			}
		}
		j.Steps = append(j.Steps, sj)
		if i > 0 && sj.Above && j.Knee < 0 {
			j.Knee = s.Sessions
		}
	}
	// The steps that decide: up to the knee, or all of them.
	upTo := len(j.Steps)
	for i, sj := range j.Steps {
		if sj.Sessions == j.Knee {
			upTo = i + 1
			break
		}
	}
	var saturated, short []string
	for _, sj := range j.Steps[:upTo] {
		if sj.Saturated != "" {
			saturated = append(saturated, fmt.Sprintf("at %d sessions: %s", sj.Sessions, sj.Saturated))
		}
		if sj.TooFew {
			short = append(short, fmt.Sprintf("%d sessions: %d samples", sj.Sessions, sj.Samples))
		}
	}
	thr := fmt.Sprintf("%.1f ms", 1000*r.MaxAdded)
	switch {
	case len(saturated) > 0:
		j.Verdict, j.Fails = HostBound, true
		what := "before the ramp reached a knee of the proxy"
		if j.Knee >= 0 {
			what = fmt.Sprintf("at or before the rise at %d sessions, which is therefore not the proxy's knee", j.Knee)
		}
		j.Reasons = append(j.Reasons, fmt.Sprintf("the host (%d cores) was saturated %s (%s); measure on a larger or quieter host, or with fewer busy sessions per host",
			r.Cores, what, strings.Join(saturated, "; ")))
	case len(short) > 0:
		j.Verdict, j.Fails = Inconclusive, true
		j.Reasons = append(j.Reasons, fmt.Sprintf("steps with too few samples to judge their p95 (at least %d, and all asked for, are needed): %s; raise LATENCY_SAMPLES or LATENCY_MAX_DURATION",
			MinStepSamples, strings.Join(short, ", ")))
	case j.Knee >= 0:
		j.Verdict = Knee
		sj := j.Steps[upTo-1]
		j.Reasons = append(j.Reasons, fmt.Sprintf("knee at %d sessions: the repaint p95 is %+.1f ms above the baseline's (%.0f%% CI [%+.1f, %+.1f] ms), more than LATENCY_LOAD_MAX_ADDED=%s",
			j.Knee, 1000*sj.P95AddedS, 100*Confidence, 1000*sj.P95AddedCIS[0], 1000*sj.P95AddedCIS[1], thr))
	default:
		j.Verdict = NoKnee
		j.Reasons = append(j.Reasons, fmt.Sprintf("no knee up to %d sessions: no step's repaint p95 is proven more than %s above the baseline's", steps[len(steps)-1].Sessions, thr))
	}
	if !r.TargetSet || j.Fails {
		return j
	}
	if j.Verdict == Knee && j.Knee <= r.Target {
		j.Fails = true
		j.Reasons = slices.Insert(j.Reasons, 0, fmt.Sprintf("the knee (%d sessions) is at or below LATENCY_LOAD_TARGET=%d", j.Knee, r.Target))
		return j
	}
	// A pass at the target needs every step up to it proven within.
	var unproven []string
	for _, sj := range j.Steps[1:] {
		if sj.Sessions <= r.Target && !sj.Within {
			unproven = append(unproven, fmt.Sprintf("%d sessions (p95 %+.1f ms, CI up to %+.1f ms)", sj.Sessions, 1000*sj.P95AddedS, 1000*sj.P95AddedCIS[1]))
		}
	}
	if len(unproven) > 0 {
		j.Verdict, j.Fails = Inconclusive, true
		j.Reasons = slices.Insert(j.Reasons, 0, fmt.Sprintf("at LATENCY_LOAD_TARGET=%d the upper end of the interval of the p95 added does not lie below %s at %s; more samples (LATENCY_SAMPLES) or a quieter host can settle it",
			r.Target, thr, strings.Join(unproven, ", ")))
	}
	return j
}

// saturation says why the host saturated during s ("" when it did
// not): its busy rule, or everything but the proxy taking
// SaturatedShare of its cores. It also returns the cores everything
// but the proxy took.
func saturation(s Step, cores int) (string, float64) {
	var load float64
	var parts []string
	for _, c := range s.CPU {
		if c.Role == ProxyRole {
			continue
		}
		load += c.Share
		parts = append(parts, fmt.Sprintf("%s %.2f", c.Role, c.Share))
	}
	var why []string
	if cores > 0 && load >= SaturatedShare*float64(cores) {
		why = append(why, fmt.Sprintf("everything but the proxy took %.2f of %d cores (%s), at or above %.0f%% of them",
			load, cores, strings.Join(parts, ", "), 100*SaturatedShare))
	}
	why = append(why, s.HostBusy...)
	return strings.Join(why, "; "), load
}
