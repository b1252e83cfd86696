package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file script the server's side line by line, for
// input no ryll (and so no simulator) sends: lines that are not protocol
// messages, over-long lines, ids, codes, fields and verbs the client does
// not know, answers out of order or after their caller gave up, a server
// that accepts a foreign major version, a stream that ends mid-line.
// Everything ryll can do is tested against the simulator instead.

// rawPeer is the server end of one connection, driven by the test.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// newRaw returns a client connected over a Unix socket to a peer that
// writes only what the test tells it to. Both are closed at cleanup.
func newRaw(t testing.TB, opts Options) (*Client, *rawPeer) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer ln.Close() // one connection is all the test needs
	nc, err := net.DialTimeout("unix", ln.Addr().String(), hangGuard)
	require.NoError(t, err)
	sc, err := ln.Accept()
	if err != nil {
		_ = nc.Close()
		require.NoError(t, err)
	}
	c := NewClient(nc, opts)
	return c, peerOn(t, c, sc)
}

// peerOn wraps the server end conn of c's connection.
func peerOn(t testing.TB, c *Client, conn net.Conn) *rawPeer {
	t.Cleanup(func() {
		_ = conn.Close()
		_ = c.Close()
	})
	return &rawPeer{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// read returns the next request, checked against the document's shape.
func (p *rawPeer) read() wireRequest {
	p.t.Helper()
	require.NoError(p.t, p.conn.SetReadDeadline(time.Now().Add(hangGuard)))
	line, err := p.r.ReadBytes('\n')
	require.NoError(p.t, err, "peer: read request")
	req, err := checkRequestShape(bytes.TrimSuffix(line, []byte("\n")))
	require.NoError(p.t, err)
	return req
}

// send writes one line and a newline.
func (p *rawPeer) send(line string) {
	p.t.Helper()
	require.NoError(p.t, p.conn.SetWriteDeadline(time.Now().Add(hangGuard)))
	_, err := io.WriteString(p.conn, line+"\n")
	require.NoError(p.t, err, "peer: write line")
}

func okLine(id json.RawMessage, result string) string {
	return fmt.Sprintf(`{"id": %s, "ok": true, "result": %s}`, id, result)
}

func errLine(id json.RawMessage, code, msg string) string {
	m, _ := json.Marshal(msg)
	return fmt.Sprintf(`{"id": %s, "ok": false, "error": {"code": %q, "message": %s}}`, id, code, m)
}

const (
	busyLine     = `{"ok": false, "error": {"code": "busy", "message": "another client is connected"}}`
	statusResult = `{"spice_connected": true, "agent_connected": true, "surfaces": [{"channel_id": 1, "surface_id": 0, "width": 1024, "height": 768}]}`
)

// helloAs completes the handshake on c, answering as a server of version.
func (p *rawPeer) helloAs(c *Client, version string) {
	p.t.Helper()
	res := goCall(func() (HelloResult, error) { return c.Hello(p.t.Context()) })
	req := p.read()
	require.Equal(p.t, "hello", req.Method)
	p.send(okLine(req.ID, fmt.Sprintf(`{"server_name": "ryll", "protocol_version": %q, "supported_methods": ["hello", "status", "send_key", "paste", "screenshot", "subscribe", "unsubscribe"], "supported_events": ["latency", "agent_connected", "paste_completed", "paste_failed", "dropped", "surface_drawn"]}`, version)))
	_, err := res.wait(p.t)
	require.NoError(p.t, err)
}

// roundTripStatus runs one status call answered by p. Because the reader
// handles lines in order, its return also proves every earlier line has
// been processed.
func roundTripStatus(t *testing.T, c *Client, p *rawPeer) {
	t.Helper()
	res := goCall(func() (Status, error) { return c.Status(t.Context()) })
	req := p.read()
	require.Equal(t, "status", req.Method)
	p.send(okLine(req.ID, statusResult))
	_, err := res.wait(t)
	require.NoError(t, err)
}

func drawnLine(i int) string {
	return fmt.Sprintf(`{"event": "surface_drawn", "data": {"display_channel_id": 0, "surface_id": 0, "produced_at_secs": %d, "wallclock_us": %d}}`, i, i)
}

// TestConcurrentCallsAnsweredOutOfOrder: ryll answers in order, but ids
// exist so that a server need not; each call must get its own answer.
func TestConcurrentCallsAnsweredOutOfOrder(t *testing.T) {
	c, p := newRaw(t, Options{})
	const n = 64
	calls := make([]async[int], n)
	for i := range n {
		calls[i] = goCall(func() (int, error) {
			var out struct{ N int }
			_, err := c.callInto(t.Context(), "echo", map[string]int{"n": i}, &out)
			return out.N, err
		})
	}
	reqs := make([]wireRequest, n)
	ids := map[string]bool{}
	for i := range n {
		reqs[i] = p.read()
		ids[string(reqs[i].ID)] = true
	}
	assert.Len(t, ids, n, "every in-flight request has its own id")
	rng := rand.New(rand.NewPCG(3, 4))
	rng.Shuffle(n, func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	for i, req := range reqs {
		p.send(okLine(req.ID, string(req.Params))) // echo the params back
		if i%8 == 0 {
			p.send(drawnLine(i)) // events interleave with responses
		}
	}
	for i := range n {
		got, err := calls[i].wait(t)
		require.NoError(t, err)
		assert.Equal(t, i, got, "call %d got its own answer", i)
	}
	assert.Equal(t, uint64(n), c.Stats().Responses)
	assert.Zero(t, c.Stats().Unmatched)
}

func TestEventsPassThroughUnknownNamesAndFields(t *testing.T) {
	c, p := newRaw(t, Options{})
	before := time.Now()
	p.send(`{"event": "frobnicated", "data": {"x": [1, 2], "y": null}}`)
	p.send(`{"event": "surface_drawn", "data": {"display_channel_id": 2, "surface_id": 1, "produced_at_secs": 1.5, "wallclock_us": 1717000000123456, "future_field": {"a": 1}}}`)
	p.send(`{"event": "latency", "data": {"sample_ms": 12.4, "wallclock_us": 1717000000123456}, "future_envelope_field": 1}`)

	ev, ok := nextEvent(t, c)
	require.True(t, ok)
	assert.Equal(t, "frobnicated", ev.Name)
	assert.JSONEq(t, `{"x": [1, 2], "y": null}`, string(ev.Data))
	assert.False(t, ev.Received.Before(before))
	assert.True(t, hasMonotonic(ev.Received), "Received carries the monotonic clock")

	ev, _ = nextEvent(t, c)
	d, err := ev.SurfaceDrawn()
	require.NoError(t, err)
	assert.Equal(t, SurfaceDrawn{DisplayChannelID: 2, SurfaceID: 1, ProducedAtSecs: 1.5, WallclockUS: 1717000000123456}, d)
	assert.Contains(t, string(ev.Data), "future_field", "unknown fields stay in Data")

	ev, _ = nextEvent(t, c)
	assert.Equal(t, EventLatency, ev.Name)
	assert.Zero(t, c.Stats().Malformed)
}

func TestBadInputIsCountedAndSkipped(t *testing.T) {
	big := `{"event": "latency", "data": {"pad": "` + strings.Repeat("x", 200<<10) + `"}}`
	for _, tc := range []struct {
		name   string
		lines  []string
		want   Stats // only Malformed, Oversized and Unmatched are compared
		events uint64
	}{
		{"truncated JSON", []string{`{"id": 1, "ok": tru`}, Stats{Malformed: 1}, 0},
		{"array", []string{`[1, 2, 3]`}, Stats{Malformed: 1}, 0},
		{"number", []string{`42`}, Stats{Malformed: 1}, 0},
		{"string", []string{`"hello"`}, Stats{Malformed: 1}, 0},
		{"null", []string{`null`}, Stats{Malformed: 1}, 0},
		{"binary", []string{"\x00\xff\xfe{"}, Stats{Malformed: 1}, 0},
		{"invalid UTF-8 in a string id", []string{"{\"id\": \"\xff\xfe\", \"ok\": true, \"result\": {}}"}, Stats{Unmatched: 1}, 0},
		// encoding/json reads invalid UTF-8 inside a string as U+FFFD, so
		// the line is a well-formed event whose data is passed through.
		{"invalid UTF-8 inside a string", []string{"{\"event\": \"latency\", \"data\": {\"note\": \"\xc3\x28\"}}"}, Stats{}, 1},
		{"object of nothing known", []string{`{"foo": 1}`}, Stats{Malformed: 1}, 0},
		{"success without id", []string{`{"ok": true, "result": {}}`}, Stats{Malformed: 1}, 0},
		{"ok not a boolean", []string{`{"id": 77, "ok": "yes"}`}, Stats{Malformed: 1}, 0},
		{"event name not a string", []string{`{"event": 42, "data": {}}`}, Stats{Malformed: 1}, 0},
		{"empty event name", []string{`{"event": "", "data": {}}`}, Stats{Malformed: 1}, 0},
		{"event without data", []string{`{"event": "latency"}`}, Stats{Malformed: 1}, 0},
		{"both ok and event", []string{`{"event": "latency", "data": {}, "ok": true}`}, Stats{Malformed: 1}, 0},
		{"unknown id", []string{`{"id": 999999, "ok": true, "result": {}}`}, Stats{Unmatched: 1}, 0},
		{"string id", []string{`{"id": "abc", "ok": true, "result": {}}`}, Stats{Unmatched: 1}, 0},
		{"negative id", []string{`{"id": -1, "ok": false, "error": {"code": "bad_params", "message": ""}}`}, Stats{Unmatched: 1}, 0},
		{"fractional id", []string{`{"id": 1.5, "ok": true, "result": {}}`}, Stats{Unmatched: 1}, 0},
		{"huge id", []string{`{"id": 123456789012345678901234567890, "ok": true, "result": {}}`}, Stats{Unmatched: 1}, 0},
		{"over-long line", []string{strings.Repeat("y", 5000)}, Stats{Oversized: 1}, 0},
		{"over-long line bigger than the read buffer", []string{big}, Stats{Oversized: 1}, 0},
		{"blank lines are not messages", []string{"", "   ", "\r"}, Stats{}, 0},
		{"several in a row", []string{`[`, big, `{"id": "x", "ok": true, "result": {}}`, `{}`}, Stats{Malformed: 2, Oversized: 1, Unmatched: 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newRaw(t, Options{MaxLineBytes: 1024})
			for _, line := range tc.lines {
				p.send(line)
			}
			roundTripStatus(t, c, p) // the client resynchronised and still works
			got := c.Stats()
			assert.Equal(t, tc.want.Malformed, got.Malformed, "malformed")
			assert.Equal(t, tc.want.Oversized, got.Oversized, "oversized")
			assert.Equal(t, tc.want.Unmatched, got.Unmatched, "unmatched")
			assert.Equal(t, tc.events, got.Events, "events")
			assert.NoError(t, c.Err())
		})
	}
}

func TestBadResponseFailsItsCallAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(id json.RawMessage) string
		want  error
		stat  func(Stats) uint64
	}{
		{"error without error object", func(id json.RawMessage) string {
			return fmt.Sprintf(`{"id": %s, "ok": false}`, id)
		}, ErrMalformed, func(s Stats) uint64 { return s.Malformed }},
		{"error object without code", func(id json.RawMessage) string {
			return fmt.Sprintf(`{"id": %s, "ok": false, "error": {"message": "?"}}`, id)
		}, ErrMalformed, func(s Stats) uint64 { return s.Malformed }},
		{"ok not a boolean", func(id json.RawMessage) string {
			return fmt.Sprintf(`{"id": %s, "ok": 1, "result": {}}`, id)
		}, ErrMalformed, func(s Stats) uint64 { return s.Malformed }},
		{"response over the size bound", func(id json.RawMessage) string {
			return fmt.Sprintf(`{"id": %s, "ok": true, "result": {"data_base64": "%s"}}`, id, strings.Repeat("A", 300<<10))
		}, ErrLineTooLong, func(s Stats) uint64 { return s.Oversized }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newRaw(t, Options{MaxLineBytes: 64 << 10})
			res := goCall(func() (*shot, error) { return c.screenshot(t.Context(), nil, formatRGBA) })
			req := p.read()
			p.send(tc.reply(req.ID))
			_, err := res.wait(t)
			assert.ErrorIs(t, err, tc.want)
			assert.Equal(t, uint64(1), tc.stat(c.Stats()))
			roundTripStatus(t, c, p)
		})
	}
}

func TestStreamEndsMidLine(t *testing.T) {
	c, p := newRaw(t, Options{})
	_, err := io.WriteString(p.conn, `{"event": "latency", "da`)
	require.NoError(t, err)
	require.NoError(t, p.conn.Close())
	waitDone(t, c)
	assert.ErrorIs(t, c.Err(), io.ErrUnexpectedEOF)
}

// TestIDLessErrorEndsTheConnection: an error with no id answers no call,
// so it is the server's verdict on the connection. ryll sends the busy
// refusal that way (tested against the simulator); the raw peer also
// sends it while hello is pending, and sends another code.
func TestIDLessErrorEndsTheConnection(t *testing.T) {
	t.Run("busy line during hello", func(t *testing.T) {
		c, p := newRaw(t, Options{})
		res := goCall(func() (HelloResult, error) { return c.Hello(t.Context()) })
		p.read()
		p.send(busyLine)
		_, err := res.wait(t)
		assert.ErrorIs(t, err, ErrBusy)
		assert.ErrorIs(t, err, ErrClosed)
		var pe *ProtocolError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, CodeBusy, pe.Code)
	})
	t.Run("another code", func(t *testing.T) {
		c, p := newRaw(t, Options{})
		p.send(`{"ok": false, "error": {"code": "internal_error", "message": "session gone"}}`)
		waitDone(t, c)
		var pe *ProtocolError
		require.ErrorAs(t, c.Err(), &pe)
		assert.Equal(t, CodeInternalError, pe.Code)
		assert.NotErrorIs(t, c.Err(), ErrBusy)
	})
}

func TestAnswerAfterTheCallerGaveUpIsUnmatched(t *testing.T) {
	c, p := newRaw(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	res := goCall(func() (Status, error) { return c.Status(ctx) })
	req := p.read()
	cancel()
	_, err := res.wait(t)
	assert.ErrorIs(t, err, context.Canceled)

	p.send(okLine(req.ID, statusResult)) // too late: nobody waits
	roundTripStatus(t, c, p)
	assert.Equal(t, uint64(1), c.Stats().Unmatched)
}

// TestCancelWhileWriteIsBlocked needs a peer that does not read at all,
// so its write blocks before a byte is taken: a net.Pipe.
func TestCancelWhileWriteIsBlocked(t *testing.T) {
	a, b := net.Pipe()
	entered := make(chan struct{}, 1)
	c := NewClient(&signalWriteConn{Conn: a, entered: entered}, Options{})
	p := peerOn(t, c, b)
	ctx, cancel := context.WithCancel(t.Context())
	res := goCall(func() (time.Time, error) { return c.SendKey(ctx, 0x1C, KeyPress) })
	<-entered
	cancel()
	_, err := res.wait(t)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NoError(t, c.Err(), "nothing was written, so the stream is still in step")
	roundTripStatus(t, c, p)
}

// signalWriteConn reports each Write before passing it on.
type signalWriteConn struct {
	net.Conn
	entered chan struct{}
}

func (s *signalWriteConn) Write(b []byte) (int, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	return s.Conn.Write(b)
}

// TestHelloRefusesServerOfAnotherMajor: ryll itself refuses another major
// (tested against the simulator); a server that accepts one anyway, or
// answers a version that does not parse, must not be trusted either.
func TestHelloRefusesServerOfAnotherMajor(t *testing.T) {
	for _, server := range []string{"2.0", "0.9", "3.1"} {
		t.Run("server answers "+server, func(t *testing.T) {
			c, p := newRaw(t, Options{})
			res := goCall(func() (HelloResult, error) { return c.Hello(t.Context()) })
			req := p.read()
			p.send(okLine(req.ID, `{"server_name": "ryll", "protocol_version": "`+server+`", "supported_methods": [], "supported_events": []}`))
			_, err := res.wait(t)
			var vm *VersionMismatchError
			require.ErrorAs(t, err, &vm)
			assert.Equal(t, VersionMismatchError{Client: "1.2", Server: server}, *vm)
			assert.Contains(t, err.Error(), "1.2")
			assert.Contains(t, err.Error(), server)
			waitDone(t, c)
			assert.ErrorIs(t, c.Err(), ErrClosed, "the client drops an incompatible server")
		})
	}
	t.Run("server answers an unparsable version", func(t *testing.T) {
		c, p := newRaw(t, Options{})
		res := goCall(func() (HelloResult, error) { return c.Hello(t.Context()) })
		req := p.read()
		p.send(okLine(req.ID, `{"server_name": "ryll", "protocol_version": "one point two"}`))
		_, err := res.wait(t)
		assert.ErrorIs(t, err, ErrMalformed)
	})
}

func TestScreenshotRejectsInconsistentAnswers(t *testing.T) {
	c, p := newRaw(t, Options{})
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
			res := goCall(func() (*shot, error) { return c.screenshot(t.Context(), nil, formatRGBA) })
			req := p.read()
			p.send(okLine(req.ID, tc.result))
			_, err := res.wait(t)
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
	t.Run("one pixel png", func(t *testing.T) {
		res := goCall(func() (*shot, error) { return c.screenshot(t.Context(), nil, formatPNG) })
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

// TestEveryDocumentedErrorCodeIsAProtocolError covers the codes the
// simulator never sends (not_implemented, internal_error, busy with an
// id) and one from a future server.
func TestEveryDocumentedErrorCodeIsAProtocolError(t *testing.T) {
	c, p := newRaw(t, Options{})
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
	c, p := newRaw(t, Options{})
	p.helloAs(c, "1.3")
	res := goCall(func() (map[string]any, error) {
		var out map[string]any
		_, err := c.callInto(t.Context(), "mouse_move", map[string]int{"x": 3, "y": 4}, &out)
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
		_, err := c.callInto(t.Context(), "mouse_move", bad, nil)
		assert.ErrorIs(t, err, ErrInvalidArgument, "%T", bad)
	}
	roundTripStatus(t, c, p) // nothing was written for the refused calls
}

func TestResultsIgnoreUnknownFields(t *testing.T) {
	c, p := newRaw(t, Options{})
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
	// checkRequestShape is the document's rule, applied to every request
	// the tests see; this pins the encoder for awkward names and params.
	line, err := appendRequest(nil, 42, "we\"ird\nname", map[string]string{"text": "a\nb"})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(string(line), "\n"))
	req, err := checkRequestShape(line[:len(line)-1])
	require.NoError(t, err)
	assert.Equal(t, "we\"ird\nname", req.Method)
	assert.Equal(t, json.RawMessage("42"), req.ID)
}

// TestAgentNotConnectedIsAProtocolError: ryll's own code never answers
// agent_not_connected (paste is typed as keys), but the protocol document
// lists it, so a client must surface it as a ProtocolError, with the
// pasted text kept out of the message.
func TestAgentNotConnectedIsAProtocolError(t *testing.T) {
	c, p := newRaw(t, Options{})
	p.helloAs(c, "1.2")
	res := goCall(func() (pasteAck, error) { return c.paste(t.Context(), "secret-text", defaultCharDelay) })
	req := p.read()
	require.Equal(t, "paste", req.Method)
	p.send(errLine(req.ID, CodeAgentNotConnected, "no vdagent"))
	_, err := res.wait(t)
	var pe *ProtocolError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, CodeAgentNotConnected, pe.Code)
	assert.NotContains(t, err.Error(), "secret-text", "paste text never appears in errors")
}

// writeRaw writes s as it is (no newline added).
func (p *rawPeer) writeRaw(s string) {
	p.t.Helper()
	require.NoError(p.t, p.conn.SetWriteDeadline(time.Now().Add(hangGuard)))
	_, err := io.WriteString(p.conn, s)
	require.NoError(p.t, err, "peer: write")
}

// A call whose answer does not come says what the socket did meanwhile,
// so that a hung server, a huge line and an answer stuck behind events
// are told apart (all three said "waiting for response: context deadline
// exceeded" before), and names the verb.
func TestNoResponseSaysWhatTheSocketDid(t *testing.T) {
	tests := []struct {
		name string
		sent string // what the server writes after reading the request
		want []string
	}{
		{"hung: nothing at all", "", []string{"nothing at all came from the server", "hung"}},
		{"a line over the limit", `{"event":"surface_drawn","data":{"x":"` + strings.Repeat("a", 5000),
			[]string{"one line of more than 1024 bytes", "longer than any message this client accepts"}},
		{"a long line still coming", `{"event":"surface_drawn","data":{"x":"` + strings.Repeat("a", 500),
			[]string{"still sending one line"}},
		{"events but no answer", `{"event":"dropped","data":{"count":1}}` + "\n" + `{"event":"dropped","data":{"count":2}}` + "\n",
			[]string{"2 lines came from the server", "2 of them events", "not the answer"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newRaw(t, Options{MaxLineBytes: 1024})
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			errc := make(chan error, 1)
			go func() {
				_, err := c.SendKey(ctx, 0x39, KeyDown)
				errc <- err
			}()
			p.read()
			p.writeRaw(tc.sent)
			eventually(t, "the client read what was sent", func() bool { return c.bytesIn.Load() >= uint64(len(tc.sent)) })
			cancel(context.DeadlineExceeded)
			err := <-errc
			require.Error(t, err)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Contains(t, err.Error(), "control send_key: no response")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
