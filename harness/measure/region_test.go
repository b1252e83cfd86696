package measure

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRectOverlaps(t *testing.T) {
	key := Rect{Left: 0, Top: 0, Right: 720, Bottom: 48}
	tests := []struct {
		name string
		r    Rect
		want bool
	}{
		{"inside", Rect{Left: 32, Top: 0, Right: 64, Bottom: 48}, true},
		{"a full-height strip crosses it", Rect{Left: 0, Top: 0, Right: 32, Bottom: 400}, true},
		{"one pixel row in", Rect{Left: 0, Top: 47, Right: 32, Bottom: 100}, true},
		{"meets its bottom edge only", Rect{Left: 0, Top: 48, Right: 32, Bottom: 100}, false},
		{"below it", Rect{Left: 0, Top: 64, Right: 720, Bottom: 400}, false},
		{"right of it", Rect{Left: 720, Top: 0, Right: 800, Bottom: 48}, false},
		{"empty box", Rect{Left: 10, Top: 10, Right: 10, Bottom: 10}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.r.Overlaps(key))
			assert.Equal(t, tc.want, key.Overlaps(tc.r), "symmetric")
		})
	}
}

func TestKeyRegionIsChecked(t *testing.T) {
	for _, bad := range []Rect{{Left: 10, Right: 5, Bottom: 5}, {Left: -1, Right: 5, Bottom: 5}, {Right: 5, Top: 3, Bottom: 3}} {
		c := fastConfig(1)
		c.KeyRegion = bad
		ps := c.Problems()
		require.Len(t, ps, 1, "%v", bad)
		assert.Equal(t, []Field{FieldKeyRegion}, ps[0].Fields)
	}
	c := fastConfig(1)
	c.KeyRegion = Rect{Right: 720, Bottom: 48}
	assert.Empty(t, c.Problems())
}

var (
	keyBox      = Rect{Left: 0, Top: 0, Right: 32, Bottom: 48}
	activityBox = Rect{Left: 0, Top: 64, Right: 32, Bottom: 400}
)

// busyGuest answers each press with the key's draws in the key region at
// keyAt, and runs the guest's own activity beside it: a draw below the
// region every 2 ms of the bubble's clock, before the key's first draw,
// between its draws and after its end, until the returned stop is called.
// boxed false leaves every box out, as ryll 1.2 does.
func busyGuest(g *fakeGuest, keyAt []time.Duration, boxed bool) (stop func()) {
	box := func(r Rect) *Rect {
		if !boxed {
			return nil
		}
		return &r
	}
	g.answerBoxed = func(int) []boxedDraw {
		var out []boxedDraw
		for _, at := range keyAt {
			out = append(out, boxedDraw{at: at, box: box(keyBox)})
		}
		return out
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			d := Draw{Wallclock: time.Now(), Received: time.Now()}
			if b := box(activityBox); b != nil {
				d.Rect, d.HasRect = *b, true
			}
			select {
			case g.draws <- d:
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func TestKeyRegionPairsOnlyItsDraws(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := fastConfig(4)
		cfg.KeyRegion = Rect{Left: 0, Top: 0, Right: 720, Bottom: 48}
		g := newFakeGuest()
		stop := busyGuest(g, []time.Duration{ms(4.5), ms(6.5)}, true)
		res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
		stop()
		require.NoError(t, err)
		require.Len(t, res.Samples, 4)
		for _, p := range res.Presses {
			assert.Equal(t, VerdictSample, p.Verdict, "press %d", p.Number)
			assert.Equal(t, ms(4.5), p.FirstDraw, "press %d: the activity's earlier draws never answer", p.Number)
			assert.Equal(t, ms(6.5), p.Repaint, "press %d: the activity's later draws never end the repaint", p.Number)
			assert.Equal(t, 2, p.Draws, "press %d: only the key's draws are in its burst", p.Number)
		}
		assert.Zero(t, res.Background.Draws, "activity is not background")
		assert.Zero(t, res.UnpairedDraws)
		assert.Equal(t, 8, res.Activity.InKey)
		assert.Positive(t, res.Activity.Outside)
		assert.Zero(t, res.Activity.NoRect)
		assert.Equal(t, cfg.KeyRegion, res.Activity.KeyRegion)
	})
}

func TestBusyGuestWithoutRegionOrRectIsRefused(t *testing.T) {
	tests := []struct {
		name   string
		region Rect
		boxed  bool
		want   string
	}{
		{"boxes but no key region", Rect{}, true, "LATENCY_ACTIVITY=idle"},
		{"a key region but no boxes", Rect{Right: 720, Bottom: 48}, false, "no rectangle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := fastConfig(20)
				cfg.KeyRegion = tc.region
				g := newFakeGuest()
				stop := busyGuest(g, []time.Duration{ms(4.5)}, tc.boxed)
				res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
				stop()
				require.Error(t, err)
				assert.True(t, errors.Is(err, ErrBackground), "%v", err)
				assert.Equal(t, StopBackground, res.StopReason)
				assert.Contains(t, err.Error(), tc.want)
				assert.Positive(t, res.Background.Draws)
			})
		})
	}
}

func TestActivityRates(t *testing.T) {
	a := Activity{InKey: 10, Outside: 300, NoRect: 0}
	in, out, none := a.Rates(10)
	assert.InDelta(t, 1.0, in, 1e-12)
	assert.InDelta(t, 30.0, out, 1e-12)
	assert.Zero(t, none)
	assert.Equal(t, 310, a.Draws())
	in, out, none = a.Rates(0)
	assert.Zero(t, in+out+none)
}
