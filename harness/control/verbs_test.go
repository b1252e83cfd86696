package control

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dialFake dials f with a fast busy retry and closes the client at cleanup.
func dialFake(t *testing.T, f *fakeRyll) *Client {
	t.Helper()
	c, err := Dial(t.Context(), f.path, Options{ClientName: "control-test", BusyRetryInterval: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// hasMonotonic reports whether t carries a monotonic clock reading, which
// keeps elapsed-time arithmetic immune to wall-clock steps.
func hasMonotonic(t time.Time) bool { return strings.Contains(t.String(), " m=") }

func TestDialHelloExchangesNamesAndVersions(t *testing.T) {
	f := newFakeRyll(t, "1.2").start()
	before := time.Now()
	c := dialFake(t, f)

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

	reqs := f.seen()
	require.Len(t, reqs, 1)
	assert.Equal(t, "hello", reqs[0].Method)
	assert.JSONEq(t, `{"client_name": "control-test", "protocol_version": "1.2"}`, string(reqs[0].Params))
}

func TestHelloAcceptsAnyMinorVersion(t *testing.T) {
	for _, tc := range []struct {
		server string
		want   Version
	}{
		{"1.0", Version{1, 0}},
		{"1.1", Version{1, 1}},
		{"1.2", Version{1, 2}},
		{"1.3", Version{1, 3}},
		{"1.10", Version{1, 10}},
	} {
		t.Run(tc.server, func(t *testing.T) {
			f := newFakeRyll(t, tc.server).start()
			c := dialFake(t, f)
			h, ok := c.Server()
			require.True(t, ok)
			assert.Equal(t, tc.want, h.Version)
			st, err := c.Status(t.Context())
			require.NoError(t, err, "a %s server is usable", tc.server)
			assert.True(t, st.SpiceConnected)
		})
	}
}

func TestHelloRefusesAnotherMajorVersion(t *testing.T) {
	t.Run("server refuses with protocol_version_mismatch and closes", func(t *testing.T) {
		f := newFakeRyll(t, "2.0").start()
		_, err := Dial(t.Context(), f.path, Options{BusyRetryInterval: time.Millisecond})
		var vm *VersionMismatchError
		require.ErrorAs(t, err, &vm)
		assert.Equal(t, ProtocolVersion, vm.Client)
		var pe *ProtocolError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, CodeProtocolVersionMismatch, pe.Code)
		assert.Contains(t, err.Error(), "1.2")
		assert.Len(t, f.seen(), 1, "a version mismatch is not retried")
	})
	for _, server := range []string{"2.0", "0.9", "3.1"} {
		t.Run("server answers "+server, func(t *testing.T) {
			c, p := newPipe(t, Options{})
			res := goCall(func() (HelloResult, error) { return c.Hello(t.Context()) })
			req := p.read()
			p.send(okLine(req.ID, `{"server_name": "ryll", "protocol_version": "`+server+`", "supported_methods": [], "supported_events": []}`))
			_, err := res.wait(t)
			var vm *VersionMismatchError
			require.ErrorAs(t, err, &vm)
			assert.Equal(t, VersionMismatchError{Client: "1.2", Server: server}, *vm)
			assert.Contains(t, err.Error(), "1.2")
			assert.Contains(t, err.Error(), server)
			<-c.Done()
			assert.ErrorIs(t, c.Err(), ErrClosed, "the client drops an incompatible server")
		})
	}
	t.Run("server answers an unparsable version", func(t *testing.T) {
		c, p := newPipe(t, Options{})
		res := goCall(func() (HelloResult, error) { return c.Hello(t.Context()) })
		req := p.read()
		p.send(okLine(req.ID, `{"server_name": "ryll", "protocol_version": "one point two"}`))
		_, err := res.wait(t)
		assert.ErrorIs(t, err, ErrMalformed)
	})
}

func TestNoHelloYetLeavesConnectionUsable(t *testing.T) {
	f := newFakeRyll(t, "1.2").start()
	conn, err := net.Dial("unix", f.path)
	require.NoError(t, err)
	c := NewClient(conn, Options{})
	t.Cleanup(func() { _ = c.Close() })

	_, err = c.Status(t.Context())
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
	f := newFakeRyll(t, "1.2")
	f.busyFirst = 2
	f.start()
	c := dialFake(t, f)
	_, err := c.Status(t.Context())
	require.NoError(t, err)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 2, f.busySent, "two busy refusals were retried")
}

func TestDialReportsBusyWhenContextEnds(t *testing.T) {
	f := newFakeRyll(t, "1.2")
	f.busyNote = make(chan int, 64)
	f.start()
	first := dialFake(t, f) // holds the socket: every other client is busy

	ctx, cancel := context.WithCancel(t.Context())
	res := goCall(func() (*Client, error) {
		return Dial(ctx, f.path, Options{BusyRetryInterval: time.Millisecond})
	})
	for n := range f.busyNote {
		if n >= 3 {
			break
		}
	}
	cancel()
	_, err := res.wait(t)
	assert.ErrorIs(t, err, ErrBusy)
	assert.ErrorIs(t, err, context.Canceled)

	require.NoError(t, first.Close())
	second := dialFake(t, f) // the socket is free again (maybe after a busy retry)
	_, err = second.Status(t.Context())
	assert.NoError(t, err)
}

func TestDialConnectFailureIsNotRetried(t *testing.T) {
	_, err := Dial(t.Context(), "/nonexistent/ctl/socket", Options{BusyRetryInterval: time.Millisecond})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrBusy)
	assert.Contains(t, err.Error(), "/nonexistent/ctl/socket")
}

func TestStatusDecodesDocumentExample(t *testing.T) {
	f := newFakeRyll(t, "1.2").start()
	c := dialFake(t, f)
	st, err := c.Status(t.Context())
	require.NoError(t, err)
	assert.True(t, st.SpiceConnected)
	assert.True(t, st.AgentConnected)
	assert.Equal(t, []Surface{{ChannelID: 1, SurfaceID: 0, Width: 1024, Height: 768}}, st.Surfaces)
	assert.False(t, st.Received.IsZero())

	reqs := f.seen()
	assert.JSONEq(t, `{}`, string(reqs[len(reqs)-1].Params), "status params are {} and never omitted")
}

func TestSendKeySendsLogicalCodes(t *testing.T) {
	f := newFakeRyll(t, "1.2").start()
	c := dialFake(t, f)
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
		reqs := f.seen()
		last := reqs[len(reqs)-1]
		assert.Equal(t, "send_key", last.Method)
		assert.JSONEq(t, tc.want, string(last.Params))
	}
}

func TestSendKeyRefusesImplausibleInputLocally(t *testing.T) {
	c, p := newPipe(t, Options{})
	p.helloAs(c, "1.2")
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
			// In a goroutine: a client that wrongly wrote would block on the
			// pipe, and the hang guard turns that into a failure.
			res := goCall(func() (time.Time, error) { return c.SendKey(t.Context(), tc.code, tc.state) })
			sentAt, err := res.wait(t)
			assert.ErrorIs(t, err, tc.want)
			assert.True(t, sentAt.IsZero())
		})
	}
	// Nothing was written: the next request the peer sees is this status.
	res := goCall(func() (Status, error) { return c.Status(t.Context()) })
	req := p.read()
	assert.Equal(t, "status", req.Method)
	p.send(okLine(req.ID, `{"spice_connected": true, "agent_connected": false, "surfaces": []}`))
	_, err := res.wait(t)
	assert.NoError(t, err)
}

func TestExtendedKeyNeedsServer12(t *testing.T) {
	t.Run("before hello", func(t *testing.T) {
		c, _ := newPipe(t, Options{})
		_, err := c.SendKey(t.Context(), 0xE04B, KeyPress)
		assert.ErrorIs(t, err, ErrNoHello)
	})
	for _, server := range []string{"1.0", "1.1"} {
		t.Run("refused on "+server, func(t *testing.T) {
			c, p := newPipe(t, Options{})
			p.helloAs(c, server)
			refused := goCall(func() (time.Time, error) { return c.SendKey(t.Context(), 0xE04B, KeyDown) })
			_, err := refused.wait(t)
			require.ErrorIs(t, err, ErrExtendedKeyUnsupported)
			assert.Contains(t, err.Error(), server)
			assert.Contains(t, err.Error(), "1.2")

			// A plain key still works on an old server.
			res := goCall(func() (time.Time, error) { return c.SendKey(t.Context(), 0x1C, KeyPress) })
			req := p.read()
			assert.Equal(t, "send_key", req.Method, "the refused key was never sent")
			assert.JSONEq(t, `{"scancode": 28, "state": "press"}`, string(req.Params))
			p.send(okLine(req.ID, `{}`))
			_, err = res.wait(t)
			assert.NoError(t, err)
		})
	}
	t.Run("accepted on 1.3", func(t *testing.T) {
		f := newFakeRyll(t, "1.3").start()
		c := dialFake(t, f)
		_, err := c.SendKey(t.Context(), 0xE04B, KeyPress)
		assert.NoError(t, err)
	})
}

func TestPasteReportsCompletionByRequestID(t *testing.T) {
	f := newFakeRyll(t, "1.2").start()
	c := dialFake(t, f)
	subscribed, err := c.Subscribe(t.Context(), EventPasteCompleted, EventPasteFailed)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{EventPasteCompleted, EventPasteFailed}, subscribed)

	ack, err := c.Paste(t.Context(), "hunter2", 20*time.Millisecond)
	require.NoError(t, err)
	assert.NotZero(t, ack.RequestID)
	assert.False(t, ack.Received.IsZero())
	reqs := f.seen()
	assert.JSONEq(t, `{"text": "hunter2", "char_delay_ms": 20}`, string(reqs[len(reqs)-1].Params))

	ev := <-c.Events()
	done, err := ev.PasteCompleted()
	require.NoError(t, err)
	assert.Equal(t, PasteCompleted{RequestID: ack.RequestID, RawRequestID: done.RawRequestID, CharsSent: 7}, done)

	ack, err = c.Paste(t.Context(), "caf\u00e9", DefaultCharDelay)
	require.NoError(t, err)
	reqs = f.seen()
	assert.JSONEq(t, `{"text": "caf\u00e9"}`, string(reqs[len(reqs)-1].Params), "DefaultCharDelay omits char_delay_ms")
	ev = <-c.Events()
	failed, err := ev.PasteFailed()
	require.NoError(t, err)
	assert.Equal(t, ack.RequestID, failed.RequestID)
	assert.Contains(t, failed.Reason, "U+00E9")

	_, err = c.Paste(t.Context(), "x", 0)
	require.NoError(t, err)
	reqs = f.seen()
	assert.JSONEq(t, `{"text": "x", "char_delay_ms": 0}`, string(reqs[len(reqs)-1].Params))
}

func TestSubscribeReturnsWhatServerAccepted(t *testing.T) {
	f := newFakeRyll(t, "1.2").start()
	c := dialFake(t, f)
	got, err := c.Subscribe(t.Context(), EventLatency, EventDigestUpdated)
	require.NoError(t, err)
	assert.Equal(t, []string{EventLatency}, got, "unknown names are silently left out")

	require.True(t, f.emit(EventLatency, `{"sample_ms": 0.83, "wallclock_us": 1717000000456789}`))
	ev := <-c.Events()
	l, err := ev.Latency()
	require.NoError(t, err)
	assert.Equal(t, Latency{SampleMS: 0.83, WallclockUS: 1717000000456789}, l)

	got, err = c.Unsubscribe(t.Context(), EventLatency)
	require.NoError(t, err)
	assert.Equal(t, []string{EventLatency}, got)
	got, err = c.Unsubscribe(t.Context(), EventLatency)
	require.NoError(t, err)
	assert.Empty(t, got, "unsubscribing twice is a no-op")
	assert.False(t, f.emit(EventLatency, `{"sample_ms": 1, "wallclock_us": 1}`))
}

func TestScreenshotMultiMegabyte(t *testing.T) {
	const w, h = 1024, 768
	rng := rand.New(rand.NewPCG(1, 2))
	pixels := make([]byte, w*h*4)
	for i := range pixels {
		pixels[i] = byte(rng.Uint32())
	}
	f := newFakeRyll(t, "1.2")
	f.shotW, f.shotH, f.pixels = w, h, pixels
	f.start()
	c := dialFake(t, f)

	t.Run("rgba", func(t *testing.T) {
		shot, err := c.Screenshot(t.Context(), nil, FormatRGBA)
		require.NoError(t, err)
		assert.Equal(t, FormatRGBA, shot.Format)
		assert.Equal(t, w, shot.Width)
		assert.Equal(t, h, shot.Height)
		assert.Equal(t, pixels, shot.Data)
		img, ok := shot.Image.(*image.NRGBA)
		require.True(t, ok)
		assert.Equal(t, image.Rect(0, 0, w, h), img.Rect)
		assert.False(t, shot.Received.IsZero())
	})
	t.Run("png", func(t *testing.T) {
		zero := uint32(0)
		shot, err := c.Screenshot(t.Context(), &zero, FormatPNG)
		require.NoError(t, err)
		assert.Equal(t, FormatPNG, shot.Format)
		assert.Greater(t, len(shot.Data), 1<<20, "random pixels do not compress")
		img, ok := shot.Image.(*image.NRGBA)
		require.True(t, ok, "non-opaque PNG decodes as NRGBA, got %T", shot.Image)
		assert.Equal(t, pixels, img.Pix)
	})
	t.Run("default format", func(t *testing.T) {
		shot, err := c.Screenshot(t.Context(), nil, "")
		require.NoError(t, err)
		assert.Equal(t, FormatPNG, shot.Format)
		reqs := f.seen()
		assert.JSONEq(t, `{}`, string(reqs[len(reqs)-1].Params), "nil surface and empty format are omitted")
	})
	t.Run("unknown format refused locally", func(t *testing.T) {
		_, err := c.Screenshot(t.Context(), nil, "jpeg")
		assert.ErrorIs(t, err, ErrInvalidArgument)
	})
	assert.Zero(t, c.Stats().Oversized)
}

func TestScreenshotRejectsInconsistentAnswers(t *testing.T) {
	c, p := newPipe(t, Options{})
	p.helloAs(c, "1.2")
	for _, tc := range []struct {
		name, result string
	}{
		{"rgba too short", `{"width": 2, "height": 2, "format": "rgba", "data_base64": "AAAA"}`},
		{"rgba too long", `{"width": 1, "height": 1, "format": "rgba", "data_base64": "AAAAAAAA"}`},
		{"bad base64", `{"width": 1, "height": 1, "format": "rgba", "data_base64": "!!!!"}`},
		{"not a png", `{"width": 1, "height": 1, "format": "png", "data_base64": "AAAAAAAA"}`},
		{"png of another size", `{"width": 2, "height": 1, "format": "png", "data_base64": "` + onePixelPNG + `"}`},
		{"unknown format", `{"width": 1, "height": 1, "format": "bmp", "data_base64": "AAAA"}`},
		{"missing data", `{"width": 1, "height": 1, "format": "rgba"}`},
		{"result not an object", `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := goCall(func() (*Screenshot, error) { return c.Screenshot(t.Context(), nil, FormatRGBA) })
			req := p.read()
			p.send(okLine(req.ID, tc.result))
			_, err := res.wait(t)
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
	t.Run("one pixel png", func(t *testing.T) {
		res := goCall(func() (*Screenshot, error) { return c.Screenshot(t.Context(), nil, FormatPNG) })
		req := p.read()
		p.send(okLine(req.ID, `{"width": 1, "height": 1, "format": "png", "data_base64": "`+onePixelPNG+`"}`))
		shot, err := res.wait(t)
		require.NoError(t, err)
		assert.Equal(t, image.Rect(0, 0, 1, 1), shot.Image.Bounds())
	})
}

// onePixelPNG is a 1x1 PNG, base64-encoded.
var onePixelPNG = func() string {
	var buf bytes.Buffer
	img := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}()

func TestVerbErrorsFromServer(t *testing.T) {
	f := newFakeRyll(t, "1.2")
	f.start()
	c := dialFake(t, f)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		method string
		call   func() error
		code   string
	}{
		{"bad state", "send_key", func() error {
			_, err := c.Call(ctx, "send_key", map[string]any{"scancode": 28, "state": "sideways"}, nil)
			return err
		}, CodeBadState},
		{"bad params", "send_key", func() error {
			_, err := c.Call(ctx, "send_key", map[string]any{}, nil)
			return err
		}, CodeBadParams},
		{"unknown method", "mouse_move", func() error {
			_, err := c.Call(ctx, "mouse_move", nil, nil)
			return err
		}, CodeUnknownMethod},
		{"no such surface", "screenshot", func() error {
			id := uint32(7)
			_, err := c.Screenshot(ctx, &id, FormatRGBA)
			return err
		}, CodeNoSuchSurface},
		{"unsupported format", "screenshot", func() error {
			_, err := c.Call(ctx, "screenshot", map[string]any{"format": "jpeg"}, nil)
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
	t.Run("agent not connected", func(t *testing.T) {
		f.mu.Lock()
		f.agentConnected = false
		f.mu.Unlock()
		_, err := c.Paste(ctx, "secret-text", DefaultCharDelay)
		var pe *ProtocolError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, CodeAgentNotConnected, pe.Code)
		assert.NotContains(t, err.Error(), "secret-text", "paste text never appears in errors")
	})
}

func TestEveryDocumentedErrorCodeIsAProtocolError(t *testing.T) {
	c, p := newPipe(t, Options{})
	p.helloAs(c, "1.2")
	codes := []string{
		CodeNoHelloYet, CodeProtocolVersionMismatch, CodeBusy, CodeUnknownMethod, CodeBadParams,
		CodeBadState, CodeAgentNotConnected, CodeNoSuchSurface, CodeUnsupportedFormat,
		CodeNotImplemented, CodeInternalError, "some_future_code",
	}
	for _, code := range codes {
		t.Run(code, func(t *testing.T) {
			res := goCall(func() (Status, error) { return c.Status(t.Context()) })
			req := p.read()
			p.send(errLine(req.ID, code, "details for "+code))
			_, err := res.wait(t)
			var pe *ProtocolError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, ProtocolError{Method: "status", Code: code, Message: "details for " + code}, *pe)
			assert.Equal(t, code == CodeBusy, errors.Is(err, ErrBusy))
			assert.NotErrorIs(t, err, ErrClosed)
		})
	}
	// An error answer to a call never ends the connection.
	assert.NoError(t, c.Err())
}

func TestCallPassesThroughNewVerbs(t *testing.T) {
	c, p := newPipe(t, Options{})
	p.helloAs(c, "1.3")
	res := goCall(func() (map[string]any, error) {
		var out map[string]any
		_, err := c.Call(t.Context(), "mouse_move", map[string]int{"x": 3, "y": 4}, &out)
		return out, err
	})
	req := p.read()
	assert.Equal(t, "mouse_move", req.Method)
	assert.JSONEq(t, `{"x": 3, "y": 4}`, string(req.Params))
	p.send(okLine(req.ID, `{"moved": true, "extra": [1]}`))
	out, err := res.wait(t)
	require.NoError(t, err)
	assert.Equal(t, true, out["moved"])

	// params must be an object; the document forbids anything else.
	for _, bad := range []any{[]int{1}, "text", (*struct{})(nil)} {
		_, err := c.Call(t.Context(), "mouse_move", bad, nil)
		assert.ErrorIs(t, err, ErrInvalidArgument, "%T", bad)
	}
}

func TestResultsIgnoreUnknownFields(t *testing.T) {
	c, p := newPipe(t, Options{})
	res := goCall(func() (HelloResult, error) { return c.Hello(t.Context()) })
	req := p.read()
	p.send(okLine(req.ID, `{"server_name": "ryll", "protocol_version": "1.4", "supported_methods": ["hello"], "supported_events": [], "build": {"git": "abc"}}`))
	h, err := res.wait(t)
	require.NoError(t, err)
	assert.Equal(t, Version{1, 4}, h.Version)

	st := goCall(func() (Status, error) { return c.Status(t.Context()) })
	req = p.read()
	p.send(okLine(req.ID, `{"spice_connected": false, "agent_connected": true, "surfaces": [{"channel_id": 0, "surface_id": 3, "width": 640, "height": 480, "depth": 32}], "uptime_s": 4}`))
	got, err := st.wait(t)
	require.NoError(t, err)
	assert.Equal(t, []Surface{{0, 3, 640, 480}}, got.Surfaces)

	st = goCall(func() (Status, error) { return c.Status(t.Context()) })
	req = p.read()
	p.send(okLine(req.ID, `{"surfaces": []}`))
	_, err = st.wait(t)
	assert.ErrorIs(t, err, ErrMalformed, "required status fields are checked")
}

func TestRequestsAreOneJSONObjectPerLine(t *testing.T) {
	// The fake's shape check is the document's; this pins the encoder for
	// awkward method names and params too.
	line, err := appendRequest(nil, 42, "we\"ird\nname", map[string]string{"text": "a\nb"})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(string(line), "\n"))
	req, err := checkRequestShape(line[:len(line)-1])
	require.NoError(t, err)
	assert.Equal(t, "we\"ird\nname", req.Method)
	assert.Equal(t, json.RawMessage("42"), req.ID)
}
