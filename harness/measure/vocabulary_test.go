package measure

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricVocabulary(t *testing.T) {
	for _, m := range AllMetrics() {
		got, err := ParseMetric(m.Short())
		require.NoError(t, err)
		assert.Equal(t, m, got, "the short name %q reads back", m.Short())
		got, err = ParseMetric(" " + string(m) + " ")
		require.NoError(t, err)
		assert.Equal(t, m, got, "so does the long name")
		assert.NotContains(t, m.Definition(), "unknown metric")
	}
	assert.Equal(t, "keypress", KeypressToScreen.Short(), "the legacy value users type")
	assert.Equal(t, "repaint", KeypressToRepaint.Short())
	assert.Equal(t, "ping", PingInterval.Short())
	m, err := ParseMetric("REPAINT")
	require.NoError(t, err)
	assert.Equal(t, KeypressToRepaint, m)
	_, err = ParseMetric("rtt")
	assert.ErrorContains(t, err, `unknown metric "rtt": want keypress, repaint, ping`)
	assert.Empty(t, Metric("rtt").Short())
	assert.True(t, KeypressToRepaint.Keypress())
	assert.False(t, PingInterval.Keypress())
}

func TestStopReasons(t *testing.T) {
	seen := map[StopReason]bool{}
	for _, r := range AllStopReasons() {
		assert.False(t, seen[r], "%q listed twice", r)
		seen[r] = true
	}
	// The sidecar's values: they must not change.
	want := []StopReason{"samples_reached", "max_duration", "interrupted", "error", "no_draws", "late_draws", "background", "stall"}
	assert.Equal(t, want, AllStopReasons())
	for _, r := range AllStopReasons() {
		assert.Equal(t, r != StopSamplesReached && r != StopMaxDuration, r.Failed(), "%q", r)
	}
	assert.Equal(t, []Verdict{"sample", "miss", "late", "suspect", "unfinished"}, AllVerdicts())
}

func TestBackgroundPattern(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	feed := func(gaps ...time.Duration) Background {
		var b background
		b.open(t0)
		at := t0
		for _, g := range gaps {
			at = at.Add(g)
			b.add(at)
		}
		return b.summary(at)
	}
	assert.Equal(t, PatternNone, feed().Pattern)
	assert.Equal(t, PatternUnknown, feed(ms(100), ms(100), ms(100)).Pattern, "2 gaps are too few")
	steady := feed(ms(500), ms(500), ms(510), ms(490), ms(500), ms(500), ms(500))
	assert.Equal(t, PatternSteady, steady.Pattern)
	assert.Less(t, steady.GapCV, 0.05)
	assert.Equal(t, 6, steady.Gaps)
	// Clusters of 5 draws 1 ms apart, 2 s between clusters.
	var bursty []time.Duration
	for range 4 {
		bursty = append(bursty, 2*time.Second, ms(1), ms(1), ms(1), ms(1))
	}
	b := feed(bursty...)
	assert.Equal(t, PatternBursty, b.Pattern, "CV %v", b.GapCV)
	assert.Greater(t, b.GapCV, 1.5)
	assert.InEpsilon(t, 20/b.Observed.Seconds(), b.Rate, 1e-9)

	t.Run("gaps skip the press windows", func(t *testing.T) {
		// Draws 100 ms before and 100 ms after a 1 s press window are
		// 200 ms apart in observed time, not 1.2 s.
		var b background
		b.open(t0)
		b.add(t0.Add(ms(900)))
		b.close(t0.Add(time.Second))
		b.open(t0.Add(2 * time.Second))
		b.add(t0.Add(2*time.Second + ms(100)))
		assert.Equal(t, 1, b.gaps)
		assert.InDelta(t, 0.2, b.mean, 1e-9)
		s := b.summary(t0.Add(3 * time.Second))
		assert.Equal(t, 2*time.Second, s.Observed)
		assert.InDelta(t, 1.0, s.Rate, 1e-9)
	})
	t.Run("a draw that arrives after the key down counts in the gap it was drawn in", func(t *testing.T) {
		var b background
		b.open(t0)
		b.add(t0.Add(ms(100)))
		b.close(t0.Add(ms(500)))
		b.add(t0.Add(ms(400)))
		assert.Equal(t, 2, b.draws)
		assert.InDelta(t, 0.3, b.mean, 1e-9)
	})
}

func TestContaminationEstimate(t *testing.T) {
	assert.InDelta(t, 0.02, contamination(1, 20*time.Millisecond), 1e-12, "rate times exposure")
	assert.Equal(t, 1.0, contamination(1000, time.Second), "capped at 1")
	assert.Zero(t, contamination(0, time.Second))
}

func TestOnPressSeesEveryPressInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGuest()
		g.answer = func(n int) []time.Duration {
			if n == 2 {
				return nil
			}
			return []time.Duration{ms(2), ms(3)}
		}
		var seen []Press
		var misses []Miss
		cfg := fastConfig(3)
		cfg.OnPress = func(p Press) { seen = append(seen, p) }
		cfg.OnMiss = func(m Miss) { misses = append(misses, m) }
		res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
		require.NoError(t, err)
		assert.Equal(t, res.Presses, seen)
		require.Len(t, seen, 4)
		assert.Equal(t, []Verdict{VerdictSample, VerdictMiss, VerdictSample, VerdictSample},
			[]Verdict{seen[0].Verdict, seen[1].Verdict, seen[2].Verdict, seen[3].Verdict})
		assert.False(t, seen[1].Answered)
		assert.Zero(t, seen[1].FirstDraw)
		assert.Equal(t, ms(3), seen[0].Repaint)
		assert.Equal(t, 2, seen[0].Draws)
		assert.Equal(t, []Miss{{Seq: 2, At: seen[1].SentAt}}, misses)
	})
}

func TestDroppedOutsideWindowLeavesPressesValid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSimConsole(fixedDelay(20 * time.Millisecond))
		// 1.5 s after the key: press 2 is decided (window 1 s + grace)
		// and press 3 not yet sent (2 s cadence).
		c.dropAt = func(n int) (time.Duration, bool) { return 1500 * time.Millisecond, n == 2 }
		res, err := runSim(t, simConfig(5), c)
		require.NoError(t, err)
		assert.Len(t, res.Samples, 5)
		assert.Zero(t, res.Suspects)
		assert.Equal(t, 1, res.Dropped, "still counted")
	})
}

func TestMinPressInterval(t *testing.T) {
	c := DefaultConfig(KeypressToScreen)
	assert.Equal(t, 2*time.Second, c.MinPressInterval(), "1 s window + 1 s quiet = the 2 s cadence")
	c.Cadence, c.Window = 200*time.Millisecond, 0
	assert.Equal(t, 500*time.Millisecond, c.MinPressInterval(), "window 200 ms + the 300 ms least quiet gap")
	c.Quiet = 50 * time.Millisecond
	c.Settle = 20 * time.Millisecond
	assert.Equal(t, 250*time.Millisecond, c.MinPressInterval())
	assert.Equal(t, 50*time.Millisecond, c.WithDefaults().Quiet)
}

// TestASampleFollowsItsPress: each sample is handed over only after its
// press's record, so a run killed between the two writes (or a reader of
// the files mid-run) never sees a sample without its press. The presses
// CSV was once a row behind the samples CSV after a SIGKILL.
func TestASampleFollowsItsPress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGuest()
		g.answer = func(n int) []time.Duration {
			if n == 2 {
				return nil
			}
			return []time.Duration{ms(2), ms(3)}
		}
		var order []string
		cfg := fastConfig(3)
		cfg.OnPress = func(p Press) { order = append(order, fmt.Sprintf("press %d %s", p.Number, p.Verdict)) }
		cfg.OnSample = func(s Sample) error { order = append(order, fmt.Sprintf("sample %d", s.Seq)); return nil }
		_, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
		require.NoError(t, err)
		assert.Equal(t, []string{
			"press 1 sample", "sample 1",
			"press 2 miss", // known to be a miss, not late, once press 3 is decided
			"press 3 sample", "sample 3",
			"press 4 sample", "sample 4",
		}, order)
	})
}
