// Package spicetest reads a key's repaint from a real SPICE session to
// our guest (harness/guest in QEMU) through fakeryll's SPICE client, for
// the tests of what stands between them (a link, a proxy) and of the
// guest itself. Only tests import it.
//
// Its rules were learnt beside a second make test, where a loaded host
// spreads a repaint's pieces wider than any fixed window: the screen is
// let go quiet before each key, and no draw received before a key is
// taken as that key's. They lived in three copies, and each copy needed
// the same fix in turn.
package spicetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
	"github.com/shakenfist/kerbside-latency/harness/guest"
)

const (
	// Quiet ends a key's repaint: no draw for this long.
	Quiet = 150 * time.Millisecond
	// FirstDrawWait bounds the wait for a key's first draw.
	FirstDrawWait = 3 * time.Second
	// SpaceBar is the key the tests press (a PC XT scancode), which the
	// guest answers with a repaint.
	SpaceBar = 0x39
	// settleFirst bounds the wait for the first draw of the guest's
	// first paint once its screen appears.
	settleFirst = 2 * time.Second
)

// WaitScreen waits, up to within, for the guest's screen: a surface of
// guest.ScreenWidth by guest.ScreenHeight. The test fails if the session
// ends or the screen does not come.
func WaitScreen(tb testing.TB, s *spice.Session, within time.Duration) {
	tb.Helper()
	deadline := time.After(within)
	for up := false; !up; {
		select {
		case ev, ok := <-s.Events():
			require.True(tb, ok, "the session ended before the guest's screen appeared: %v", s.Err())
			if sc, ok := ev.(spice.SurfaceCreated); ok && sc.Width == guest.ScreenWidth && sc.Height == guest.ScreenHeight {
				up = true
			}
		case <-deadline:
			require.FailNow(tb, "no guest screen", "no %dx%d surface within %s", guest.ScreenWidth, guest.ScreenHeight, within)
		}
	}
}

// WaitPainted is WaitScreen, then the end of the idle guest's first
// paint (Burst from its first draw).
func WaitPainted(tb testing.TB, s *spice.Session, within time.Duration) {
	tb.Helper()
	WaitScreen(tb, s, within)
	_, err := Burst(s, time.Time{}, settleFirst)
	require.NoError(tb, err, "the guest's first paint")
}

// Burst collects the draws received at or after since until none has
// come for Quiet (or, before the first, for first). A draw received
// before since belongs to an earlier key: the tail of a repaint a loaded
// host spread wider than Quiet (seen as a first draw 43 ms before its
// key). It is for the idle guest (guest.Image), which draws only for a
// key: against one that never stops drawing it does not return.
func Burst(s *spice.Session, since time.Time, first time.Duration) ([]spice.Draw, error) {
	var draws []spice.Draw
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return draws, fmt.Errorf("session ended: %w", s.Err())
			}
			if d, ok := ev.(spice.Draw); ok && !d.Received.Before(since) {
				draws = append(draws, d)
				timer.Reset(Quiet)
			}
		case <-timer.C:
			return draws, nil
		}
	}
}

// Repaint is one key's draws, and its first and last from just before
// the key went out.
type Repaint struct {
	First, Last time.Duration
	Draws       []spice.Draw
}

// Press lets the screen go quiet, types the space bar (down and up) and
// collects the repaint it causes. No draw within FirstDrawWait is an
// error.
func Press(ctx context.Context, s *spice.Session) (Repaint, error) {
	if _, err := Burst(s, time.Time{}, Quiet); err != nil {
		return Repaint{}, err
	}
	sent := time.Now()
	if err := s.KeyDown(ctx, SpaceBar); err != nil {
		return Repaint{}, err
	}
	if err := s.KeyUp(ctx, SpaceBar); err != nil {
		return Repaint{}, err
	}
	draws, err := Burst(s, sent, FirstDrawWait)
	if err != nil {
		return Repaint{}, err
	}
	if len(draws) == 0 {
		return Repaint{}, fmt.Errorf("no draw within %s of the key", FirstDrawWait)
	}
	return Repaint{First: draws[0].Received.Sub(sent), Last: draws[len(draws)-1].Received.Sub(sent), Draws: draws}, nil
}

// Union is the box that covers u (unless it is empty, the zero Rect) and
// each of boxes.
func Union(u spice.Rect, boxes ...spice.Rect) spice.Rect {
	for _, b := range boxes {
		if u == (spice.Rect{}) {
			u = b
			continue
		}
		u = spice.Rect{Top: min(u.Top, b.Top), Left: min(u.Left, b.Left), Bottom: max(u.Bottom, b.Bottom), Right: max(u.Right, b.Right)}
	}
	return u
}

// Boxes are the draws' boxes, in order.
func Boxes(draws []spice.Draw) []spice.Rect {
	out := make([]spice.Rect, len(draws))
	for i, d := range draws {
		out[i] = d.Box
	}
	return out
}
