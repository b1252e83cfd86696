package spiceproxy

import (
	"sync/atomic"
	"time"
)

// burnSink keeps spin's work from being optimised away.
var burnSink atomic.Uint64

// spin is a few microseconds of arithmetic: the unit of CPU mode's busy
// work, between two looks at the clock.
func spin(x uint64) uint64 {
	x |= 1
	for i := range 2000 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		x += uint64(i)
	}
	return x
}

// burnWall spins until d of wall time has passed.
func burnWall(d time.Duration) {
	var x uint64
	for end := time.Now().Add(d); time.Now().Before(end); {
		x = spin(x)
	}
	burnSink.Store(x)
}
