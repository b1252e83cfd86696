package ramp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/compare"
	"github.com/shakenfist/kerbside-latency/harness/measure"
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
	// Overloaded: the measured console could not be measured at a step
	// (LoadFailure) on a host that kept up: the proxy could not carry
	// that many sessions, so the knee is at or below it
	// (Judgement.Overloaded names the step), and no step above it was
	// run.
	Overloaded = "overloaded"
)

// LoadFailure says whether err, the error of a block measured with
// sessions busy sessions beside the measured console, is the load's:
// the console could not be measured with that many sessions, as it
// could at the baseline (its presses went unanswered or answered only
// after the window LATENCY_MAX_MISSES times in a row, it stalled, or
// its repaints came apart into draws no key could be said to cause).
// Anything else is not the load's and ends the ramp as an error: a
// failure at the baseline (it has no load), an interrupt or
// LATENCY_MAX_DURATION (the context's errors), ryll or the console
// exiting, a lost control connection, a setup step. cause says what
// the console did, in a few words. Whether the proxy or the host could
// not carry the load is Judge's to say (Step.Failed).
func LoadFailure(sessions int, err error) (cause string, ok bool) {
	if err == nil || sessions == 0 || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "", false
	}
	for _, f := range []struct {
		err   error
		cause string
	}{
		{measure.ErrStall, "the measured console stalled"},
		{measure.ErrLateDraws, "the measured console's draws came after the window, press after press"},
		{measure.ErrNoDraws, "no draw answered the measured console's presses"},
		{measure.ErrBackground, "the measured console's repaints came apart into draws no key caused"},
	} {
		if errors.Is(err, f.err) {
			return f.cause, true
		}
	}
	return "", false
}

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
	// Failed is the step's block that failed because of its load
	// (LoadFailure); nil when none did.
	Failed *FailedBlock
	// NotRun says the ramp left some or all of the step's blocks
	// untaken because this step or one below it failed at its load:
	// load only grows, so a step above one the proxy could not carry is
	// not measured.
	NotRun bool
}

// FailedBlock is a block that failed because of its load, with its own
// host figures: a host that saturated during it, not the proxy, may be
// what could not carry the load.
type FailedBlock struct {
	// Block is the block's number in the plan (1-based).
	Block int
	// Cause is LoadFailure's cause; Err the block's error in full.
	Cause, Err string
	// HostBusy and CPU are as Step's, over that block alone.
	HostBusy []string
	CPU      []RoleCPU
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
	// Failure is why a block of the step failed at its load ("" when
	// none did); Overloaded says the host kept up during that block, so
	// the proxy could not carry the step. NotRun is Step's. A step that
	// failed or was not run in full is not judged against the margin.
	Failure    string
	Overloaded bool
	NotRun     bool
}

// Judgement is a ramp's verdict.
type Judgement struct {
	Steps []StepJudgement
	// Verdict is NoKnee, Knee, Overloaded, HostBound or Inconclusive.
	Verdict string
	// Knee is the sessions of the first step proven above the margin;
	// -1 when there is none.
	Knee int
	// Overloaded is the sessions of the lowest step the proxy could not
	// carry (a block failed at its load on a host that kept up): the
	// knee is at or below it. -1 when there is none.
	Overloaded int
	// Fails says whether the run fails: a knee (or an overloaded step)
	// at or below the target, a host-bound or inconclusive ramp.
	Fails bool
	// Reasons say the verdict in words, the deciding one first.
	Reasons []string
}

// Judge finds the knee of steps (steps[0] the baseline, 0 sessions) and
// gives the verdict. The lowest step that failed at its load
// (Step.Failed) bounds the knee from above: only the steps below it are
// judged against the margin, and unless one of them is already the
// knee, the verdict is Overloaded at that step. A host that saturated
// at or before the knee, or at or before that step (during its failed
// block too), or anywhere in a ramp without either, wins over both:
// what rose, or failed, was the host's. A step too short to judge at or
// before a knee makes the ramp inconclusive.
func Judge(steps []Step, r Rules) Judgement {
	j := Judgement{Knee: -1, Overloaded: -1}
	if len(steps) == 0 {
		j.Verdict, j.Fails = Inconclusive, true
		j.Reasons = []string{"no step was measured"}
		return j
	}
	failed := slices.IndexFunc(steps, func(s Step) bool { return s.Failed != nil })
	base := steps[0].Repaint
	kneeAt := -1
	for i, s := range steps {
		sj := StepJudgement{Sessions: s.Sessions, Samples: len(s.Repaint), NotRun: s.NotRun}
		sj.Saturated, sj.LoadCores = saturation(s, r.Cores)
		if f := s.Failed; f != nil {
			sj.Failure = fmt.Sprintf("%s (block %d)", f.Cause, f.Block)
			if why, _ := saturation(Step{CPU: f.CPU, HostBusy: f.HostBusy}, r.Cores); why != "" {
				sj.Saturated = strings.TrimPrefix(sj.Saturated+"; during the block that failed: "+why, "; ")
			}
			sj.Overloaded = sj.Saturated == ""
		}
		// Only the steps below the lowest that failed are judged: it
		// and the steps above it were not measured in full.
		if judged := failed < 0 || i < failed; judged {
			sj.TooFew = len(s.Repaint) < MinStepSamples || len(s.Repaint) < s.Want
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
		}
		j.Steps = append(j.Steps, sj)
		if i > 0 && sj.Above && kneeAt < 0 {
			kneeAt, j.Knee = i, s.Sessions
		}
	}
	// The steps that decide: up to the knee, else up to the lowest step
	// that failed, else all of them.
	upTo := len(j.Steps)
	switch {
	case kneeAt >= 0:
		upTo = kneeAt + 1
	case failed >= 0:
		upTo = failed + 1
	}
	var saturated, short []string
	for i, sj := range j.Steps[:upTo] {
		if sj.Saturated != "" {
			saturated = append(saturated, fmt.Sprintf("at %d sessions: %s", sj.Sessions, sj.Saturated))
		}
		if sj.TooFew && (failed < 0 || i < failed) {
			short = append(short, fmt.Sprintf("%d sessions: %d samples", sj.Sessions, sj.Samples))
		}
	}
	var fail *StepJudgement
	if failed >= 0 && kneeAt < 0 {
		fail = &j.Steps[failed]
	}
	thr := fmt.Sprintf("%.1f ms", 1000*r.MaxAdded)
	switch {
	case len(saturated) > 0:
		j.Verdict, j.Fails = HostBound, true
		what := "before the ramp reached a knee of the proxy"
		switch {
		case j.Knee >= 0:
			what = fmt.Sprintf("at or before the rise at %d sessions, which is therefore not the proxy's knee", j.Knee)
		case fail != nil:
			what = fmt.Sprintf("at or before %d sessions, where the measured console could not be measured (%s), which is therefore not the proxy's limit", fail.Sessions, fail.Failure)
		}
		j.Reasons = append(j.Reasons, fmt.Sprintf("the host (%d cores) was saturated %s (%s); measure on a larger or quieter host, or with fewer busy sessions per host",
			r.Cores, what, strings.Join(saturated, "; ")))
	case failed == 0:
		// LoadFailure never blames the baseline's load; said, not assumed.
		j.Verdict, j.Fails = Inconclusive, true
		j.Reasons = append(j.Reasons, "the baseline (0 sessions) could not be measured: "+j.Steps[0].Failure)
	case len(short) > 0 && fail == nil:
		j.Verdict, j.Fails = Inconclusive, true
		j.Reasons = append(j.Reasons, fmt.Sprintf("steps with too few samples to judge their p95 (at least %d, and all asked for, are needed): %s; raise LATENCY_SAMPLES or LATENCY_MAX_DURATION",
			MinStepSamples, strings.Join(short, ", ")))
	case j.Knee >= 0:
		j.Verdict = Knee
		sj := j.Steps[upTo-1]
		j.Reasons = append(j.Reasons, fmt.Sprintf("knee at %d sessions: the repaint p95 is %+.1f ms above the baseline's (%.0f%% CI [%+.1f, %+.1f] ms), more than LATENCY_LOAD_MAX_ADDED=%s",
			j.Knee, 1000*sj.P95AddedS, 100*Confidence, 1000*sj.P95AddedCIS[0], 1000*sj.P95AddedCIS[1], thr))
		if failed >= 0 {
			f := j.Steps[failed]
			j.Reasons = append(j.Reasons, fmt.Sprintf("at %d sessions the measured console could not be measured: %s; no step above it was run (load only grows)", f.Sessions, f.Failure))
		}
	case fail != nil:
		j.Verdict, j.Overloaded = Overloaded, fail.Sessions
		why := fmt.Sprintf("overloaded at %d sessions: %s: the proxy could not carry them on a host that kept up, so the knee is at or below %d sessions",
			fail.Sessions, fail.Failure, fail.Sessions)
		if above := len(j.Steps) - failed - 1; above > 0 {
			why += fmt.Sprintf("; the %d step(s) above it were not run (load only grows)", above)
		}
		if len(short) > 0 {
			why += fmt.Sprintf("; below it, steps with too few samples to place the knee lower: %s", strings.Join(short, ", "))
		} else if failed > 1 {
			why += fmt.Sprintf("; no step below it is proven more than %s above the baseline", thr)
		}
		j.Reasons = append(j.Reasons, why)
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
	if j.Verdict == Overloaded && j.Overloaded <= r.Target {
		j.Fails = true
		j.Reasons = slices.Insert(j.Reasons, 0, fmt.Sprintf("the proxy could not carry %d sessions, at or below LATENCY_LOAD_TARGET=%d: the knee is at or below it", j.Overloaded, r.Target))
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
