package loadgen

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPacerUnpacedNeverWaits(t *testing.T) {
	var p pacer
	t0 := time.Unix(1000, 0)
	for i := range 100 {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		assert.Zero(t, p.wait(now))
		p.sent(now, 1<<20)
	}
}

func TestPacerHoldsTheRate(t *testing.T) {
	// 1 Mbit/s: 125 000 bytes take one second.
	p := pacer{bitsPerSecond: 1_000_000}
	t0 := time.Unix(1000, 0)
	assert.Zero(t, p.wait(t0), "the first message goes at once")
	p.sent(t0, 12_500)
	assert.Equal(t, 100*time.Millisecond, p.wait(t0), "12 500 bytes take 100 ms")
	assert.Equal(t, 40*time.Millisecond, p.wait(t0.Add(60*time.Millisecond)))

	// A sender that always sends as soon as it may: the last of N bytes
	// leaves when the bytes before it have had their time, no sooner.
	now, sent := t0.Add(100*time.Millisecond), 0
	for range 50 {
		now = now.Add(p.wait(now))
		p.sent(now, 2_500)
		sent += 2_500
	}
	assert.Equal(t, time.Duration(sent-2_500)*8*time.Second/1_000_000, now.Sub(t0.Add(100*time.Millisecond)),
		"the 50th message left when the 49 before it had had their time")
}

func TestPacerMakesUpOnlyALittleLateness(t *testing.T) {
	p := pacer{bitsPerSecond: 8_000} // 1 000 bytes/s: 100 bytes take 100 ms
	t0 := time.Unix(1000, 0)
	p.sent(t0, 100)
	// A timer 5 ms late: the next message may follow 95 ms after it, so
	// the rate holds.
	p.sent(t0.Add(105*time.Millisecond), 100)
	assert.Equal(t, 95*time.Millisecond, p.wait(t0.Add(105*time.Millisecond)))

	// Blocked (by the ACK window, say) for 10 s: the next message may go
	// at once, and the credit is at most pacerCredit, not the lost 10 s.
	later := t0.Add(10 * time.Second)
	assert.Zero(t, p.wait(later))
	p.sent(later, 100)
	assert.Equal(t, 100*time.Millisecond-pacerCredit, p.wait(later))
}
