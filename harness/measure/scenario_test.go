package measure

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The scenarios of issue 13, each on the bubble's fake clock against
// simConsole: what the loadtest must report for a console slower than
// the window, a guest that draws on its own, a console that never draws,
// a Nagle stall at the end of the repaint and events lost in a window.

func TestSlowConsoleGivesMissesNotFastSamples(t *testing.T) {
	tests := []struct {
		name    string
		delay   time.Duration
		cadence time.Duration
		strips  int
	}{
		{"1.1s draw delay at 1s cadence", 1100 * time.Millisecond, time.Second, 1},
		{"800ms draw delay at 200ms cadence", 800 * time.Millisecond, 200 * time.Millisecond, 1},
		{"2.5s draw delay at the default 2s cadence", 2500 * time.Millisecond, 2 * time.Second, 1},
		{"1.5s draw delay at 1s cadence with no jitter", 1500 * time.Millisecond, time.Second, 1},
		// The rest of a late repaint must not land in the next window:
		// the quiet gap after the late draws keeps the next key back.
		{"a 23-draw repaint 1.1s late at 1s cadence", 1100 * time.Millisecond, time.Second, 23},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newSimConsole(fixedDelay(tc.delay))
				c.strips, c.spread = tc.strips, 200*time.Microsecond
				cfg := simConfig(30)
				cfg.Cadence = tc.cadence
				cfg.Window = min(tc.cadence, time.Second)
				cfg.Jitter = tc.cadence / 10
				if tc.name == "1.5s draw delay at 1s cadence with no jitter" {
					cfg.Jitter = 0
				}
				start := time.Now()
				res, err := runSim(t, cfg, c)
				require.Error(t, err, "a console slower than the window must fail the run")
				assert.Empty(t, res.Samples, "no sample may be taken from another press's draw")
				assert.Empty(t, wrongSamples(res, c.presses()))
				assert.Equal(t, StopLateDraws, res.StopReason)
				assert.ErrorIs(t, err, ErrLateDraws)
				assert.Contains(t, err.Error(), "slower than the window")
				assert.Contains(t, err.Error(), "LATENCY_WINDOW")
				assert.Equal(t, cfg.withDefaults().MaxMisses, res.Count(VerdictLate), "every press is late")
				for i, p := range res.Presses {
					assert.False(t, p.Answered, "press %d", i+1)
					assert.Positive(t, p.LateDraws, "press %d saw its own draw arrive late", i+1)
				}
				assert.Positive(t, res.QuietDelayed, "the late draws pushed presses past their cadence slot")
				assert.Less(t, time.Since(start), 2*time.Minute, "it stops early, not at the maximum duration")
			})
		})
	}
}

func TestConsoleThatNeverDrawsStopsEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSimConsole(nil)
		cfg := simConfig(60)
		cfg.MaxDuration = 10 * time.Minute
		start := time.Now()
		res, err := runSim(t, cfg, c)
		require.Error(t, err)
		assert.Equal(t, StopNoDraws, res.StopReason)
		assert.ErrorIs(t, err, ErrNoDraws)
		assert.Len(t, res.Misses, 10, "the run stops after 10 misses in a row")
		assert.Equal(t, 10, res.Count(VerdictMiss))
		assert.Len(t, res.Presses, 10)
		assert.Less(t, time.Since(start), time.Minute)
		for _, want := range []string{"no draw followed 10 key presses in a row", "latency guest", "keyboard", "window"} {
			assert.Contains(t, err.Error(), want)
		}
		assert.NotContains(t, err.Error(), "MAX_DURATION")
	})
}

func TestBackgroundDraws(t *testing.T) {
	tests := []struct {
		name    string
		period  time.Duration
		poisson bool
		want    Pattern
	}{
		{"20 draws/s steady", 50 * time.Millisecond, false, PatternSteady},
		{"20 draws/s random", 50 * time.Millisecond, true, PatternRandom},
		{"50 draws/s random", 20 * time.Millisecond, true, PatternRandom},
		{"a flood of 2000 draws/s", 500 * time.Microsecond, false, PatternSteady},
		// Quiet gaps come, so presses are sent, but 0.67 draws/s against
		// a 33 ms first draw is about 2 % contamination.
		{"one draw every 1.5s", 1500 * time.Millisecond, false, PatternSteady},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newSimConsole(fixedDelay(33 * time.Millisecond))
				c.background(tc.period, tc.poisson, 7)
				res, err := runSim(t, simConfig(30), c)
				require.Error(t, err, "a background this busy must fail the run")
				assert.Equal(t, StopBackground, res.StopReason)
				assert.ErrorIs(t, err, ErrBackground)
				for _, want := range []string{"the guest draws on its own", "draws/s", "blinking cursor", "latency guest"} {
					assert.Contains(t, err.Error(), want)
				}
				assert.Empty(t, wrongSamples(res, c.presses()), "no sample from an unrelated draw")
				rate := float64(time.Second) / float64(tc.period)
				assert.InEpsilon(t, rate, res.Background.Rate, 0.2, "the background rate is measured")
				assert.Equal(t, tc.want, res.Background.Pattern)
			})
		})
	}
}

func TestRareBackgroundKeepsSamplesRight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSimConsole(fixedDelay(33 * time.Millisecond))
		c.background(97*time.Second, false, 1)
		res, err := runSim(t, simConfig(60), c)
		require.NoError(t, err)
		assert.Equal(t, StopSamplesReached, res.StopReason)
		assert.Len(t, res.Samples, 60)
		assert.Empty(t, wrongSamples(res, c.presses()))
		b := res.Background
		assert.Equal(t, 1, b.Draws)
		assert.Equal(t, PatternUnknown, b.Pattern, "one draw has no gaps")
		assert.InEpsilon(t, 1/b.Observed.Seconds(), b.Rate, 1e-9)
		assert.Greater(t, b.Observed, time.Minute, "before the first press and in the quiet gaps")
		assert.Equal(t, 33*time.Millisecond, b.Exposure)
		assert.InEpsilon(t, b.Rate*0.033, b.Contamination, 1e-9, "the estimated share is reported")
		assert.Less(t, b.Contamination, 0.001)
		bg := 0
		for _, p := range res.Presses {
			bg += p.Background
		}
		assert.Equal(t, 1, bg, "the draw is on the record of the press after it")
	})
}

func TestRepaintMetricSeesTheTail(t *testing.T) {
	// The boot-sector guest's repaint: 23 strips 0.2 ms apart, the first
	// 20 ms after the key; through a proxy without TCP_NODELAY the last 3
	// wait 40 ms for a delayed ACK.
	newConsole := func() *simConsole {
		c := newSimConsole(fixedDelay(20 * time.Millisecond))
		c.strips, c.spread, c.tailN, c.tail = 23, 200*time.Microsecond, 3, 40*time.Millisecond
		return c
	}
	want := 20*time.Millisecond + 22*200*time.Microsecond + 40*time.Millisecond
	for _, m := range []Metric{KeypressToScreen, KeypressToRepaint} {
		t.Run(string(m), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newConsole()
				cfg := simConfig(10)
				cfg.Metric = m
				res, err := runSim(t, cfg, c)
				require.NoError(t, err)
				require.Len(t, res.Samples, 10)
				assert.InDelta(t, 0.020, res.FirstDraw.P50, 1e-9, "both figures are summarised whatever the metric")
				assert.InDelta(t, want.Seconds(), res.Repaint.P50, 1e-9)
				for _, p := range res.Presses {
					assert.Equal(t, 23, p.Draws, "the stall is inside the burst: settle exceeds it")
				}
				for _, s := range res.Samples {
					if m == KeypressToScreen {
						assert.InDelta(t, 0.020, s.Value, 1e-9, "first draw: the tail is invisible")
					} else {
						assert.InDelta(t, want.Seconds(), s.Value, 1e-9, "repaint: the tail is seen")
					}
				}
			})
		})
	}
}

func TestDroppedInsideWindowMakesPressSuspect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSimConsole(fixedDelay(20 * time.Millisecond))
		c.dropAt = func(n int) (time.Duration, bool) { return 10 * time.Millisecond, n == 2 }
		res, err := runSim(t, simConfig(5), c)
		require.NoError(t, err)
		var seqs []int
		for _, s := range res.Samples {
			seqs = append(seqs, s.Seq)
		}
		assert.Equal(t, []int{1, 3, 4, 5, 6}, seqs, "press 2 saw events dropped in its window: not a sample")
		assert.Equal(t, 1, res.Dropped)
		require.Len(t, res.Presses, 6)
		assert.Equal(t, VerdictSuspect, res.Presses[1].Verdict)
		assert.Contains(t, res.Presses[1].Reason, "dropped")
		assert.Equal(t, 1, res.Presses[1].Dropped)
		assert.True(t, res.Presses[1].Answered, "its figures are kept on the record")
		assert.Equal(t, 1, res.Suspects)
	})
}

// TestQuietGapKeepsTheJitter: when the quiet gap after the last draw
// decides when the next key goes, not the cadence, the press must still
// be jittered. Draws land on a 30 ms refresh tick and the quiet gap is a
// multiple of it, so a press sent exactly when the gap ends would always
// fall at the same phase of the refresh: samples phase-locked, falsely
// tight and biased (facts.md), the very thing the jitter exists to stop.
func TestQuietGapKeepsTheJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const refresh = 30 * time.Millisecond
		c := newSimConsole(fixedDelay(2 * time.Millisecond))
		c.refresh = refresh
		cfg := simConfig(40)
		cfg.Cadence, cfg.Window, cfg.Quiet, cfg.Jitter = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 100*time.Millisecond
		res, err := runSim(t, cfg, c)
		require.NoError(t, err)
		require.Len(t, res.Samples, 40)
		assert.Positive(t, res.QuietDelayed, "the quiet gap, not the cadence, decided the presses")
		phases := map[time.Duration]bool{}
		for _, p := range res.Presses {
			phases[time.Duration(p.SentAt.UnixNano()%int64(refresh)).Round(time.Millisecond)] = true
		}
		assert.GreaterOrEqual(t, len(phases), 10, "presses spread over the refresh period, not locked to one phase")
		s := res.FirstDraw
		assert.Greater(t, s.Max-s.Min, 0.015, "samples spread over the refresh period (min %.1f ms, max %.1f ms)", s.Min*1000, s.Max*1000)
	})
}

// A console that stops for 5 s mid-run (QEMU under kill -STOP, then
// -CONT) and then sends the held-back repaint at once is a stall: the
// run says so, with the press, how long and the catch-up, never "the
// guest draws on its own" (which is what it said before: the wait for
// the late draw was counted as a wait for quiet).
func TestStallIsReportedAsAStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSimConsole(fixedDelay(25 * time.Millisecond))
		c.strips, c.spread = 23, 200*time.Microsecond
		start := time.Now()
		c.stallFrom, c.stallTo = start.Add(5*time.Second), start.Add(10*time.Second)
		cfg := simConfig(40)
		cfg.Cadence, cfg.Jitter, cfg.Hold = 300*time.Millisecond, 100*time.Millisecond, 30*time.Millisecond
		cfg.Window = 300 * time.Millisecond // LATENCY_CADENCE=300ms derives it
		res, err := runSim(t, cfg, c)
		require.Error(t, err)
		assert.Equal(t, StopStall, res.StopReason, "err: %v", err)
		assert.ErrorIs(t, err, ErrStall)
		assert.NotErrorIs(t, err, ErrBackground)
		require.NotEmpty(t, res.Stalls)
		st := res.Stalls[0]
		assert.Greater(t, st.Duration, 4*time.Second, "the press waited for most of the stall")
		assert.LessOrEqual(t, st.Duration, 5*time.Second)
		assert.Positive(t, st.Draws)
		assert.Equal(t, time.Duration(0), c.stallTo.Sub(st.SentAt.Add(st.Duration)).Truncate(time.Millisecond), "its first draw is the console resuming")
		for _, want := range []string{"stalled", "catching up", fmt.Sprintf("press %d", st.Press), "no draw for"} {
			assert.Contains(t, err.Error(), want)
		}
		assert.NotContains(t, err.Error(), "draws on its own")
		assert.Empty(t, wrongSamples(res, c.presses()), "no sample from a held-back draw")
		assert.Len(t, res.Samples, 40, "the run went on after the stall to its target")
		for _, p := range res.Presses {
			if p.Number == st.Press {
				assert.Equal(t, VerdictLate, p.Verdict, "the stalled press is late, not a sample")
			}
		}
	})
}

// A console slower than the window from the start has no prompt answer
// to stall from: it stays late_draws (TestSlowConsoleGivesMissesNotFastSamples).

// A stall longer than the run waits for (20 s, with MaxMisses presses
// gone unanswered before it ends) is a stall too, not "the guest's screen
// does not change when a key is pressed".
func TestStallThatOutlastsTheMissesIsAStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSimConsole(fixedDelay(25 * time.Millisecond))
		c.strips, c.spread = 23, 200*time.Microsecond
		start := time.Now()
		c.stallFrom, c.stallTo = start.Add(5*time.Second), start.Add(60*time.Second)
		cfg := simConfig(40)
		cfg.Cadence, cfg.Jitter, cfg.Hold = 300*time.Millisecond, 100*time.Millisecond, 30*time.Millisecond
		cfg.Window = 300 * time.Millisecond
		res, err := runSim(t, cfg, c)
		require.Error(t, err)
		assert.Equal(t, StopStall, res.StopReason, "err: %v", err)
		assert.ErrorIs(t, err, ErrStall)
		assert.NotErrorIs(t, err, ErrNoDraws)
		require.Len(t, res.Stalls, 1)
		assert.Equal(t, 10, res.Stalls[0].Presses, "LATENCY_MAX_MISSES presses held back")
		assert.Zero(t, res.Stalls[0].Draws, "nothing caught up yet")
		assert.Contains(t, err.Error(), "stopped drawing")
		assert.NotContains(t, err.Error(), "does not change when a key is pressed?")
		assert.Empty(t, wrongSamples(res, c.presses()))
	})
}
