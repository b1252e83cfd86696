package measure

import "time"

// drawKind is what a draw was to the press it was judged against.
type drawKind uint8

const (
	drawFirst   drawKind = iota // the press's first draw: its burst starts
	drawBurst                   // continues the burst inside the window
	drawOverrun                 // would continue the burst, but after the window
	drawLate                    // after the window of a press that got no first draw
	drawAfter                   // after the burst of an answered press: background
	drawBefore                  // drawn before the press was sent
)

// pressState is the one press being judged, and the hot path for draws:
// classify does not allocate.
type pressState struct {
	n      int
	sentAt time.Time
	// from is sentAt truncated to the protocol's microsecond resolution:
	// a draw reported in whole microseconds can otherwise appear up to
	// 1 µs before the press that caused it.
	from      time.Time
	windowEnd time.Time
	settle    time.Duration

	answered    bool
	first, last time.Time
	draws       int
	burstOver   bool
	decided     bool
	overrun     int
	late        int
	firstLate   time.Time
	lateSeen    time.Time // local clock when the first late draw arrived
	quietBroken bool

	verdict    Verdict
	reason     string
	dropped    int
	background int
	quietWait  time.Duration
	closed     bool
}

// start opens press n sent at sentAt: its first draw must be in
// [sentAt, sentAt+window], and its burst ends after settle without a draw.
func (p *pressState) start(n int, sentAt time.Time, window, settle time.Duration) {
	*p = pressState{
		n:         n,
		sentAt:    sentAt,
		from:      sentAt.Truncate(time.Microsecond),
		windowEnd: sentAt.Add(window),
		settle:    settle,
		verdict:   VerdictUnfinished,
	}
}

// classify judges d against the press and records it.
func (p *pressState) classify(d Draw) drawKind {
	w := d.Wallclock
	if w.Before(p.from) {
		return drawBefore
	}
	if !p.answered {
		if p.decided || w.After(p.windowEnd) {
			if p.late == 0 {
				p.firstLate = w
			}
			p.late++
			return drawLate
		}
		p.answered = true
		p.first, p.last, p.draws = w, w, 1
		return drawFirst
	}
	if !p.burstOver && w.Sub(p.last) <= p.settle {
		if w.After(p.windowEnd) {
			p.overrun++
			return drawOverrun
		}
		p.draws++
		if w.After(p.last) {
			p.last = w
		}
		return drawBurst
	}
	p.burstOver = true
	return drawAfter
}

// settled is when the burst's end can be decided by draw wall clock: the
// window's end, or later if the burst could still go on past it.
func (p *pressState) settled() time.Time {
	if p.answered && !p.burstOver {
		if end := p.last.Add(p.settle); end.After(p.windowEnd) {
			return end
		}
	}
	return p.windowEnd
}

// record is the press as a Press.
func (p *pressState) record() Press {
	r := Press{
		Number: p.n, SentAt: p.sentAt, Verdict: p.verdict, Reason: p.reason,
		Answered: p.answered, Draws: p.draws, Background: p.background,
		LateDraws: p.late, Overrun: p.overrun, Dropped: p.dropped, QuietWait: p.quietWait,
	}
	if p.answered {
		r.FirstDraw = max(0, p.first.Sub(p.sentAt))
		r.Repaint = max(0, p.last.Sub(p.sentAt))
	}
	return r
}
