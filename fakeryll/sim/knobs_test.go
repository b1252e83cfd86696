package sim_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

// truthRows reads the truth file, failing the test on a malformed one.
func truthRows(t testing.TB, path string) []sim.TruthRow {
	t.Helper()
	rows, err := sim.ReadTruthFile(path)
	require.NoError(t, err)
	return rows
}

// pressAndObserve sends one key-down, reads its draw burst (with no
// draw-spread, so all at one moment) and returns the burst's wallclock
// and the send window.
func pressAndObserve(t *testing.T, c *conn, drawsPerKey int) (wallUS, beforeUS, afterUS int64) {
	t.Helper()
	beforeUS, afterUS = c.keyDown(30)
	first := c.drawnAfter(beforeUS)
	for range drawsPerKey - 1 {
		d := c.drawn()
		assert.Equal(t, first, d, "a burst without spread shares one moment")
	}
	return first.WallclockUS, beforeUS, afterUS
}

func TestDrawDelayIsExact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		refresh time.Duration
	}{
		{"no refresh timer", 40 * time.Millisecond, 0},
		{"zero delay", 0, 0},
		{"refresh ticks", 20 * time.Millisecond, 30 * time.Millisecond},
		{"odd refresh", 3 * time.Millisecond, 7*time.Millisecond + 300*time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			truth := filepath.Join(dir, "truth.csv")
			r := startSim(t, func(c *sim.Config) {
				c.DrawDelay, c.DisplayRefresh, c.DrawJitter = tc.delay, tc.refresh, 0
				c.DrawsPerKey, c.DrawSpread = 3, 0
				c.TruthFile = truth
			})
			c := dialHello(t, r.path)
			require.Equal(t, []string{"surface_drawn"}, c.subscribe("surface_drawn"))
			startUS := r.sim.SessionStart().UnixMicro()

			const keys = 6
			for i := range keys {
				wallUS, beforeUS, afterUS := pressAndObserve(t, c, 3)
				// The row is written when the first draw lands; KeyDraws
				// counts the burst once all of it is queued.
				eventually(t, "burst counted", func() bool { return r.sim.Stats().KeyDraws >= uint64(i+1) })
				rows := truthRows(t, truth)
				require.Len(t, rows, i+1, "one truth row per press")
				row := rows[i]
				assert.Equal(t, i+1, row.Press)
				assert.Equal(t, 3, row.Draws)
				assert.Equal(t, wallUS, row.FirstDrawUS, "the modelled first draw is the one the client saw")
				assert.Equal(t, wallUS, row.LastDrawUS, "no spread, no tail: the repaint ends with its first draw")
				modelled := row.FirstDraw().Microseconds()
				arrivalUS := row.ArrivalUS
				assert.GreaterOrEqual(t, arrivalUS, beforeUS, "wallclock_us - truth is when the key arrived")
				assert.LessOrEqual(t, arrivalUS, afterUS)
				assert.GreaterOrEqual(t, modelled, tc.delay.Microseconds(), "never earlier than the delay")
				if tc.refresh == 0 {
					assert.Equal(t, tc.delay.Microseconds(), modelled)
				} else {
					assert.Zero(t, (wallUS-startUS)%tc.refresh.Microseconds(), "lands on a refresh tick")
					assert.Less(t, modelled, (tc.delay + tc.refresh).Microseconds(), "the first tick after the delay")
				}
			}
			// KeyDraws is counted just after the burst is queued, so the
			// client can see the last burst a moment before the count.
			eventually(t, "every burst counted", func() bool { return r.sim.Stats().KeyDraws >= keys })
			assert.Equal(t, uint64(keys), r.sim.Stats().KeyDraws)
		})
	}
}

func TestEventIsNotSentBeforeItsMoment(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.DrawDelay, c.DisplayRefresh, c.DrawsPerKey = 30*time.Millisecond, 0, 1 })
	c := dialHello(t, r.path)
	c.subscribe("surface_drawn")
	for range 3 {
		before, _ := c.keyDown(30)
		d := c.drawnAfter(before)
		assert.GreaterOrEqual(t, time.Now().UnixMicro(), d.WallclockUS, "received no earlier than its wallclock_us")
	}
}

func TestProducedAtIsSessionRelative(t *testing.T) {
	r := startSim(t, func(c *sim.Config) {
		c.DrawDelay, c.DisplayRefresh, c.DrawsPerKey = time.Millisecond, 10*time.Millisecond, 1
	})
	c := dialHello(t, r.path)
	c.subscribe("surface_drawn")
	before, _ := c.keyDown(30)
	d := c.drawnAfter(before)
	startUS := r.sim.SessionStart().UnixMicro()
	assert.InDelta(t, float64(d.WallclockUS-startUS)/1e6, d.ProducedAtSecs, 1e-6)
	assert.Equal(t, uint8(0), d.DisplayChannelID)
	assert.Equal(t, uint32(0), d.SurfaceID)
}

func TestDrawsPerKeyAndKeyUps(t *testing.T) {
	t.Run("zero draws", func(t *testing.T) {
		truth := filepath.Join(t.TempDir(), "truth")
		r := startSim(t, func(c *sim.Config) { c.DrawsPerKey, c.TruthFile = 0, truth })
		c := dialHello(t, r.path)
		c.subscribe("surface_drawn")
		c.keyDown(30)
		eventually(t, "key handled", func() bool { return r.sim.Stats().KeyNoDraw == 1 })
		assert.Equal(t, []sim.TruthRow{{Press: 1, ArrivalUS: truthRows(t, truth)[0].ArrivalUS}}, truthRows(t, truth),
			"a press that draws nothing has a row with no draw times")
		st := r.sim.Stats()
		assert.Equal(t, uint64(1), st.KeyDowns)
		assert.Zero(t, st.KeyDraws)
	})
	t.Run("key-ups do not draw", func(t *testing.T) {
		r := startSim(t, func(c *sim.Config) { c.DrawsPerKey, c.DrawDelay, c.DisplayRefresh, c.DrawSpread = 5, 0, 0, 0 })
		c := dialHello(t, r.path)
		c.subscribe("surface_drawn")
		before := time.Now().UnixMicro()
		require.True(t, c.call("send_key", map[string]any{"scancode": 30, "state": "up"}).ok())
		require.True(t, c.call("send_key", map[string]any{"scancode": 30, "state": "press"}).ok())
		for range 5 {
			c.drawnAfter(before)
		}
		eventually(t, "burst counted", func() bool { return r.sim.Stats().KeyDraws == 1 })
		st := r.sim.Stats()
		assert.Equal(t, uint64(1), st.KeyDowns, "press is one key-down; up is none")
		assert.Equal(t, uint64(5), st.DrawEvents-1, "five events, after the first paint")
	})
}

func TestOnlySubscribersGetEvents(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.DrawDelay, c.DisplayRefresh, c.DrawsPerKey = 0, 0, 1 })
	c := dialHello(t, r.path)
	before, _ := c.keyDown(30)
	eventually(t, "unseen draw landed", func() bool { return r.sim.Stats().KeyDraws == 1 })
	c.subscribe("surface_drawn")
	second, _ := c.keyDown(31)
	d := c.drawn()
	assert.GreaterOrEqual(t, d.WallclockUS, second, "the first event seen is the second key's, not the first (%d)", before)

	m := c.call("unsubscribe", map[string]any{"events": []string{"surface_drawn"}})
	require.True(t, m.ok())
	c.keyDown(32)
	eventually(t, "third draw landed", func() bool { return r.sim.Stats().KeyDraws == 3 })
	// A status answer after the third draw has been decided proves nothing
	// was queued for it: events are queued before the counter moves.
	require.True(t, c.call("status", map[string]any{}).ok())
	assert.Empty(t, c.events)
}

func TestJitterAndSeed(t *testing.T) {
	run := func(seed uint64) []int64 {
		truth := filepath.Join(t.TempDir(), "truth")
		r := startSim(t, func(c *sim.Config) {
			c.DrawDelay, c.DrawJitter, c.DisplayRefresh, c.DrawsPerKey = 2*time.Millisecond, 5*time.Millisecond, 0, 1
			c.Seed, c.TruthFile = seed, truth
		})
		c := dialHello(t, r.path)
		for i := range 20 {
			c.keyDown(30)
			eventually(t, "draw landed", func() bool { return r.sim.Stats().KeyDraws == uint64(i+1) })
		}
		var out []int64
		for _, row := range truthRows(t, truth) {
			out = append(out, row.FirstDraw().Microseconds())
		}
		return out
	}
	a, b, other := run(7), run(7), run(8)
	require.Len(t, a, 20)
	assert.Equal(t, a, b, "the same seed gives the same delays")
	assert.NotEqual(t, a, other, "another seed gives other delays")
	distinct := map[int64]bool{}
	for _, us := range a {
		assert.GreaterOrEqual(t, us, int64(2000))
		assert.LessOrEqual(t, us, int64(7000))
		distinct[us] = true
	}
	assert.Greater(t, len(distinct), 10, "jitter varies the delay")
}

func TestPingPatternSteady(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.Ping = sim.PingPattern{Mode: sim.PingSteady, Interval: 20 * time.Millisecond} })
	c := dialHello(t, r.path)
	c.subscribe("latency")
	startUS := r.sim.SessionStart().UnixMicro()
	var prev int64
	for i := range 5 {
		var d struct {
			SampleMS    float64 `json:"sample_ms"`
			WallclockUS int64   `json:"wallclock_us"`
		}
		c.event("latency").into(t, "data", &d)
		assert.Equal(t, 20.0, d.SampleMS)
		assert.Zero(t, (d.WallclockUS-startUS)%20000)
		if i > 0 {
			assert.Equal(t, int64(20000), d.WallclockUS-prev)
		}
		prev = d.WallclockUS
	}
}

func TestBackgroundPoisson(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.BackgroundRate, c.DisplayRefresh = 500, 5*time.Millisecond })
	c := dialHello(t, r.path)
	c.subscribe("surface_drawn")
	startUS := r.sim.SessionStart().UnixMicro()
	// 11 draws: one may be the first paint, when a loaded host runs the
	// simulator's schedule after the subscribe (seen beside a second make
	// test: 10 draws received, 9 of them noise).
	for range 11 {
		d := c.drawn()
		assert.Zero(t, (d.WallclockUS-startUS)%5000, "noise lands on refresh ticks too")
	}
	assert.Zero(t, r.sim.Stats().KeyDowns, "no key caused them")
	assert.GreaterOrEqual(t, r.sim.Stats().BackgroundDraws, uint64(10))
}

// TestFloodOverrunsQueueAndReportsDropped is the protocol document's
// queue (queue-drop=oldest): oldest dropped, reported to subscribers.
func TestFloodOverrunsQueueAndReportsDropped(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.Flood, c.QueueDrop = 200_000, sim.DropOldest })
	c := dialHello(t, r.path)
	c.subscribe("surface_drawn", "dropped")
	// Do not read: the socket buffer fills, then the 256-event queue.
	eventually(t, "events dropped", func() bool { return r.sim.Stats().Dropped > 0 })
	produced := r.sim.Stats().DrawEvents
	eventually(t, "the session keeps going while the client is stuck", func() bool {
		return r.sim.Stats().DrawEvents > produced+10_000
	})
	// Stop the flood reaching us, then read everything that is queued.
	c.send("unsubscribe", map[string]any{"events": []string{"surface_drawn"}})
	var dropped []uint64
	sinceLast := 0
	for {
		m := c.read()
		if !m.isEvent() {
			break // the unsubscribe answer
		}
		if m.str("event") == "dropped" {
			var d struct {
				Count uint64 `json:"count"`
			}
			m.into(t, "data", &d)
			assert.Positive(t, d.Count)
			if len(dropped) > 0 {
				assert.Positive(t, sinceLast, "never two dropped events in a row")
			}
			dropped = append(dropped, d.Count)
			sinceLast = 0
			continue
		}
		sinceLast++
	}
	// Nothing more is queued now. What is still queued drains, and any
	// drops not yet reported arrive as one last dropped event.
	sum := func() (total uint64) {
		for _, n := range dropped {
			total += n
		}
		return total
	}
	for sum() < r.sim.Stats().Dropped {
		m := c.read()
		require.True(t, m.isEvent())
		if m.str("event") == "dropped" {
			var d struct {
				Count uint64 `json:"count"`
			}
			m.into(t, "data", &d)
			dropped = append(dropped, d.Count)
		}
	}
	require.NotEmpty(t, dropped)
	total := sum()
	assert.Equal(t, r.sim.Stats().Dropped, total, "every drop is reported exactly once")
	assert.Less(t, len(dropped), int(total), "one dropped event per episode, not per drop")
	assert.True(t, c.call("status", map[string]any{}).ok(), "the connection still works")
}

func TestHangAfter(t *testing.T) {
	r := startSim(t, func(c *sim.Config) {
		c.HangAfter = 300 * time.Millisecond
		c.Ping = sim.PingPattern{Mode: sim.PingSteady, Interval: 5 * time.Millisecond}
	})
	c := dialHello(t, r.path)
	require.True(t, c.call("status", map[string]any{}).ok())
	select {
	case <-r.sim.Hung():
	case <-time.After(wait):
		require.FailNow(t, "never hung")
	}
	pings := r.sim.Stats().Pings
	c.send("status", map[string]any{})
	eventually(t, "request read", func() bool { return r.sim.Stats().Ignored == 1 })
	_, err := os.Lstat(r.path)
	assert.NoError(t, err, "the socket stays")
	other := dial(t, r.path) // the kernel still queues the connection

	// End the process: whatever the server wrote would now be read
	// before EOF. It wrote nothing.
	r.stop()
	require.NoError(t, <-r.errc)
	r.errc <- nil
	m, err := c.tryRead(wait)
	require.Error(t, err, "a hung server answers nothing, got %s", m.raw)
	assert.NotErrorIs(t, err, os.ErrDeadlineExceeded)
	m, err = other.tryRead(wait)
	require.Error(t, err, "not even busy, got %s", m.raw)
	assert.NotErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Equal(t, pings, r.sim.Stats().Pings, "the session stopped too")
	assert.Zero(t, r.sim.Stats().Busy)
}

func TestCrashAfter(t *testing.T) {
	cfg, _ := newConfig(t, func(c *sim.Config) { c.CrashAfter = 200 * time.Millisecond })
	s, err := sim.New(cfg)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(t.Context()) }()
	select {
	case <-s.Ready():
	case err := <-errc:
		require.FailNowf(t, "stopped early", "%v", err)
	}
	c := dialHello(t, cfg.SocketPath)
	select {
	case err := <-errc:
		assert.NoError(t, err, "a session that ends is not an error (ryll exits 0)")
	case <-time.After(wait):
		require.FailNow(t, "session never ended")
	}
	_, err = os.Lstat(cfg.SocketPath)
	assert.ErrorIs(t, err, fs.ErrNotExist, "socket unlinked")
	c.expectEOF()
}

func TestStartupDelay(t *testing.T) {
	cfg, _ := newConfig(t, func(c *sim.Config) { c.StartupDelay = 150 * time.Millisecond })
	s, err := sim.New(cfg)
	require.NoError(t, err)
	called := time.Now()
	errc := make(chan error, 1)
	ctx, cancel := contextWithCancel(t)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-errc })
	select {
	case <-s.Ready():
	case <-time.After(wait):
		require.FailNow(t, "never ready")
	}
	assert.GreaterOrEqual(t, s.SessionStart().Sub(called), 150*time.Millisecond-time.Microsecond,
		"the socket and session come after the delay")
	dialHello(t, cfg.SocketPath)
}

func TestStartupDelayInterrupted(t *testing.T) {
	cfg, _ := newConfig(t, func(c *sim.Config) { c.StartupDelay = time.Hour })
	s, err := sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := contextWithCancel(t)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	cancel()
	select {
	case err := <-errc:
		assert.NoError(t, err)
	case <-time.After(wait):
		require.FailNow(t, "Run ignored cancellation during the startup delay")
	}
	_, err = os.Lstat(cfg.SocketPath)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestSurfacesDelay(t *testing.T) {
	t.Run("before the surface exists", func(t *testing.T) {
		truth := filepath.Join(t.TempDir(), "truth")
		r := startSim(t, func(c *sim.Config) {
			c.SurfacesDelay, c.DrawDelay, c.DisplayRefresh, c.TruthFile = time.Hour, 0, 0, truth
		})
		c := dialHello(t, r.path)
		m := c.call("status", map[string]any{})
		assert.Empty(t, c.status(m).Surfaces)
		assert.Contains(t, string(m.fields["result"]), `"surfaces":[]`, "an empty list, not null")
		assert.Equal(t, sim.CodeNoSuchSurface, c.call("screenshot", map[string]any{}).errCode())
		c.subscribe("surface_drawn")
		c.keyDown(30)
		eventually(t, "key handled", func() bool { return r.sim.Stats().KeyNoDraw == 1 })
		rows := truthRows(t, truth)
		require.Len(t, rows, 1)
		assert.False(t, rows[0].Drawn(), "no draw lands before the surface")
		require.True(t, c.call("status", map[string]any{}).ok())
		assert.Empty(t, c.events)
	})
	t.Run("surface appears", func(t *testing.T) {
		const delay = 100 * time.Millisecond
		r := startSim(t, func(c *sim.Config) { c.SurfacesDelay = delay })
		c := dialHello(t, r.path)
		eventually(t, "surface appears", func() bool {
			return len(c.status(c.call("status", map[string]any{})).Surfaces) == 1
		})
		assert.GreaterOrEqual(t, time.Since(r.sim.SessionStart()), delay, "not before the delay")
		assert.True(t, c.call("screenshot", map[string]any{"format": "rgba"}).ok())
	})
}

func TestAgent(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		r := startSim(t, nil)
		c := dialHello(t, r.path)
		assert.False(t, c.status(c.call("status", map[string]any{})).AgentConnected, "ryll starts with agent_connected false")
		m := c.call("paste", map[string]any{"text": "x"})
		assert.True(t, m.ok(), "ryll types a paste as keystrokes: no agent needed, never agent_not_connected: %s", m.raw)
	})
	t.Run("on from the start", func(t *testing.T) {
		r := startSim(t, func(c *sim.Config) { c.Agent = true })
		c := dialHello(t, r.path)
		assert.True(t, c.status(c.call("status", map[string]any{})).AgentConnected)
	})
	t.Run("connects later", func(t *testing.T) {
		r := startSim(t, func(c *sim.Config) { c.Agent, c.AgentAfter = false, 200*time.Millisecond })
		c := dialHello(t, r.path)
		c.subscribe("agent_connected")
		if !c.status(c.call("status", map[string]any{})).AgentConnected {
			// Still disconnected after subscribing: the transition is ours.
			ev := c.event("agent_connected")
			assert.JSONEq(t, `{"connected": true}`, string(ev.fields["data"]))
		} else {
			t.Log("the agent connected before we subscribed; its event was not ours to see")
		}
		assert.True(t, c.status(c.call("status", map[string]any{})).AgentConnected)
		assert.True(t, c.call("paste", map[string]any{"text": "x"}).ok())
	})
}

func TestProtocol10(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.ProtocolVersion = sim.Version{Major: 1, Minor: 0} })
	c := dial(t, r.path)
	m := c.call("hello", map[string]any{"client_name": "t", "protocol_version": "1.2"})
	require.True(t, m.ok())
	var res struct {
		ServerName       string   `json:"server_name"`
		ProtocolVersion  string   `json:"protocol_version"`
		SupportedMethods []string `json:"supported_methods"`
		SupportedEvents  []string `json:"supported_events"`
	}
	m.into(t, "result", &res)
	assert.Equal(t, "1.0", res.ProtocolVersion)
	assert.NotContains(t, res.SupportedEvents, "surface_drawn")
	assert.Equal(t, []string{"latency"}, c.subscribe("surface_drawn", "latency"), "silently refused")
	assert.True(t, c.call("send_key", map[string]any{"scancode": 0x4BE0, "state": "press"}).ok(), "verbatim before 1.2")
}

func TestConfigKnobsReachTheSimulator(t *testing.T) {
	env := map[string]string{"FAKERYLL_DRAW_DELAY": "7ms", "FAKERYLL_DRAWS_PER_KEY": "2"}
	cfg, err := sim.LoadConfig(map[string]string{"display-refresh": "0"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	truth := filepath.Join(t.TempDir(), "truth")
	r := startSim(t, func(c *sim.Config) {
		c.DrawDelay, c.DisplayRefresh, c.DrawsPerKey = cfg.DrawDelay, cfg.DisplayRefresh, cfg.DrawsPerKey
		c.DrawSpread, c.TruthFile = 0, truth
	})
	c := dialHello(t, r.path)
	c.subscribe("surface_drawn")
	pressAndObserve(t, c, 2)
	eventually(t, "the burst counted", func() bool { return r.sim.Stats().KeyDraws >= 1 })
	rows := truthRows(t, truth)
	require.Len(t, rows, 1)
	assert.Equal(t, 7*time.Millisecond, rows[0].FirstDraw())
	assert.Equal(t, uint64(1), r.sim.Stats().KeyDraws)
}
