package measure

import (
	"math"
	"time"
)

const (
	// minPatternGaps is the fewest gaps from which a pattern is named.
	minPatternGaps = 5
	// steadyCV and burstyCV bound the coefficient of variation of the
	// gaps: a periodic source is near 0, a Poisson one near 1.
	steadyCV = 0.5
	burstyCV = 1.5
	// minBackgroundEvidence is the fewest background draws on which the
	// run is failed before its end: one stray draw in a short observation
	// would otherwise give a wild rate.
	minBackgroundEvidence = 5
)

// background counts the draws no key caused, in observation intervals
// between presses, and the gaps between them in observed time (the time
// inside press windows cut out), with Welford's running variance.
type background struct {
	observing bool
	from      time.Time     // start of the open interval
	offset    time.Duration // observed time before the open interval
	observed  time.Duration // observed time of the closed intervals

	// the last closed interval, for draws that arrive after it closed
	lastFrom, lastTo time.Time
	lastOffset       time.Duration
	haveLast         bool

	draws    int
	lastPos  time.Duration
	havePos  bool
	gaps     int
	mean, m2 float64
}

// open starts an observation interval at at.
func (b *background) open(at time.Time) {
	if b.observing {
		return
	}
	b.observing, b.from, b.offset = true, at, b.observed
}

// close ends the open interval at at (a key down).
func (b *background) close(at time.Time) {
	if !b.observing {
		b.haveLast = false
		return
	}
	d := max(0, at.Sub(b.from))
	b.lastFrom, b.lastTo, b.lastOffset, b.haveLast = b.from, at, b.offset, true
	b.observed += d
	b.observing = false
}

// add counts a background draw drawn at w in the open interval, or, when
// none is open, in the last closed one (it arrived after the key down).
func (b *background) add(w time.Time) {
	b.draws++
	var pos time.Duration
	switch {
	case b.observing:
		pos = b.offset + clampDur(w.Sub(b.from), 0, math.MaxInt64)
	case b.haveLast:
		pos = b.lastOffset + clampDur(w.Sub(b.lastFrom), 0, b.lastTo.Sub(b.lastFrom))
	default:
		return
	}
	if b.havePos && pos >= b.lastPos {
		gap := (pos - b.lastPos).Seconds()
		b.gaps++
		delta := gap - b.mean
		b.mean += delta / float64(b.gaps)
		b.m2 += delta * (gap - b.mean)
	}
	if !b.havePos || pos >= b.lastPos {
		b.lastPos, b.havePos = pos, true
	}
}

// observedAt is the observed time including the open interval up to now.
func (b *background) observedAt(now time.Time) time.Duration {
	if b.observing {
		return b.observed + max(0, now.Sub(b.from))
	}
	return b.observed
}

// rate is draws per second of observed time.
func (b *background) rate(now time.Time) float64 {
	obs := b.observedAt(now)
	if obs <= 0 {
		return 0
	}
	return float64(b.draws) / obs.Seconds()
}

// summary describes the background as of now.
func (b *background) summary(now time.Time) Background {
	s := Background{Draws: b.draws, Observed: b.observedAt(now), Rate: b.rate(now), Gaps: b.gaps}
	if b.draws > 0 && b.gaps >= minPatternGaps && b.mean > 0 {
		s.GapCV = math.Sqrt(b.m2/float64(b.gaps)) / b.mean
	}
	s.Pattern = patternOf(b.draws, b.gaps, s.GapCV)
	return s
}

// patternOf is the rule that names a background from its draws, the
// number of gaps between them and the gaps' coefficient of variation.
func patternOf(draws, gaps int, cv float64) Pattern {
	switch {
	case draws == 0:
		return PatternNone
	case gaps < minPatternGaps:
		return PatternUnknown
	case cv < steadyCV:
		return PatternSteady
	case cv > burstyCV:
		return PatternBursty
	default:
		return PatternRandom
	}
}

// contamination is the estimated share of samples changed by a
// background draw at rate (per second) for a median exposure.
func contamination(rate float64, exposure time.Duration) float64 {
	return min(1, rate*exposure.Seconds())
}

func clampDur(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }
