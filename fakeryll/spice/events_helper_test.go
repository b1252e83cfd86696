package spice

import (
	"testing"
	"time"
)

// waitEvent reads events until match accepts one, the session ends or the
// wait times out.
func waitEvent(t testing.TB, s *Session, within time.Duration, match func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				t.Fatalf("session ended while waiting: %v", s.Err())
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no matching event within %s", within)
		}
	}
}

// drawsUntilQuiet collects draws until none has arrived for quiet (or,
// before the first, for first).
func drawsUntilQuiet(t testing.TB, s *Session, first, quiet time.Duration) []Draw {
	t.Helper()
	var draws []Draw
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				t.Fatalf("session ended: %v", s.Err())
			}
			if d, ok := ev.(Draw); ok {
				draws = append(draws, d)
				timer.Reset(quiet)
			}
		case <-timer.C:
			return draws
		}
	}
}
