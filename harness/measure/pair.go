package measure

import "time"

// pairer holds the one open press and decides whether a draw answers it.
// It is the hot path for draws and does not allocate.
type pairer struct {
	open   bool
	seq    int
	sentAt time.Time
	// from is sentAt truncated to the protocol's microsecond resolution:
	// a draw reported in whole microseconds can otherwise appear up to
	// 1 µs before the press that caused it.
	from  time.Time
	until time.Time
}

// start opens press seq sent at sentAt, answerable by draws whose wall
// clock is in [sentAt, sentAt+window].
func (p *pairer) start(seq int, sentAt time.Time, window time.Duration) {
	*p = pairer{
		open:   true,
		seq:    seq,
		sentAt: sentAt,
		from:   sentAt.Truncate(time.Microsecond),
		until:  sentAt.Add(window),
	}
}

// offer reports whether d answers the open press and, if so, closes it and
// returns the latency in seconds.
func (p *pairer) offer(d Draw) (seconds float64, ok bool) {
	if !p.open || d.Wallclock.Before(p.from) || d.Wallclock.After(p.until) {
		return 0, false
	}
	p.open = false
	return max(0, d.Wallclock.Sub(p.sentAt).Seconds()), true
}

// close ends the open press unanswered.
func (p *pairer) close() { p.open = false }
