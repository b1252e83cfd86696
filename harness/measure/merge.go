package measure

import (
	"math"
	"slices"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// Merge combines the Results of measurements taken one after another on
// the same console (the blocks of an A/B leg) into one, as if they had
// been one run: samples, misses and presses in order and renumbered,
// counters summed, both keypress figures summarised again over every
// sampled press, and the background judged over all observed time. The
// Config is the first part's; the stop reason is the last part's that is
// not samples_reached (or samples_reached).
func Merge(parts ...Result) Result {
	if len(parts) == 0 {
		return Result{}
	}
	out := Result{Config: parts[0].Config, Start: parts[0].Start, StopReason: StopSamplesReached}
	var first, repaint, exposure []float64
	var gapCV, gaps float64
	for _, p := range parts {
		seqBase := len(out.Presses)
		if !out.Config.Metric.Keypress() {
			seqBase = len(out.Samples) + out.InvalidPings
		}
		for _, s := range p.Samples {
			s.Index = len(out.Samples)
			s.Seq += seqBase
			out.Samples = append(out.Samples, s)
		}
		for _, m := range p.Misses {
			m.Seq += seqBase
			out.Misses = append(out.Misses, m)
		}
		for _, st := range p.Stalls {
			st.Press += seqBase
			out.Stalls = append(out.Stalls, st)
		}
		for _, pr := range p.Presses {
			pr.Number += seqBase
			out.Presses = append(out.Presses, pr)
			if pr.Verdict == VerdictSample {
				first = append(first, pr.FirstDraw.Seconds())
				repaint = append(repaint, pr.Repaint.Seconds())
			}
		}
		out.Suspects += p.Suspects
		out.UnpairedDraws += p.UnpairedDraws
		out.LateDraws += p.LateDraws
		out.QuietDelayed += p.QuietDelayed
		out.QuietWait += p.QuietWait
		out.Dropped += p.Dropped
		out.KeyErrors += p.KeyErrors
		out.InvalidPings += p.InvalidPings
		out.MaxDrawLag = max(out.MaxDrawLag, p.MaxDrawLag)
		b := p.Background
		out.Background.Draws += b.Draws
		out.Background.Observed += b.Observed
		out.Background.Gaps += b.Gaps
		if b.Gaps > 0 {
			gapCV += b.GapCV * float64(b.Gaps)
			gaps += float64(b.Gaps)
		}
		if b.Exposure > 0 {
			exposure = append(exposure, b.Exposure.Seconds())
		}
		if p.StopReason != StopSamplesReached && p.StopReason != "" {
			out.StopReason = p.StopReason
		}
		if p.End.After(out.End) {
			out.End = p.End
		}
	}
	if out.Config.Metric.Keypress() {
		out.FirstDraw, out.Repaint = stats.Summarize(first), stats.Summarize(repaint)
	}
	b := &out.Background
	if b.Observed > 0 {
		b.Rate = float64(b.Draws) / b.Observed.Seconds()
	}
	if gaps > 0 {
		b.GapCV = gapCV / gaps
	}
	b.Pattern = patternOf(b.Draws, b.Gaps, b.GapCV)
	if len(exposure) > 0 {
		slices.Sort(exposure)
		b.Exposure = time.Duration(exposure[len(exposure)/2] * float64(time.Second))
	}
	if len(out.Samples) > 0 {
		b.Contamination = math.Min(1, b.Rate*b.Exposure.Seconds())
	}
	return out
}
