package measure

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The keypress tests run in a synctest bubble: time.Now, timers and
// sleeps are fake, so the millisecond windows of fastConfig cost nothing
// and cannot flake under -race.

func TestKeypressExactSamples(t *testing.T) { synctest.Test(t, testKeypressExactSamples) }

func testKeypressExactSamples(t *testing.T) {
	delays := []time.Duration{ms(3), ms(5.5), ms(7), ms(11), ms(2.25)}
	g := newFakeGuest()
	g.answer = func(n int) []time.Duration { return []time.Duration{delays[n-1]} }

	var sunk []Sample
	cfg := fastConfig(len(delays))
	cfg.OnSample = func(s Sample) error { sunk = append(sunk, s); return nil }
	res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
	require.NoError(t, err)

	downs, ups, sentAts := g.counts()
	require.Len(t, res.Samples, len(delays))
	for i, s := range res.Samples {
		assert.Equal(t, delays[i].Seconds(), s.Value, "sample %d", i)
		assert.Equal(t, i, s.Index)
		assert.Equal(t, i+1, s.Seq)
		assert.True(t, sentAts[i].Equal(s.At), "At is the press's sentAt")
	}
	assert.Equal(t, res.Samples, sunk, "every sample reaches the sink, in order")
	assert.Equal(t, []float64{0.003, 0.0055, 0.007, 0.011, 0.00225}, res.Values())
	assert.Equal(t, StopSamplesReached, res.StopReason)
	assert.Empty(t, res.Misses)
	assert.Zero(t, res.UnpairedDraws)
	require.Len(t, res.Presses, len(delays))
	for i, p := range res.Presses {
		assert.Equal(t, i+1, p.Number)
		assert.Equal(t, VerdictSample, p.Verdict)
		assert.True(t, p.Answered)
		assert.Equal(t, delays[i], p.FirstDraw)
		assert.Equal(t, delays[i], p.Repaint, "one draw: the repaint ends with it")
		assert.Equal(t, 1, p.Draws)
		assert.True(t, sentAts[i].Equal(p.SentAt))
	}
	assert.Equal(t, len(delays), res.FirstDraw.Count)
	assert.InDelta(t, 0.0055, res.FirstDraw.P50, 1e-12)
	assert.Equal(t, res.FirstDraw, res.Repaint)
	assert.Equal(t, PatternNone, res.Background.Pattern)
	assert.Zero(t, res.Background.Contamination)
	assert.Equal(t, downs, ups, "every key down is released, including the last")
	assert.Equal(t, 2*time.Millisecond, res.MaxDrawLag)
	assert.False(t, res.End.Before(res.Start))
	assert.NotZero(t, res.Config.Window)
}

func TestKeypressMissDoesNotShiftLaterSamples(t *testing.T) {
	synctest.Test(t, testKeypressMissDoesNotShiftLaterSamples)
}

func testKeypressMissDoesNotShiftLaterSamples(t *testing.T) {
	// Press 2 gets no draw in its window. Its late draw turns up during
	// press 3 (stamped just before press 3 was sent). A FIFO pairer would
	// give press 2 that late draw and every later press its predecessor's
	// draw. Here press 2 is late, and press 3 is suspect: a draw came
	// less than the quiet gap before its key, so its window may hold the
	// rest of an earlier repaint.
	g := newFakeGuest()
	g.answer = func(n int) []time.Duration {
		switch n {
		case 2:
			return nil
		case 3:
			return []time.Duration{-ms(1), ms(9)}
		default:
			return []time.Duration{ms(float64(n))}
		}
	}
	var misses []Miss
	cfg := fastConfig(4)
	cfg.OnMiss = func(m Miss) { misses = append(misses, m) }
	res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
	require.NoError(t, err)

	_, _, sentAts := g.counts()
	seqs := make([]int, len(res.Samples))
	for i, s := range res.Samples {
		seqs[i] = s.Seq
	}
	assert.Equal(t, []int{1, 4, 5, 6}, seqs)
	assert.Equal(t, []float64{0.001, 0.004, 0.005, 0.006}, res.Values())
	require.Len(t, res.Misses, 1)
	assert.Equal(t, 2, res.Misses[0].Seq)
	assert.True(t, res.Misses[0].Late, "its draw came after the window")
	assert.True(t, sentAts[1].Equal(res.Misses[0].At), "a miss records its press time")
	assert.Equal(t, res.Misses, misses, "OnMiss sees each miss")
	assert.Equal(t, 1, res.UnpairedDraws, "the late draw is not paired with a later press")
	assert.Equal(t, 1, res.LateDraws)
	require.GreaterOrEqual(t, len(res.Presses), 3)
	assert.Equal(t, VerdictLate, res.Presses[1].Verdict)
	assert.Equal(t, 1, res.Presses[1].LateDraws)
	assert.Equal(t, VerdictSuspect, res.Presses[2].Verdict)
	assert.Contains(t, res.Presses[2].Reason, "quiet gap")
	assert.Equal(t, 1, res.Suspects)
	assert.GreaterOrEqual(t, res.Presses[2].SentAt.Sub(res.Presses[1].SentAt), res.Config.Window+res.Config.LateWait,
		"press 3 waited for press 2's late draw")
	assert.Positive(t, res.Presses[2].QuietWait, "and so was sent after its cadence slot")
}

func TestKeypressUnrelatedDraws(t *testing.T) {
	cfg := fastConfig(3)
	tests := []struct {
		name         string
		answer       func(n int) []time.Duration
		cfg          func(c *Config)
		wantValues   []float64
		wantRepaint  []float64
		wantMisses   int
		wantUnpaired int
		wantBg       int
	}{
		{
			name: "draw before sentAt is not paired",
			// Older than the quiet gap, so the press stays a sample; the
			// contamination limit is lifted because 3 draws in a few
			// tens of ms are a high rate.
			answer:       func(int) []time.Duration { return []time.Duration{-cfg.Quiet - ms(2), ms(4)} },
			cfg:          func(c *Config) { c.MaxContamination = 1 },
			wantValues:   []float64{0.004, 0.004, 0.004},
			wantUnpaired: 3,
			wantBg:       3,
		},
		{
			name:       "draw exactly at sentAt counts",
			answer:     func(int) []time.Duration { return []time.Duration{0} },
			wantValues: []float64{0, 0, 0},
		},
		{
			name:        "several draws per press: the first is the first draw, the last ends the repaint",
			answer:      func(int) []time.Duration { return []time.Duration{ms(4), ms(6), ms(8)} },
			wantValues:  []float64{0.004, 0.004, 0.004},
			wantRepaint: []float64{0.008, 0.008, 0.008},
		},
		{
			name: "a draw after the burst has settled is background, not the repaint",
			answer: func(int) []time.Duration {
				return []time.Duration{ms(4), ms(4) + cfg.Settle + ms(1)}
			},
			cfg:          func(c *Config) { c.MaxContamination = 1 },
			wantValues:   []float64{0.004, 0.004, 0.004},
			wantRepaint:  []float64{0.004, 0.004, 0.004},
			wantUnpaired: 3,
			wantBg:       3,
		},
		{
			name: "draw after the window is not paired and the press is a miss",
			answer: func(n int) []time.Duration {
				if n == 2 {
					return []time.Duration{cfg.Window + ms(1)}
				}
				return []time.Duration{ms(3)}
			},
			wantValues:   []float64{0.003, 0.003, 0.003},
			wantMisses:   1,
			wantUnpaired: 1,
		},
		{
			name: "draw at the window's end counts",
			answer: func(n int) []time.Duration {
				return []time.Duration{cfg.Window}
			},
			wantValues: []float64{cfg.Window.Seconds(), cfg.Window.Seconds(), cfg.Window.Seconds()},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newFakeGuest()
				g.answer = tc.answer
				c := cfg
				if tc.cfg != nil {
					tc.cfg(&c)
				}
				res, err := Run(t.Context(), c, Sources{Keyboard: g, Draws: g.draws})
				require.NoError(t, err)
				assert.Equal(t, tc.wantValues, res.Values())
				if tc.wantRepaint != nil {
					var got []float64
					for _, p := range res.Presses {
						got = append(got, p.Repaint.Seconds())
					}
					assert.Equal(t, tc.wantRepaint, got)
				}
				assert.Len(t, res.Misses, tc.wantMisses)
				assert.Equal(t, tc.wantUnpaired, res.UnpairedDraws)
				assert.Equal(t, tc.wantBg, res.Background.Draws)
			})
		})
	}
}

func TestQueuedDrawWinsOverPassedDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every press's deadline has passed by the time Run learns of it,
		// and its draw is already queued: the draw must be judged before
		// the miss is decided. Without that, Go's random select would miss
		// about half.
		g := newFakeGuest()
		g.backdate = time.Second
		g.answer = func(int) []time.Duration { return []time.Duration{ms(3)} }
		res, err := Run(t.Context(), fastConfig(40), Sources{Keyboard: g, Draws: g.draws})
		require.NoError(t, err)
		assert.Empty(t, res.Misses)
		assert.Len(t, res.Samples, 40)
		for _, s := range res.Samples {
			assert.Equal(t, 0.003, s.Value)
		}
	})

	t.Run("deadline handler drains the queue first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The same decision driven directly, so the order of events is
			// fixed: the deadline fires while the draw is still queued.
			draws := make(chan Draw, 4)
			cfg := fastConfig(5).withDefaults()
			r := &runner{cfg: cfg, src: Sources{Keyboard: newFakeGuest(), Draws: draws}, log: cfg.Logger, rng: newRand(1), kbDone: make(chan kbResult, 1)}
			r.kbCtx = t.Context()
			r.keyDown = true // so deciding does not start another press
			sentAt := time.Now().Add(-time.Second)
			r.seq = 1
			r.openPress(sentAt)
			draws <- Draw{Wallclock: sentAt.Add(-cfg.Quiet - ms(1))}
			draws <- Draw{Wallclock: sentAt.Add(ms(4))}
			require.Nil(t, r.onDeadline())
			assert.Empty(t, r.res.Misses)
			assert.Equal(t, []float64{0.004}, r.res.Values())
			assert.Equal(t, 1, r.res.UnpairedDraws)

			r.seq = 2
			r.openPress(sentAt)
			require.Nil(t, r.onDeadline())
			assert.False(t, r.cur.answered)
			assert.Equal(t, VerdictMiss, r.cur.verdict, "with nothing queued the press is a miss")
		})
	})
}

func TestStopAtMaxDuration(t *testing.T) {
	t.Run("keypress", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := newFakeGuest()
			g.answer = func(int) []time.Duration { return []time.Duration{ms(2)} }
			cfg := fastConfig(1000)
			cfg.MaxDuration = 300 * time.Millisecond
			start := time.Now()
			res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
			require.NoError(t, err)
			assert.Equal(t, StopMaxDuration, res.StopReason)
			assert.Equal(t, cfg.MaxDuration, time.Since(start), "on the fake clock the run ends exactly then")
			assert.NotEmpty(t, res.Samples)
			downs, ups, _ := g.counts()
			assert.Equal(t, downs, ups, "a key down at the deadline is still released")
		})
	})
	t.Run("ping, no events", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := Config{Metric: PingInterval, Samples: 10, MaxDuration: 30 * time.Millisecond}
			res, err := Run(t.Context(), cfg, Sources{Pings: make(chan Ping)})
			require.NoError(t, err)
			assert.Equal(t, StopMaxDuration, res.StopReason)
			assert.Empty(t, res.Samples)
		})
	})
}

func TestCancellationReturnsCollectedSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(cancel)
		g := newFakeGuest()
		g.answer = func(n int) []time.Duration {
			if n >= 3 {
				return nil // nothing more arrives; only the cancel ends the run
			}
			return []time.Duration{ms(2)}
		}
		g.onDown = func(n int) {
			if n == 3 {
				cancel() // as SIGINT would
			}
		}
		res, err := Run(ctx, fastConfig(10), Sources{Keyboard: g, Draws: g.draws})
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "after 2 of 10 samples")
		assert.Equal(t, StopInterrupted, res.StopReason)
		assert.Equal(t, []float64{0.002, 0.002}, res.Values())
		assert.Zero(t, res.KeyErrors, "a request cut short by cancellation is not a key error")
		downs, ups, _ := g.counts()
		assert.Equal(t, downs, ups, "the key is released even though ctx is cancelled")
	})
}

func TestCancelCause(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	signal := errors.New("got SIGTERM")
	cancel(signal)
	res, err := Run(ctx, Config{Metric: PingInterval, Samples: 1, MaxDuration: time.Minute}, Sources{Pings: make(chan Ping)})
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, signal)
	assert.Equal(t, StopInterrupted, res.StopReason)
}

func TestKeyboardErrorEndsRun(t *testing.T) {
	boom := errors.New("control connection reset")
	tests := []struct {
		name     string
		setup    func(g *fakeGuest)
		wantText string
	}{
		{
			name: "key down fails",
			setup: func(g *fakeGuest) {
				g.downErr = func(n int, _ context.Context) error {
					if n == 3 {
						return boom
					}
					return nil
				}
			},
			wantText: "press 3: key down",
		},
		{
			name: "key up fails",
			setup: func(g *fakeGuest) {
				g.upErr = func(n int) error {
					if n == 3 {
						return boom
					}
					return nil
				}
				// Press 3 is never answered, so the run cannot end at the
				// target before its key up.
				prev := g.answer
				g.answer = func(n int) []time.Duration {
					if n == 3 {
						return nil
					}
					return prev(n)
				}
			},
			wantText: "press 3: key up",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newFakeGuest()
				g.answer = func(int) []time.Duration { return []time.Duration{ms(2)} }
				tc.setup(g)
				res, err := Run(t.Context(), fastConfig(10), Sources{Keyboard: g, Draws: g.draws})
				require.Error(t, err)
				assert.ErrorIs(t, err, boom)
				assert.Contains(t, err.Error(), tc.wantText)
				assert.Equal(t, StopError, res.StopReason)
				assert.Equal(t, []float64{0.002, 0.002}, res.Values(), "samples so far are kept")
				assert.Equal(t, 1, res.KeyErrors)
			})
		})
	}
}

func TestClosedSourceEndsRun(t *testing.T) {
	t.Run("draws", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := newFakeGuest()
			g.answer = func(int) []time.Duration { return []time.Duration{ms(2)} }
			g.closeAt = 3
			res, err := Run(t.Context(), fastConfig(10), Sources{Keyboard: g, Draws: g.draws})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrSourceClosed)
			assert.Contains(t, err.Error(), "draw events stopped after 2 of 10 samples")
			assert.Equal(t, StopError, res.StopReason)
			assert.Equal(t, []float64{0.002, 0.002}, res.Values())
			downs, ups, _ := g.counts()
			assert.Equal(t, downs, ups)
		})
	})
	t.Run("pings", func(t *testing.T) {
		pings := make(chan Ping, 2)
		pings <- Ping{SampleMS: 1}
		close(pings)
		res, err := Run(t.Context(), Config{Metric: PingInterval, Samples: 5, MaxDuration: time.Minute}, Sources{Pings: pings})
		assert.ErrorIs(t, err, ErrSourceClosed)
		assert.Equal(t, []float64{0.001}, res.Values())
	})
}

func TestSinkErrorEndsRun(t *testing.T) { synctest.Test(t, testSinkErrorEndsRun) }

func testSinkErrorEndsRun(t *testing.T) {
	full := errors.New("no space left on device")
	g := newFakeGuest()
	g.answer = func(int) []time.Duration { return []time.Duration{ms(2)} }
	cfg := fastConfig(10)
	cfg.OnSample = func(s Sample) error {
		if s.Index == 1 {
			return full
		}
		return nil
	}
	res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
	assert.ErrorIs(t, err, full)
	assert.Contains(t, err.Error(), "hand sample 2 to the sink")
	assert.Equal(t, StopError, res.StopReason)
	assert.Len(t, res.Samples, 2)
}

func TestPingMetric(t *testing.T) {
	wall := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pings := make(chan Ping, 8)
	for _, p := range []Ping{
		{SampleMS: 12.5, Wallclock: wall},
		{SampleMS: -1},
		{SampleMS: math.NaN()},
		{SampleMS: 0.25, Received: wall.Add(time.Second)},
		{SampleMS: 15000},
		{SampleMS: 7}, // beyond the target: never read
	} {
		pings <- p
	}
	dropped := make(chan int, 2)
	dropped <- 3
	dropped <- 4
	log, buf := logBuffer(t)
	g := newFakeGuest() // must not be touched in ping mode
	cfg := Config{Metric: PingInterval, Samples: 3, MaxDuration: time.Minute, Logger: log}
	res, err := Run(t.Context(), cfg, Sources{Pings: pings, Dropped: dropped, Keyboard: g, Draws: g.draws})
	require.NoError(t, err)
	assert.Equal(t, StopSamplesReached, res.StopReason)
	require.Len(t, res.Samples, 3)
	assert.InDeltaSlice(t, []float64{0.0125, 0.00025, 15}, res.Values(), 1e-15, "sample_ms is converted to seconds")
	assert.Equal(t, []int{1, 4, 5}, []int{res.Samples[0].Seq, res.Samples[1].Seq, res.Samples[2].Seq})
	assert.True(t, res.Samples[0].At.Equal(wall), "At is the event's wall clock")
	assert.True(t, res.Samples[1].At.Equal(wall.Add(time.Second)), "or its arrival when no wall clock")
	assert.Equal(t, 2, res.InvalidPings)
	assert.Equal(t, 7, res.Dropped, "dropped counts still queued at the end are included")
	assert.Contains(t, buf.String(), `level=WARN msg="control socket dropped events`)
	assert.Contains(t, buf.String(), "count=3")
	downs, _, _ := g.counts()
	assert.Zero(t, downs, "ping mode sends no keys")
}

func TestProgressLog(t *testing.T) {
	pings := make(chan Ping) // unbuffered: each send completes only when Run has it
	ticks := make(chan time.Time)
	log, buf := logBuffer(t)
	cfg := Config{Metric: PingInterval, Samples: 3, MaxDuration: time.Minute, Logger: log, progressTicks: ticks}

	fed := make(chan error, 1)
	go func() {
		send := func(ch chan Ping, p Ping) bool {
			select {
			case ch <- p:
				return true
			case <-t.Context().Done():
				return false
			}
		}
		// Run takes each ping before its next select, so by the time the
		// tick is received both samples are counted.
		if !send(pings, Ping{SampleMS: 10}) || !send(pings, Ping{SampleMS: 20}) {
			fed <- errors.New("pings not taken")
			return
		}
		select {
		case ticks <- time.Now():
		case <-t.Context().Done():
			fed <- errors.New("tick not taken")
			return
		}
		if !send(pings, Ping{SampleMS: 30}) {
			fed <- errors.New("last ping not taken")
			return
		}
		fed <- nil
	}()
	res, err := Run(t.Context(), cfg, Sources{Pings: pings})
	require.NoError(t, err)
	require.NoError(t, <-fed)
	assert.Len(t, res.Samples, 3)

	var progress []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, `msg="measurement progress"`) {
			progress = append(progress, line)
		}
	}
	require.Len(t, progress, 1, "one tick, one progress line:\n%s", buf.String())
	for _, want := range []string{"level=INFO", "samples=2", "target=3", "misses=0", "median_ms=15", "elapsed=", "left="} {
		assert.Contains(t, progress[0], want)
	}
	assert.Contains(t, buf.String(), `msg="measurement finished"`)
	assert.Contains(t, buf.String(), "stop_reason=samples_reached")
}

func TestMissIsLogged(t *testing.T) { synctest.Test(t, testMissIsLogged) }

func testMissIsLogged(t *testing.T) {
	g := newFakeGuest()
	g.answer = func(n int) []time.Duration {
		if n == 1 {
			return nil
		}
		return []time.Duration{ms(1)}
	}
	log, buf := logBuffer(t)
	cfg := fastConfig(1)
	cfg.Logger = log
	res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
	require.NoError(t, err)
	assert.Len(t, res.Misses, 1)
	assert.Contains(t, buf.String(), `level=WARN msg="no screen update for key press" metric=keypress_to_screen press=1`)
	assert.Contains(t, buf.String(), "misses=1")
}

// TestProgressCarriesBothKeypressFigures: the progress and final lines
// of a keypress run carry the first draw and the repaint, so a repaint
// regression shows while the run goes, not only at its end.
func TestProgressCarriesBothKeypressFigures(t *testing.T) {
	g := newFakeGuest()
	g.answer = func(int) []time.Duration { return []time.Duration{ms(1), ms(3), ms(5)} }
	log, buf := logBuffer(t)
	cfg := fastConfig(3)
	cfg.Logger = log
	res, err := Run(t.Context(), cfg, Sources{Keyboard: g, Draws: g.draws})
	require.NoError(t, err)
	require.Len(t, res.Samples, 3)
	var finished string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, `msg="measurement finished"`) {
			finished = line
		}
	}
	require.NotEmpty(t, finished, buf.String())
	assert.Regexp(t, `first_draw_p50_ms=\d`, finished)
	assert.Regexp(t, `repaint_p50_ms=\d`, finished)
	assert.NotContains(t, finished, "median_ms=", "the keypress figures replace the single median")
}

func TestInvalidConfig(t *testing.T) {
	g := newFakeGuest()
	src := Sources{Keyboard: g, Draws: g.draws}
	tests := []struct {
		name string
		cfg  func(c *Config)
		src  Sources
		want []string
	}{
		{name: "no samples", cfg: func(c *Config) { c.Samples = 0 }, src: src, want: []string{"samples is 0"}},
		{name: "no max duration", cfg: func(c *Config) { c.MaxDuration = 0 }, src: src, want: []string{"max duration"}},
		{name: "unknown metric", cfg: func(c *Config) { c.Metric = "rtt" }, src: src, want: []string{`unknown metric "rtt"`}},
		{name: "hold not below cadence", cfg: func(c *Config) { c.Hold = c.Cadence }, src: src, want: []string{"hold is 20ms"}},
		{name: "negative window", cfg: func(c *Config) { c.Window = -time.Second }, src: src, want: []string{"window is -1s"}},
		{name: "negative jitter and grace", cfg: func(c *Config) { c.Jitter, c.Grace = -1, -1 }, src: src, want: []string{"jitter is", "grace is"}},
		{name: "settle not below quiet", cfg: func(c *Config) { c.Settle = c.Quiet }, src: src, want: []string{"settle is 10ms", "less than the quiet gap 10ms"}},
		{name: "negative late wait and baseline", cfg: func(c *Config) { c.LateWait, c.Baseline = -1, -1 }, src: src, want: []string{"late wait is", "baseline is"}},
		{name: "max quiet wait below quiet", cfg: func(c *Config) { c.MaxQuietWait = ms(1) }, src: src, want: []string{"max quiet wait is 1ms"}},
		{name: "bad miss and contamination limits", cfg: func(c *Config) { c.MaxMisses, c.MaxContamination = -1, 1.5 }, src: src, want: []string{"max misses is -1", "max contamination is 1.5"}},
		{name: "NaN contamination limit", cfg: func(c *Config) { c.MaxContamination = math.NaN() }, src: src, want: []string{"max contamination is NaN"}},
		{name: "no keyboard or draws", cfg: func(*Config) {}, src: Sources{}, want: []string{"needs a keyboard", "needs a draw channel"}},
		{name: "ping without channel", cfg: func(c *Config) { c.Metric = PingInterval }, src: src, want: []string{"latency event channel"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig(5)
			tc.cfg(&cfg)
			res, err := Run(t.Context(), cfg, tc.src)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "invalid measurement configuration")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, StopError, res.StopReason)
		})
	}
	downs, _, _ := g.counts()
	assert.Zero(t, downs, "nothing is sent when the configuration is invalid")
}

func TestDefaults(t *testing.T) {
	d := DefaultConfig(KeypressToScreen)
	assert.Equal(t, 2*time.Second, d.Cadence)
	assert.Equal(t, time.Second, d.Window)
	assert.Positive(t, d.Jitter)
	assert.NoError(t, validate(d.withDefaults(), Sources{Keyboard: newFakeGuest(), Draws: make(chan Draw)}))

	assert.Zero(t, d.Quiet, "derived from the window by Run")
	assert.Equal(t, time.Second, d.withDefaults().Quiet, "1s at the default window")
	assert.Equal(t, 10*time.Second, d.withDefaults().MaxQuietWait)
	assert.Equal(t, 150*time.Millisecond, d.Settle)
	assert.Equal(t, 10, d.MaxMisses)
	assert.Equal(t, 0.01, d.MaxContamination)

	c := Config{Cadence: 300 * time.Millisecond}.withDefaults()
	assert.Equal(t, 300*time.Millisecond, c.Window, "window defaults to min(cadence, 1s)")
	assert.Equal(t, DefaultHold, c.Hold)
	assert.Zero(t, c.Jitter, "zero jitter means none")
	assert.Equal(t, c.Quiet, c.Baseline, "baseline defaults to the quiet gap")
	assert.Equal(t, 10*c.Quiet, c.MaxQuietWait)
	assert.Equal(t, 3*time.Second, Config{Quiet: 300 * time.Millisecond}.withDefaults().MaxQuietWait, "10 quiet gaps")
	assert.Equal(t, 300*time.Millisecond, c.Quiet, "the quiet gap defaults to the window")
	assert.Equal(t, time.Second, Config{Window: 3 * time.Second, Cadence: 4 * time.Second}.withDefaults().Quiet, "at most 1s")
	assert.Equal(t, 300*time.Millisecond, Config{Cadence: 50 * time.Millisecond}.withDefaults().Quiet, "at least twice the settle")
	assert.Equal(t, 300*time.Millisecond, Config{Cadence: 50 * time.Millisecond}.withDefaults().Baseline)
	z := Config{}.withDefaults()
	z.Jitter, z.Grace, z.Metric, z.Samples, z.MaxDuration, z.Logger = d.Jitter, d.Grace, d.Metric, d.Samples, d.MaxDuration, nil
	dd := d.withDefaults()
	dd.Logger = nil
	assert.Equal(t, dd, z, "every default of DefaultConfig is also the zero field's")

	assert.Contains(t, KeypressToScreen.Definition(), "surface_drawn")
	assert.Contains(t, KeypressToRepaint.Definition(), "last draw of the burst")
	assert.Contains(t, PingInterval.Definition(), "not a round-trip time")
	assert.Contains(t, Metric("rtt").Definition(), "unknown metric")
}

func TestJitterSchedule(t *testing.T) {
	newRunner := func(seed uint64, jitter time.Duration) *runner {
		cfg := fastConfig(1)
		cfg.Seed, cfg.Jitter = seed, jitter
		r := &runner{cfg: cfg}
		r.rng = newRand(seed)
		return r
	}
	a, b := newRunner(42, 30*time.Millisecond), newRunner(42, 30*time.Millisecond)
	seen := map[time.Duration]bool{}
	for range 200 {
		ga := a.gap()
		assert.Equal(t, ga, b.gap(), "the same seed gives the same gaps")
		assert.GreaterOrEqual(t, ga, 20*time.Millisecond)
		assert.Less(t, ga, 50*time.Millisecond, "jitter is in [0, jitter)")
		seen[ga] = true
	}
	assert.Greater(t, len(seen), 100, "gaps vary")

	none := newRunner(42, 0)
	assert.Equal(t, 20*time.Millisecond, none.gap())

	t.Run("gap runs press to press from sentAt", func(t *testing.T) {
		r := newRunner(7, 30*time.Millisecond)
		r.src = Sources{Keyboard: newFakeGuest()}
		r.kbDone = make(chan kbResult, 1)
		sentAt := time.Now().Add(time.Hour) // alarms far away; nothing fires
		t.Cleanup(func() { r.holdAlarm.stop(); r.deadlineAlarm.stop(); r.pressAlarm.stop() })
		r.seq = 1
		require.Nil(t, r.onKeyboard(t.Context(), kbResult{sentAt: sentAt}))
		gap := r.slot.Sub(sentAt)
		assert.GreaterOrEqual(t, gap, 20*time.Millisecond)
		assert.Less(t, gap, 50*time.Millisecond)
		assert.True(t, r.open)
	})

	t.Run("seed zero picks one and reports it", func(t *testing.T) {
		cfg := Config{Metric: PingInterval, Samples: 1, MaxDuration: time.Minute}
		pings := make(chan Ping, 1)
		pings <- Ping{SampleMS: 1}
		res, err := Run(t.Context(), cfg, Sources{Pings: pings})
		require.NoError(t, err)
		assert.NotZero(t, res.Config.Seed)
	})
}

func TestPressMicrosecondResolution(t *testing.T) {
	// wallclock_us is whole microseconds; a draw in the same microsecond
	// as the press must not be refused or go negative.
	sentAt := time.Unix(1_700_000_000, 123_456_789)
	var p pressState
	p.start(1, sentAt, time.Second, DefaultSettle)
	assert.Equal(t, drawFirst, p.classify(Draw{Wallclock: time.UnixMicro(sentAt.UnixMicro())}))
	assert.Zero(t, p.record().FirstDraw)

	p.start(2, sentAt, time.Second, DefaultSettle)
	assert.Equal(t, drawBefore, p.classify(Draw{Wallclock: time.UnixMicro(sentAt.UnixMicro() - 1)}),
		"a draw a whole microsecond earlier is before the press")
	assert.Equal(t, drawLate, p.classify(Draw{Wallclock: sentAt.Add(time.Second + time.Microsecond)}))
	assert.False(t, p.answered, "refused draws leave the press unanswered")
}

func TestPressBurst(t *testing.T) {
	sentAt := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) Draw { return Draw{Wallclock: sentAt.Add(d)} }
	var p pressState
	p.start(1, sentAt, 100*time.Millisecond, 10*time.Millisecond)
	assert.Equal(t, drawFirst, p.classify(at(ms(20))))
	assert.Equal(t, drawBurst, p.classify(at(ms(25))))
	assert.Equal(t, drawBurst, p.classify(at(ms(35))), "a gap of exactly settle continues the burst")
	assert.Equal(t, drawBurst, p.classify(at(ms(30))), "an out-of-order draw inside the burst")
	assert.Equal(t, sentAt.Add(100*time.Millisecond), p.settled(), "a burst that settles inside the window is decided at its end")
	assert.Equal(t, drawAfter, p.classify(at(ms(46))), "more than settle after the last: the burst is over")
	assert.Equal(t, drawAfter, p.classify(at(ms(50))), "and stays over")
	rec := p.record()
	assert.Equal(t, ms(20), rec.FirstDraw)
	assert.Equal(t, ms(35), rec.Repaint)
	assert.Equal(t, 4, rec.Draws)

	p.start(2, sentAt, 100*time.Millisecond, 10*time.Millisecond)
	assert.Equal(t, drawFirst, p.classify(at(ms(95))))
	assert.Equal(t, sentAt.Add(ms(105)), p.settled(), "a burst near the window's end is decided after its settle")
	assert.Equal(t, drawOverrun, p.classify(at(ms(101))), "the burst goes on past the window")
	assert.Equal(t, 1, p.overrun)
}

func TestDrainDroppedAtEnd(t *testing.T) {
	dropped := make(chan int, 3)
	dropped <- 5
	dropped <- 0 // ignored
	dropped <- 2
	close(dropped)
	log, _ := logBuffer(t)
	r := &runner{src: Sources{Dropped: dropped}, log: log}
	r.drainDropped()
	assert.Equal(t, 7, r.res.Dropped)
}

// stuckKeyboard's key down blocks until its context ends, after telling
// pressed that it was called.
type stuckKeyboard struct{ pressed chan struct{} }

func (k stuckKeyboard) KeyDown(ctx context.Context) (time.Time, error) {
	close(k.pressed)
	<-ctx.Done()
	return time.Time{}, ctx.Err()
}
func (stuckKeyboard) KeyUp(context.Context) error { return nil }

// TestDrawsDuringKeyDownAreCountedAtEnd: draws that arrive while a key
// down is in flight are held until it answers; when the run ends first
// (here the draws stop), they must still be counted, not lost.
func TestDrawsDuringKeyDownAreCountedAtEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kb := stuckKeyboard{pressed: make(chan struct{})}
		draws := make(chan Draw, 8)
		go func() {
			<-kb.pressed
			for range 5 {
				draws <- Draw{Wallclock: time.Unix(0, 0)}
			}
			close(draws)
		}()
		cfg := fastConfig(3)
		cfg.Logger = discardLogger()
		res, err := Run(t.Context(), cfg, Sources{Keyboard: kb, Draws: draws})
		require.ErrorIs(t, err, ErrSourceClosed)
		assert.Equal(t, 5, res.UnpairedDraws, "every draw is accounted for")
	})
}
