package loadgen

import "time"

// pacer holds a channel to a bit rate: a token bucket one message deep.
// Each message may leave no earlier than the previous one's bytes take
// at the rate, so N bytes sent after the first message take at least
// (N - first)/rate, whatever the scheduler does; time lost while blocked
// (by the ACK window or a full socket) is not made up in a burst. It is
// a pure function of the times it is given, so it is tested without a
// clock.
type pacer struct {
	bitsPerSecond int64 // 0: unpaced
	next          time.Time
}

// wait says how long to wait at now before a message may leave.
func (p *pacer) wait(now time.Time) time.Duration {
	if p.bitsPerSecond <= 0 || p.next.IsZero() || !now.Before(p.next) {
		return 0
	}
	return p.next.Sub(now)
}

// sent charges a message of n bytes that left at now.
func (p *pacer) sent(now time.Time, n int) {
	if p.bitsPerSecond <= 0 {
		return
	}
	if p.next.Before(now) {
		p.next = now // no credit for idle or blocked time
	}
	p.next = p.next.Add(time.Duration(int64(n) * 8 * int64(time.Second) / p.bitsPerSecond))
}
