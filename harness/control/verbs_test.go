package control

import (
	"bytes"
	"context"
	"image"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

// Tests of each verb and of Dial against the simulator.

// docHelloMethods and docHelloEvents are the lists in the protocol
// document's hello example.
var (
	docHelloMethods = []string{"hello", "status", "send_key", "paste", "screenshot", "subscribe", "unsubscribe"}
	docHelloEvents  = []string{"latency", "agent_connected", "paste_completed", "paste_failed", "dropped", "surface_drawn"}
)

func TestHelloExchangesNamesAndVersions(t *testing.T) {
	s := startSim(t, nil)
	before := time.Now()
	c, w := s.hello(t, Options{ClientName: "control-test"})

	h, ok := c.Server()
	require.True(t, ok)
	assert.Equal(t, "ryll", h.ServerName)
	assert.Equal(t, "1.2", h.ProtocolVersion)
	assert.Equal(t, Version{1, 2}, h.Version)
	assert.ElementsMatch(t, docHelloMethods, h.SupportedMethods)
	assert.ElementsMatch(t, docHelloEvents, h.SupportedEvents)
	assert.True(t, c.SupportsMethod("screenshot"))
	assert.False(t, c.SupportsMethod("mouse_move"))
	assert.True(t, c.SupportsEvent(EventSurfaceDrawn))
	assert.False(t, c.SupportsEvent(EventDigestUpdated))
	assert.False(t, h.Received.Before(before), "Received is stamped when the answer is read")
	assert.True(t, hasMonotonic(h.Received))

	reqs := w.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "hello", reqs[0].Method)
	assert.JSONEq(t, `{"client_name": "control-test", "protocol_version": "1.2"}`, string(reqs[0].Params))
}

func TestHelloAcceptsAnyMinorVersion(t *testing.T) {
	for _, tc := range []struct {
		server sim.Version
		want   Version
	}{
		{sim.Version{Major: 1, Minor: 0}, Version{1, 0}},
		{sim.Version{Major: 1, Minor: 1}, Version{1, 1}},
		{sim.Version{Major: 1, Minor: 2}, Version{1, 2}},
		{sim.Version{Major: 1, Minor: 3}, Version{1, 3}},
		{sim.Version{Major: 1, Minor: 10}, Version{1, 10}},
	} {
		t.Run(tc.server.String(), func(t *testing.T) {
			s := startSim(t, func(c *sim.Config) { c.ProtocolVersion = tc.server })
			c := s.dial(t)
			h, ok := c.Server()
			require.True(t, ok)
			assert.Equal(t, tc.want, h.Version)
			st, err := c.Status(t.Context())
			require.NoError(t, err, "a %s server is usable", tc.server)
			assert.True(t, st.SpiceConnected)

			// surface_drawn came with 1.1: discover it, never assume it.
			drawn := tc.want.AtLeast(1, 1)
			assert.Equal(t, drawn, c.SupportsEvent(EventSurfaceDrawn))
			subs, err := c.Subscribe(t.Context(), EventSurfaceDrawn)
			require.NoError(t, err)
			assert.Equal(t, drawn, len(subs) == 1, "subscribed %v", subs)
		})
	}
}

func TestHelloRefusedByServerOfAnotherMajor(t *testing.T) {
	s := startSim(t, func(c *sim.Config) { c.ProtocolVersion = sim.Version{Major: 2, Minor: 0} })
	_, err := Dial(t.Context(), s.path, Options{BusyRetryInterval: time.Millisecond})
	var vm *VersionMismatchError
	require.ErrorAs(t, err, &vm)
	assert.Equal(t, ProtocolVersion, vm.Client)
	var pe *ProtocolError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, CodeProtocolVersionMismatch, pe.Code)
	assert.Contains(t, err.Error(), "1.2")
	assert.Equal(t, uint64(1), s.Stats().Connections, "a version mismatch is not retried")
}

func TestNoHelloYetLeavesConnectionUsable(t *testing.T) {
	s := startSim(t, nil)
	c, _ := s.connect(t, Options{})

	_, err := c.Status(t.Context())
	var pe *ProtocolError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, CodeNoHelloYet, pe.Code)
	assert.Equal(t, "status", pe.Method)

	_, err = c.Hello(t.Context())
	require.NoError(t, err, "the connection stays open after no_hello_yet")
	_, err = c.Status(t.Context())
	assert.NoError(t, err)
}

func TestDialRetriesWhileBusy(t *testing.T) {
	s := startSim(t, nil)
	first, _ := s.hello(t, Options{}) // holds the socket: every other client is busy
	res := goCall(func() (*Client, error) {
		return Dial(t.Context(), s.path, Options{BusyRetryInterval: time.Millisecond})
	})
	eventually(t, "two busy refusals", func() bool { return s.Stats().Busy >= 2 })
	require.NoError(t, first.Close())
	second, err := res.wait(t)
	require.NoError(t, err, "Dial retried until the socket was free")
	t.Cleanup(func() { _ = second.Close() })
	_, err = second.Status(t.Context())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, s.Stats().Busy, uint64(2))
}

func TestDialReportsBusyWhenContextEnds(t *testing.T) {
	s := startSim(t, nil)
	first := s.dial(t) // holds the socket: every other client is busy

	ctx, cancel := context.WithCancel(t.Context())
	res := goCall(func() (*Client, error) {
		return Dial(ctx, s.path, Options{BusyRetryInterval: time.Millisecond})
	})
	eventually(t, "three busy refusals", func() bool { return s.Stats().Busy >= 3 })
	cancel()
	_, err := res.wait(t)
	assert.ErrorIs(t, err, ErrBusy)
	assert.ErrorIs(t, err, context.Canceled)

	require.NoError(t, first.Close())
	second := s.dial(t) // the socket is free again (maybe after a busy retry)
	_, err = second.Status(t.Context())
	assert.NoError(t, err)
}

func TestDialConnectFailureIsNotRetried(t *testing.T) {
	_, err := Dial(t.Context(), "/nonexistent/ctl/socket", Options{BusyRetryInterval: time.Millisecond})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrBusy)
	assert.Contains(t, err.Error(), "/nonexistent/ctl/socket")
}

func TestStatusReportsTheSession(t *testing.T) {
	t.Run("display up", func(t *testing.T) {
		s := startSim(t, func(c *sim.Config) { c.SurfaceWidth, c.SurfaceHeight, c.Agent = 800, 600, true })
		c, w := s.hello(t, Options{})
		st, err := c.Status(t.Context())
		require.NoError(t, err)
		assert.True(t, st.SpiceConnected)
		assert.True(t, st.AgentConnected)
		assert.Equal(t, []Surface{{ChannelID: 0, SurfaceID: 0, Width: 800, Height: 600}}, st.Surfaces)
		assert.False(t, st.Received.IsZero())
		assert.JSONEq(t, `{}`, w.last(t, "status"), "status params are {} and never omitted")
	})
	t.Run("no display and no agent yet", func(t *testing.T) {
		s := startSim(t, func(c *sim.Config) { c.SurfacesDelay, c.Agent = time.Hour, false })
		c, _ := s.hello(t, Options{})
		st, err := c.Status(t.Context())
		require.NoError(t, err)
		assert.True(t, st.SpiceConnected)
		assert.False(t, st.AgentConnected)
		assert.Empty(t, st.Surfaces, "not ready until a surface exists")
	})
}

func TestSendKeySendsLogicalCodes(t *testing.T) {
	s := startSim(t, nil)
	c, w := s.hello(t, Options{})
	for _, tc := range []struct {
		code  uint16
		state KeyState
		want  string
	}{
		{0x1C, KeyPress, `{"scancode": 28, "state": "press"}`},
		{0xE04B, KeyDown, `{"scancode": 57419, "state": "down"}`},
		{0xE04B, KeyUp, `{"scancode": 57419, "state": "up"}`},
	} {
		before := time.Now()
		sentAt, err := c.SendKey(t.Context(), tc.code, tc.state)
		require.NoError(t, err)
		assert.False(t, sentAt.Before(before), "sentAt is taken during the call")
		assert.True(t, hasMonotonic(sentAt), "sentAt carries the monotonic clock")
		assert.JSONEq(t, tc.want, w.last(t, "send_key"))
	}
	assert.Equal(t, uint64(2), s.Stats().KeyDowns, "press and down reach the guest as key-downs")
}

func TestSendKeyRefusesImplausibleInputLocally(t *testing.T) {
	s := startSim(t, nil)
	c, w := s.hello(t, Options{})
	for _, tc := range []struct {
		name  string
		code  uint16
		state KeyState
		want  error
	}{
		{"zero", 0x0000, KeyPress, ErrInvalidScancode},
		{"break code", 0x009E, KeyUp, ErrInvalidScancode},
		{"extended break code", 0xE0CB, KeyUp, ErrInvalidScancode},
		{"byte-swapped wire value", 0x4BE0, KeyDown, ErrInvalidScancode},
		{"E1 prefix", 0xE11D, KeyPress, ErrInvalidScancode},
		{"high byte 0x01", 0x011C, KeyPress, ErrInvalidScancode},
		{"unknown state", 0x1C, KeyState("sideways"), ErrInvalidArgument},
		{"empty state", 0x1C, KeyState(""), ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sentAt, err := c.SendKey(t.Context(), tc.code, tc.state)
			assert.ErrorIs(t, err, tc.want)
			assert.True(t, sentAt.IsZero())
		})
	}
	assert.Zero(t, w.count("send_key"), "nothing was written")
	assert.Zero(t, s.Stats().KeyDowns)
	_, err := c.Status(t.Context())
	assert.NoError(t, err)
}

func TestExtendedKeyNeedsServer12(t *testing.T) {
	t.Run("before hello", func(t *testing.T) {
		s := startSim(t, nil)
		c, w := s.connect(t, Options{})
		_, err := c.SendKey(t.Context(), 0xE04B, KeyPress)
		assert.ErrorIs(t, err, ErrNoHello)
		assert.Empty(t, w.requests())
	})
	for _, minor := range []int{0, 1} {
		server := sim.Version{Major: 1, Minor: minor}
		t.Run("refused on "+server.String(), func(t *testing.T) {
			s := startSim(t, func(c *sim.Config) { c.ProtocolVersion = server })
			c, w := s.hello(t, Options{})
			_, err := c.SendKey(t.Context(), 0xE04B, KeyDown)
			require.ErrorIs(t, err, ErrExtendedKeyUnsupported)
			assert.Contains(t, err.Error(), server.String())
			assert.Contains(t, err.Error(), "1.2")

			// A plain key still works on an old server.
			_, err = c.SendKey(t.Context(), 0x1C, KeyPress)
			require.NoError(t, err)
			assert.Equal(t, 1, w.count("send_key"), "the refused key was never sent")
			assert.JSONEq(t, `{"scancode": 28, "state": "press"}`, w.last(t, "send_key"))
			assert.Equal(t, uint64(1), s.Stats().KeyDowns)
		})
	}
	t.Run("accepted on 1.3", func(t *testing.T) {
		s := startSim(t, func(c *sim.Config) { c.ProtocolVersion = sim.Version{Major: 1, Minor: 3} })
		c := s.dial(t)
		_, err := c.SendKey(t.Context(), 0xE04B, KeyPress)
		assert.NoError(t, err)
		assert.Equal(t, uint64(1), s.Stats().KeyDowns)
	})
}

// TestKeySentAtPrecedesItsDraw checks the property the keypress metric
// rests on: sentAt is taken before the server sees the key, so a draw's
// wallclock minus sentAt is never less than the delay the simulator
// modelled for it (its truth file).
func TestKeySentAtPrecedesItsDraw(t *testing.T) {
	truth := ""
	s := startSim(t, func(c *sim.Config) {
		c.DrawDelay, c.DrawJitter, c.DisplayRefresh = 10*time.Millisecond, 4*time.Millisecond, 15*time.Millisecond
		truth = c.SocketPath + ".truth"
		c.TruthFile = truth
	})
	c, _ := s.hello(t, Options{})
	_, err := c.Subscribe(t.Context(), EventSurfaceDrawn)
	require.NoError(t, err)
	const keys = 5
	for i := range keys {
		sentAt, err := c.SendKey(t.Context(), 0x1C, KeyDown)
		require.NoError(t, err)
		_, err = c.SendKey(t.Context(), 0x1C, KeyUp)
		require.NoError(t, err)
		var first SurfaceDrawn
		for first.WallclockUS == 0 {
			d, err := eventNamed(t, c, EventSurfaceDrawn).SurfaceDrawn()
			require.NoError(t, err)
			if int64(d.WallclockUS) >= sentAt.UnixMicro() { // not the session's first paint
				first = d
			}
		}
		for range s.cfg.DrawsPerKey - 1 { // the rest of the burst
			eventNamed(t, c, EventSurfaceDrawn)
		}
		modelled := truthUS(t, truth)
		require.Len(t, modelled, i+1)
		measured := int64(first.WallclockUS) - sentAt.UnixMicro()
		assert.GreaterOrEqual(t, measured, modelled[i], "the client's clock starts before the key arrives")
	}
}

// truthUS reads the simulator's modelled first-draw delays in µs.
func truthUS(t *testing.T, path string) []int64 {
	t.Helper()
	rows, err := sim.ReadTruthFile(path)
	require.NoError(t, err)
	var out []int64
	for _, r := range rows {
		out = append(out, r.FirstDraw().Microseconds())
	}
	return out
}

func TestPasteReportsCompletionByRequestID(t *testing.T) {
	s := startSim(t, nil)
	c, w := s.hello(t, Options{})
	subscribed, err := c.Subscribe(t.Context(), EventPasteCompleted, EventPasteFailed)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{EventPasteCompleted, EventPasteFailed}, subscribed)

	ack, err := c.paste(t.Context(), "hunter2", time.Millisecond)
	require.NoError(t, err)
	assert.NotZero(t, ack.RequestID)
	assert.False(t, ack.Received.IsZero())
	assert.JSONEq(t, `{"text": "hunter2", "char_delay_ms": 1}`, w.last(t, "paste"))
	done, err := eventNamed(t, c, EventPasteCompleted).pasteCompleted()
	require.NoError(t, err)
	assert.Equal(t, pasteCompletedEvent{RequestID: ack.RequestID, RawRequestID: done.RawRequestID, CharsSent: 7}, done)

	ack, err = c.paste(t.Context(), "caf\u00e9", defaultCharDelay)
	require.NoError(t, err)
	assert.JSONEq(t, `{"text": "caf\u00e9"}`, w.last(t, "paste"), "defaultCharDelay omits char_delay_ms")
	failed, err := eventNamed(t, c, EventPasteFailed).pasteFailed()
	require.NoError(t, err)
	assert.Equal(t, ack.RequestID, failed.RequestID)
	assert.Contains(t, failed.Reason, "U+00E9")

	ack, err = c.paste(t.Context(), "x", 0)
	require.NoError(t, err)
	assert.JSONEq(t, `{"text": "x", "char_delay_ms": 0}`, w.last(t, "paste"))
	done, err = eventNamed(t, c, EventPasteCompleted).pasteCompleted()
	require.NoError(t, err)
	assert.Equal(t, ack.RequestID, done.RequestID)
	assert.Equal(t, uint32(1), done.CharsSent)
}

func TestSubscribeReturnsWhatServerAccepted(t *testing.T) {
	s := startSim(t, func(c *sim.Config) { c.Ping = sim.PingPattern{Mode: sim.PingSteady, Interval: time.Millisecond} })
	c, _ := s.hello(t, Options{})
	got, err := c.Subscribe(t.Context(), EventLatency, EventDigestUpdated)
	require.NoError(t, err)
	assert.Equal(t, []string{EventLatency}, got, "unknown names are silently left out")

	l, err := eventNamed(t, c, EventLatency).Latency()
	require.NoError(t, err)
	assert.Equal(t, 1.0, l.SampleMS, "the gap between two steady PINGs")
	assert.Zero(t, (int64(l.WallclockUS)-s.SessionStart().UnixMicro())%1000, "stamped at a PING, on the 1 ms grid")

	got, err = c.unsubscribe(t.Context(), EventLatency)
	require.NoError(t, err)
	assert.Equal(t, []string{EventLatency}, got)
	got, err = c.unsubscribe(t.Context(), EventLatency)
	require.NoError(t, err)
	assert.Empty(t, got, "unsubscribing twice is a no-op")

	// The server really stopped: latency events queued before the
	// unsubscribe may still arrive, but none after a draw queued later,
	// although PINGs go on.
	_, err = c.Subscribe(t.Context(), EventSurfaceDrawn)
	require.NoError(t, err)
	sentAt, err := c.SendKey(t.Context(), 0x1C, KeyPress)
	require.NoError(t, err)
	for {
		ev := eventNamed(t, c, EventSurfaceDrawn)
		if d, err := ev.SurfaceDrawn(); err == nil && int64(d.WallclockUS) >= sentAt.UnixMicro() {
			break
		}
	}
	pings := s.Stats().Pings
	eventually(t, "more PINGs", func() bool { return s.Stats().Pings >= pings+3 })
	sentAt, err = c.SendKey(t.Context(), 0x1C, KeyPress)
	require.NoError(t, err)
	for {
		ev, ok := nextEvent(t, c)
		require.True(t, ok)
		require.NotEqual(t, EventLatency, ev.Name, "a latency event after unsubscribing")
		if d, err := ev.SurfaceDrawn(); err == nil && int64(d.WallclockUS) >= sentAt.UnixMicro() {
			break
		}
	}
}

func TestScreenshotMultiMegabyte(t *testing.T) {
	const w, h = 1024, 768
	s := startSim(t, func(c *sim.Config) { c.SurfaceWidth, c.SurfaceHeight = w, h })
	c, wl := s.hello(t, Options{})

	var pixels []byte
	t.Run("rgba", func(t *testing.T) {
		shot, err := c.screenshot(t.Context(), nil, formatRGBA)
		require.NoError(t, err)
		assert.Equal(t, formatRGBA, shot.Format)
		assert.Equal(t, w, shot.Width)
		assert.Equal(t, h, shot.Height)
		require.Len(t, shot.Data, w*h*4, "3 MiB of pixels, 4 MiB of base64 on one line")
		img, ok := shot.Image.(*image.NRGBA)
		require.True(t, ok)
		assert.Equal(t, image.Rect(0, 0, w, h), img.Rect)
		assert.False(t, shot.Received.IsZero())
		pixels = shot.Data
	})
	t.Run("png", func(t *testing.T) {
		zero := uint32(0)
		shot, err := c.screenshot(t.Context(), &zero, formatPNG)
		require.NoError(t, err)
		assert.Equal(t, formatPNG, shot.Format)
		assert.Equal(t, image.Rect(0, 0, w, h), shot.Image.Bounds())
		require.NotNil(t, pixels)
		assert.True(t, bytes.Equal(pixels, nrgbaPix(shot.Image)), "png and rgba show the same screen")
	})
	t.Run("default format", func(t *testing.T) {
		shot, err := c.screenshot(t.Context(), nil, "")
		require.NoError(t, err)
		assert.Equal(t, formatPNG, shot.Format)
		assert.JSONEq(t, `{}`, wl.last(t, "screenshot"), "nil surface and empty format are omitted")
	})
	t.Run("unknown format refused locally", func(t *testing.T) {
		n := wl.count("screenshot")
		_, err := c.screenshot(t.Context(), nil, "jpeg")
		assert.ErrorIs(t, err, ErrInvalidArgument)
		assert.Equal(t, n, wl.count("screenshot"), "nothing was written")
	})
	assert.Zero(t, c.Stats().Oversized)
}

// nrgbaPix returns img's pixels as non-premultiplied RGBA bytes.
func nrgbaPix(img image.Image) []byte {
	switch m := img.(type) {
	case *image.NRGBA:
		return m.Pix
	case *image.RGBA: // an opaque PNG: premultiplied equals straight
		for i := 3; i < len(m.Pix); i += 4 {
			if m.Pix[i] != 0xff {
				return nil
			}
		}
		return m.Pix
	}
	return nil
}

func TestVerbErrorsFromServer(t *testing.T) {
	s := startSim(t, nil)
	c, _ := s.hello(t, Options{})
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		method string
		call   func() error
		code   string
	}{
		{"bad state", "send_key", func() error {
			_, err := c.callInto(ctx, "send_key", map[string]any{"scancode": 28, "state": "sideways"}, nil)
			return err
		}, CodeBadState},
		{"bad params", "send_key", func() error {
			_, err := c.callInto(ctx, "send_key", map[string]any{}, nil)
			return err
		}, CodeBadParams},
		{"unknown method", "mouse_move", func() error {
			_, err := c.callInto(ctx, "mouse_move", nil, nil)
			return err
		}, CodeUnknownMethod},
		{"no such surface", "screenshot", func() error {
			id := uint32(7)
			_, err := c.screenshot(ctx, &id, formatRGBA)
			return err
		}, CodeNoSuchSurface},
		{"unsupported format", "screenshot", func() error {
			_, err := c.callInto(ctx, "screenshot", map[string]any{"format": "jpeg"}, nil)
			return err
		}, CodeUnsupportedFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var pe *ProtocolError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tc.code, pe.Code)
			assert.Equal(t, tc.method, pe.Method)
			assert.NotEmpty(t, pe.Message)
		})
	}
	assert.NoError(t, c.Err(), "error answers do not end the connection")
}
