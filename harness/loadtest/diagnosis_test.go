package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// setupSession runs Setup against fakeryll with knobs, torn down at the
// end of the test.
func setupSession(t *testing.T, f fake, knobs ...string) *Session {
	t.Helper()
	r, err := Setup(context.Background(), f.cfg, f.with(knobs...))
	t.Cleanup(func() {
		ctx, cancel := cloud.CleanupContext(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, r.Teardown(ctx))
	})
	require.NoError(t, err)
	return r
}

// Every event that does not decode is counted (malformed lines and
// events with bad data alike, during the first paint and the
// measurement), and more than a stated share of them fails the run.
func TestUndecodableEventsAreCountedAndFailTheRun(t *testing.T) {
	t.Parallel()
	f := fakeConfig(t, map[string]string{"LATENCY_TRANSCRIPT": "1"})
	r := setupSession(t, f, "FAKERYLL_MALFORMED_EVERY=4")
	m, err := r.Measure(t.Context())
	require.Error(t, err)
	require.NotNil(t, m)
	skipIfTheHostStoppedIt(t, m)
	assert.Contains(t, err.Error(), "could not be decoded")
	assert.Contains(t, err.Error(), "more than 1%")
	assert.Equal(t, measure.StopError, m.Result.StopReason, "a run that failed on its inputs did not succeed")

	// The transcript holds every line received: count the mangled ones.
	require.NoError(t, r.Teardown(t.Context()))
	tr, err := os.ReadFile(filepath.Join(f.cfg.ResultsDir, results.TranscriptName(f.cfg.RunID)))
	require.NoError(t, err)
	sent := strings.Count(string(tr), `\"count\":\"many\"`)
	require.Positive(t, sent, "fakeryll sent malformed events")
	assert.Equal(t, uint64(sent), m.Malformed, "every malformed event is counted")
	s := r.Sidecar(m, time.Now(), err)
	assert.Equal(t, results.StopError, s.StopReason)
	assert.Contains(t, strings.Join(s.Errors, "\n"), "could not be decoded")
}

// A dropped event whose count does not decode still reports a loss, so
// the press it falls in is suspect; a surface_drawn that does not decode
// is counted, not silently skipped.
func TestPumpCountsUndecodableEventsAndKeepsADroppedOne(t *testing.T) {
	srv, cli := net.Pipe()
	c := control.NewClient(cli, control.Options{})
	t.Cleanup(func() { _ = c.Close() })
	r := &Session{Client: c, logger: slog.New(slog.DiscardHandler)}
	draws := make(chan measure.Draw, 8)
	pings := make(chan measure.Ping, 8)
	dropped := make(chan int, 8)
	done := make(chan struct{})
	var bad undecodable
	go r.pump(t.Context(), draws, pings, dropped, &bad, done)
	w := bufio.NewWriter(srv)
	for _, line := range []string{
		`{"event":"surface_drawn","data":{"display_channel_id":0,"surface_id":0,"wallclock_us":"soon"}}`,
		`{"event":"dropped","data":{"count":"many"}}`,
		`{"event":"dropped","data":{"count":3}}`,
	} {
		_, _ = w.WriteString(line + "\n")
	}
	require.NoError(t, w.Flush())
	assert.Equal(t, 1, <-dropped, "an undecodable dropped event still reports a loss")
	assert.Equal(t, 3, <-dropped)
	_ = srv.Close()
	<-done
	assert.Equal(t, undecodable{draws: 1, dropped: 1}, bad)
	assert.Empty(t, draws, "the bad draw is not a draw")
}

// A signal while the console's first paint settles (before any press)
// is an interrupt, with the signal named: never an error.
func TestInterruptDuringTheFirstPaintIsInterrupted(t *testing.T) {
	f := fakeConfig(t, nil)
	// A steady background draw every 100 ms: the 300 ms quiet gap never
	// comes, so the run is still settling when the signal arrives.
	r := setupSession(t, f, "FAKERYLL_BACKGROUND_RATE=10", "FAKERYLL_BACKGROUND_PATTERN=steady")
	ctx, cancel := context.WithCancelCause(t.Context())
	time.AfterFunc(time.Second, func() { cancel(errors.New("received terminated")) })
	m, err := r.Measure(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "received terminated")
	assert.Contains(t, err.Error(), "first paint")
	require.NotNil(t, m, "what was collected is returned")
	assert.Equal(t, measure.StopInterrupted, m.Result.StopReason)
	assert.Positive(t, m.InitialDraws)
	assert.Equal(t, results.StopInterrupted, r.Sidecar(m, time.Now(), err).StopReason)
}

// A console that never stops drawing is refused within the run's own
// maximum duration, not the (longer) readiness timeout, and the error
// says which bound it was.
func TestAFloodIsRefusedWithinTheMaxDuration(t *testing.T) {
	t.Parallel()
	f := fakeConfig(t, map[string]string{"LATENCY_MAX_DURATION": "3s", "LATENCY_SAMPLES": "3"})
	// A draw every 20 ms: only a stall of the whole host for the quiet
	// gap (300 ms) could let the first paint look settled.
	r := setupSession(t, f, "FAKERYLL_BACKGROUND_RATE=50", "FAKERYLL_BACKGROUND_PATTERN=steady")
	m, err := r.Measure(t.Context())
	if err == nil && m != nil && m.Host != nil {
		// Seen beside a second make test (20 runnable on 2 cores): the run
		// passed. Only a flood held back for the whole quiet gap lets the
		// first paint settle, and a host that busy can hold fakeryll off
		// the CPU that long.
		if why := results.NewHostRecord(*m.Host).BusyReasons; len(why) > 0 {
			bg := m.Result.Background
			t.Skipf("the flood's run passed (%d samples, %d background draws in %s) while the host was too busy (%s): "+
				"fakeryll was probably held off the CPU for the quiet gap; run it again on a quieter host",
				len(m.Result.Samples), bg.Draws, bg.Observed.Round(time.Millisecond), strings.Join(why, "; "))
		}
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "kept drawing for 3s")
	assert.Contains(t, err.Error(), "LATENCY_MAX_DURATION=3s")
	assert.Contains(t, err.Error(), "LATENCY_READY_TIMEOUT=20s")
}

// An A/B stopped by a signal during a B block: every leg's sidecar tells
// how it ended. A's blocks each reached their share, so its sidecar said
// samples_reached with 5 of 20 samples and no error, and latency-merge
// counted it a success.
func TestABInterruptedInABBlockRecordsEveryLegsEnd(t *testing.T) {
	t.Parallel()
	f := fakeConfig(t, map[string]string{
		"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "127.0.0.1:5900", "LATENCY_B_CONSOLE": "127.0.0.1:5901",
		"LATENCY_SAMPLES": "20", "LATENCY_AB_BLOCK": "5",
	})
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	opts := f.opts
	opts.LegEnv = func(leg string) []string {
		if leg != "B" {
			return nil
		}
		// SIGTERM once B's first block is under way; B's console never
		// draws, so that block cannot have ended by then.
		time.AfterFunc(1500*time.Millisecond, func() { cancel(errors.New("received terminated")) })
		return []string{"FAKERYLL_DRAWS_PER_KEY=0"}
	}
	ab := SetupAB(ctx, f.cfg, opts)
	t.Cleanup(func() { assert.NoError(t, ab.Teardown(context.Background())) })
	require.NoError(t, ab.SetupErr)
	runErr := ab.Run(ctx)
	require.Error(t, runErr)
	assert.ErrorIs(t, runErr, context.Canceled)
	out, err := ab.WriteResults(nil)
	require.NoError(t, err)
	a, b := out.Legs[0].Sidecar, out.Legs[1].Sidecar
	require.Equal(t, 5, a.SamplesCollected, "A's first block was complete")
	assert.Less(t, b.SamplesCollected, 5, "B was stopped mid-block")
	for _, s := range []results.Sidecar{a, b} {
		assert.Equal(t, results.StopInterrupted, s.StopReason, "%s", s.RunID)
		require.NotEmpty(t, s.Errors, "%s says it ended early", s.RunID)
		assert.Contains(t, strings.Join(s.Errors, "\n"), "received terminated")
	}
	assert.Contains(t, strings.Join(a.Errors, "\n"), "A leg ended after 5 of 20 samples")
	back, err := results.ReadSidecar(filepath.Join(f.cfg.ResultsDir, results.SidecarName(a.RunID)))
	require.NoError(t, err)
	assert.Equal(t, results.StopInterrupted, back.StopReason, "what is on disk says so too")
}

// A ryll that stops answering mid-run is named as hung (nothing at all
// came on the socket), with the verb that waited: it said only "waiting
// for response: context deadline exceeded" before.
func TestAHungRyllIsNamed(t *testing.T) {
	t.Parallel()
	f := fakeConfig(t, map[string]string{"LATENCY_SAMPLES": "100"})
	r := setupSession(t, f, "FAKERYLL_HANG_AFTER=3s")
	m, err := r.Measure(t.Context())
	require.Error(t, err)
	require.NotNil(t, m)
	skipIfTheHostStoppedIt(t, m)
	assert.Contains(t, err.Error(), "send_key")
	// Nothing came, or (a request written just before the hang, on a
	// loaded host) only the events sent before it: either way named as
	// no answer, with what did come.
	assert.Regexp(t, `no response \((nothing at all came|\d+ lines came) from the server`, err.Error())
	assert.Equal(t, measure.StopError, m.Result.StopReason)
}

// A stall reaches the sidecar (stalls, stop reason) and the summary.
func TestSidecarAndSummaryNameAStall(t *testing.T) {
	f := fakeConfig(t, map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "127.0.0.1:5900"})
	r := &Session{Cfg: f.cfg, Start: time.Now()}
	m := &Measurement{Result: measure.Result{StopReason: measure.StopStall,
		Stalls: []measure.Stall{{Press: 8, Duration: 4824 * time.Millisecond, Presses: 1, Draws: 23}}}}
	s := r.Sidecar(m, time.Now(), fmt.Errorf("%w: press 8 got no draw for 4.824s", measure.ErrStall))
	assert.Equal(t, results.StopStall, s.StopReason)
	assert.Equal(t, []results.Stall{{Press: 8, DurationS: 4.824, Presses: 1, Draws: 23}}, s.Stalls)
	var table strings.Builder
	require.NoError(t, results.WriteSummary(&table, s))
	assert.Contains(t, table.String(), "press 8 saw no draw for 4.824 s (1 press(es) held back), then 23 draws at once")
}

// A signal mid-measurement is an interrupt every time: the pump closing
// its channels and the cancel race (before, about 1 in 7 came out as an
// error after a 2.2 s wait for an exit that never came).
func TestSignalMidMeasurementIsAlwaysInterrupted(t *testing.T) {
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			f := fakeConfig(t, map[string]string{"LATENCY_SAMPLES": "50"})
			r := setupSession(t, f)
			ctx, cancel := context.WithCancelCause(t.Context())
			time.AfterFunc(time.Second+time.Duration(i)*137*time.Millisecond, func() { cancel(errors.New("received terminated")) })
			m, err := r.Measure(ctx)
			require.Error(t, err)
			require.NotNil(t, m)
			skipIfTheHostStoppedIt(t, m)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Contains(t, err.Error(), "received terminated")
			assert.NotContains(t, err.Error(), "control connection")
			assert.Equal(t, measure.StopInterrupted, m.Result.StopReason)
			assert.Equal(t, results.StopInterrupted, r.Sidecar(m, time.Now(), err).StopReason)
		})
	}
}

// A console that stops for 5 s mid-run (fakeryll's stall knobs, as QEMU
// under kill -STOP and -CONT) is reported as a stall, through the real
// client: before, it failed as "the guest draws on its own".
func TestAStalledConsoleIsReportedAsAStall(t *testing.T) {
	t.Parallel()
	f := fakeConfig(t, map[string]string{"LATENCY_SAMPLES": "20", "LATENCY_CADENCE": "300ms", "LATENCY_KEY_HOLD": "30ms",
		"LATENCY_CADENCE_JITTER": "100ms"})
	// 3 s after the session's start: several answered presses first on a
	// calm host, which a stall needs (a console that never answered is
	// no_draws). On a host too busy to keep time the first press may
	// come later than that.
	r := setupSession(t, f, "FAKERYLL_STALL_AFTER=3s", "FAKERYLL_STALL_FOR=5s")
	m, err := r.Measure(t.Context())
	require.Error(t, err)
	require.NotNil(t, m)
	skipIfTheHostStoppedIt(t, m, measure.StopStall)
	if len(m.Result.Samples) == 0 && m.Host != nil && len(m.Host.BusyReasons) > 0 {
		t.Skipf("the stall began before the first answered press, on a host too busy to keep time (%s), so it could "+
			"not be a stall; run it again on a quieter host", strings.Join(m.Host.BusyReasons, "; "))
	}
	assert.ErrorIs(t, err, measure.ErrStall)
	assert.NotErrorIs(t, err, measure.ErrBackground)
	assert.Equal(t, measure.StopStall, m.Result.StopReason)
	require.NotEmpty(t, m.Result.Stalls)
	assert.Greater(t, m.Result.Stalls[0].Duration, time.Second)
	assert.Contains(t, err.Error(), "catching up")
	s := r.Sidecar(m, time.Now(), err)
	assert.Equal(t, results.StopStall, s.StopReason)
	assert.NotEmpty(t, s.Stalls)
}

// A run that stopped on what a busy host causes by itself says, besides
// its own cause, that the host was too busy and why; any other stop, or
// the same stop on a host that kept time, says only its own.
func TestAStopABusyHostCanCauseNamesTheHost(t *testing.T) {
	t.Parallel()
	busy := []string{"12.0 runnable tasks on average (max 20) on 2 cores, above 2.0 per core"}
	stopped := fmt.Errorf("%w: 40 draws no key caused", measure.ErrBackground)
	for _, stop := range []measure.StopReason{measure.StopBackground, measure.StopStall, measure.StopLateDraws} {
		err := onABusyHost(stopped, stop, busy)
		require.Error(t, err)
		assert.ErrorIs(t, err, measure.ErrBackground, "%s: the stop's own error is kept", stop)
		assert.Contains(t, err.Error(), "40 draws no key caused", stop)
		assert.Contains(t, err.Error(), "host was too busy", stop)
		assert.Contains(t, err.Error(), busy[0], "%s: the reason is named", stop)
	}
	for _, stop := range []measure.StopReason{measure.StopError, measure.StopNoDraws, measure.StopInterrupted} {
		assert.Equal(t, stopped, onABusyHost(stopped, stop, busy), "%s is not the host's to cause", stop)
	}
	assert.Equal(t, stopped, onABusyHost(stopped, measure.StopBackground, nil), "a host that kept time is not named")
	assert.NoError(t, onABusyHost(nil, measure.StopSamplesReached, busy), "a run that did not fail has no error to add to")
}
