package loadgen

import "time"

// pacerCredit is the most time a late sender may make up: a timer that
// fires a little late (a busy host) does not lower the rate, but time
// lost while blocked (by the ACK window or a full socket) is not made up
// in a burst.
const pacerCredit = 20 * time.Millisecond

// pacer holds a channel to a bit rate: each message may leave only when
// the bytes before it have had their time at the rate, less at most
// pacerCredit. So N bytes sent after the first message take at least
// (N - first)/rate - pacerCredit, whatever the scheduler does. It is a
// pure function of the times it is given, so it is tested without a
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
	if p.next.IsZero() {
		p.next = now // no credit before the first message
	} else if floor := now.Add(-pacerCredit); p.next.Before(floor) {
		p.next = floor
	}
	p.next = p.next.Add(time.Duration(int64(n) * 8 * int64(time.Second) / p.bitsPerSecond))
}
