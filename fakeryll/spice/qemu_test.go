package spice

import (
	"context"
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

// drawsUntilQuiet collects draws until none has arrived for quiet.
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

func TestQEMUSession(t *testing.T) {
	g := bootQEMU(t, qemuOpts{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := Dial(ctx, g.config())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer s.Close()
	sc := waitEvent(t, s, 10*time.Second, func(e Event) bool { _, ok := e.(SurfaceCreated); return ok }).(SurfaceCreated)
	t.Logf("surface %+v", sc.Surface)
	drawsUntilQuiet(t, s, 2*time.Second, 300*time.Millisecond)
	for i := range 3 {
		if err := s.KeyDown(ctx, 0x1E); err != nil {
			t.Fatal(err)
		}
		if err := s.KeyUp(ctx, 0x1E); err != nil {
			t.Fatal(err)
		}
		d := drawsUntilQuiet(t, s, 2*time.Second, 300*time.Millisecond)
		t.Logf("key %d: %d draws, first %+v", i, len(d), d[0])
	}
	t.Logf("counter %d", g.counter(t))
}
