// Package clienttest drives fakeryll's simulator through the project's own
// control-socket client (harness/control), the way the loadtest will. It
// is a separate package so that the simulator's tests do not depend on
// that client.
package clienttest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/harness/control"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 15 * time.Second

// startSim runs a simulator with a truth file until the test ends.
func startSim(t *testing.T, mutate func(*sim.Config)) (socket, truth string, s *sim.Sim) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fr")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg := sim.DefaultConfig()
	cfg.SocketPath = filepath.Join(dir, "s")
	cfg.TruthFile = filepath.Join(dir, "truth")
	cfg.Ping = sim.PingPattern{Mode: sim.PingSteady, Interval: 50 * time.Millisecond}
	mutate(&cfg)
	s, err = sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err)
		case <-time.After(wait):
			t.Error("simulator did not stop")
		}
	})
	select {
	case <-s.Ready():
	case err := <-errc:
		require.FailNowf(t, "simulator stopped", "%v", err)
	case <-time.After(wait):
		require.FailNow(t, "simulator not ready")
	}
	return cfg.SocketPath, cfg.TruthFile, s
}

// truthUS returns the modelled first-draw latency of every press, in µs,
// once the simulator has finished n presses.
func truthUS(t *testing.T, s *sim.Sim, path string, n int) []int64 {
	t.Helper()
	deadline := time.Now().Add(wait)
	for s.Stats().KeyDraws < uint64(n) {
		require.False(t, time.Now().After(deadline), "press %d never finished", n)
		time.Sleep(time.Millisecond)
	}
	rows, err := sim.ReadTruthFile(path)
	require.NoError(t, err)
	var out []int64
	for _, r := range rows {
		out = append(out, r.FirstDraw().Microseconds())
	}
	return out
}

// nextEvent returns the next event called name.
func nextEvent(ctx context.Context, t *testing.T, c *control.Client, name string) control.Event {
	t.Helper()
	for {
		select {
		case ev := <-c.Events():
			if ev.Name == name {
				return ev
			}
		case <-ctx.Done():
			require.FailNow(t, "no "+name+" event")
		}
	}
}

func TestDrivenByHarnessClient(t *testing.T) {
	socket, truth, s := startSim(t, func(c *sim.Config) {
		c.DrawDelay, c.DrawJitter, c.DisplayRefresh = 10*time.Millisecond, 4*time.Millisecond, 15*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := control.Dial(ctx, socket, control.Options{ClientName: "fakeryll-clienttest"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	assert.True(t, c.SupportsEvent(control.EventSurfaceDrawn))
	st, err := c.Status(ctx)
	require.NoError(t, err)
	require.Len(t, st.Surfaces, 1)
	subs, err := c.Subscribe(ctx, control.EventSurfaceDrawn, control.EventPasteCompleted, control.EventLatency)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{control.EventSurfaceDrawn, control.EventPasteCompleted, control.EventLatency}, subs)

	lat, err := nextEvent(ctx, t, c, control.EventLatency).Latency()
	require.NoError(t, err)
	assert.Equal(t, 50.0, lat.SampleMS)

	const keys = 5
	for i := range keys {
		sentAt, err := c.SendKey(ctx, 0x1c, control.KeyDown)
		require.NoError(t, err)
		_, err = c.SendKey(ctx, 0x1c, control.KeyUp)
		require.NoError(t, err)
		var first control.SurfaceDrawn
		for first.WallclockUS == 0 {
			d, err := nextEvent(ctx, t, c, control.EventSurfaceDrawn).SurfaceDrawn()
			require.NoError(t, err)
			if int64(d.WallclockUS) >= sentAt.UnixMicro() { // not the session's first paint
				first = d
			}
		}
		for range sim.DefaultConfig().DrawsPerKey - 1 { // the rest of the burst
			nextEvent(ctx, t, c, control.EventSurfaceDrawn)
		}
		modelled := truthUS(t, s, truth, i+1)
		require.Len(t, modelled, i+1)
		measured := int64(first.WallclockUS) - sentAt.UnixMicro()
		assert.GreaterOrEqual(t, measured, modelled[i], "the client's clock starts before the key arrives")
	}

	shot, err := c.Screenshot(ctx, nil, control.FormatPNG)
	require.NoError(t, err)
	assert.Equal(t, 1024, shot.Width)
	assert.Equal(t, 768, shot.Height)

	ack, err := c.Paste(ctx, "ok", control.DefaultCharDelay)
	require.NoError(t, err)
	pc, err := nextEvent(ctx, t, c, control.EventPasteCompleted).PasteCompleted()
	require.NoError(t, err)
	assert.Equal(t, ack.RequestID, pc.RequestID)
	assert.EqualValues(t, 2, pc.CharsSent)
}

func TestHarnessClientSeesVersion10(t *testing.T) {
	socket, _, _ := startSim(t, func(c *sim.Config) { c.ProtocolVersion = sim.Version{Major: 1, Minor: 0} })
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := control.Dial(ctx, socket, control.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	assert.False(t, c.SupportsEvent(control.EventSurfaceDrawn), "a 1.0 server offers no surface_drawn")
	subs, err := c.Subscribe(ctx, control.EventSurfaceDrawn)
	require.NoError(t, err)
	assert.Empty(t, subs)
}
