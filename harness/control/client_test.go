package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const statusResult = `{"spice_connected": true, "agent_connected": true, "surfaces": [{"channel_id": 1, "surface_id": 0, "width": 1024, "height": 768}]}`

// roundTripStatus runs one status call answered by p. Because the reader
// handles lines in order, its return also proves every earlier line has
// been processed.
func roundTripStatus(t *testing.T, c *Client, p *pipePeer) {
	t.Helper()
	res := goCall(func() (Status, error) { return c.Status(t.Context()) })
	req := p.read()
	require.Equal(t, "status", req.Method)
	p.send(okLine(req.ID, statusResult))
	_, err := res.wait(t)
	require.NoError(t, err)
}

// nextEvent returns the next event; the hang guard only stops a broken test.
func nextEvent(t *testing.T, c *Client) (Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		return ev, ok
	case <-time.After(hangGuard):
		t.Fatal("no event (hang guard)")
		return Event{}, false
	}
}

func drawnLine(i int) string {
	return fmt.Sprintf(`{"event": "surface_drawn", "data": {"display_channel_id": 0, "surface_id": 0, "produced_at_secs": %d, "wallclock_us": %d}}`, i, i)
}

func TestConcurrentCallsAnsweredOutOfOrder(t *testing.T) {
	c, p := newPipe(t, Options{})
	const n = 64
	calls := make([]async[int], n)
	for i := range n {
		calls[i] = goCall(func() (int, error) {
			var out struct{ N int }
			_, err := c.Call(t.Context(), "echo", map[string]int{"n": i}, &out)
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

func TestSlowEventConsumerDoesNotDelayResponses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		queue     int
		wantDrops bool
	}{
		{"queue overflows", 100, true},
		{"default queue holds them", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newPipe(t, Options{EventQueue: tc.queue})
			const sent = 5000
			res := goCall(func() (Status, error) { return c.Status(t.Context()) })
			req := p.read()
			for i := range sent {
				p.send(drawnLine(i)) // nobody is reading Events()
			}
			p.send(okLine(req.ID, statusResult))
			_, err := res.wait(t)
			require.NoError(t, err, "the response arrives although no one consumes events")

			dropped := c.DroppedEvents()
			assert.Equal(t, tc.wantDrops, dropped > 0)
			assert.Equal(t, dropped, c.Stats().EventsDropped)
			assert.Equal(t, uint64(sent), c.Stats().Events)
			last := -1
			for range sent - int(dropped) {
				ev, ok := nextEvent(t, c)
				require.True(t, ok)
				d, err := ev.SurfaceDrawn()
				require.NoError(t, err)
				assert.Greater(t, int(d.WallclockUS), last, "events stay in order")
				last = int(d.WallclockUS)
			}
			assert.Equal(t, sent-1, last, "the newest events survive; the oldest are dropped")
		})
	}
}

func TestEventsPassThroughUnknownNamesAndFields(t *testing.T) {
	c, p := newPipe(t, Options{})
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
		name  string
		lines []string
		want  Stats // only Malformed, Oversized and Unmatched are compared
	}{
		{"truncated JSON", []string{`{"id": 1, "ok": tru`}, Stats{Malformed: 1}},
		{"array", []string{`[1, 2, 3]`}, Stats{Malformed: 1}},
		{"number", []string{`42`}, Stats{Malformed: 1}},
		{"string", []string{`"hello"`}, Stats{Malformed: 1}},
		{"null", []string{`null`}, Stats{Malformed: 1}},
		{"binary", []string{"\x00\xff\xfe{"}, Stats{Malformed: 1}},
		{"object of nothing known", []string{`{"foo": 1}`}, Stats{Malformed: 1}},
		{"success without id", []string{`{"ok": true, "result": {}}`}, Stats{Malformed: 1}},
		{"ok not a boolean", []string{`{"id": 77, "ok": "yes"}`}, Stats{Malformed: 1}},
		{"event name not a string", []string{`{"event": 42, "data": {}}`}, Stats{Malformed: 1}},
		{"empty event name", []string{`{"event": "", "data": {}}`}, Stats{Malformed: 1}},
		{"event without data", []string{`{"event": "latency"}`}, Stats{Malformed: 1}},
		{"both ok and event", []string{`{"event": "latency", "data": {}, "ok": true}`}, Stats{Malformed: 1}},
		{"unknown id", []string{`{"id": 999999, "ok": true, "result": {}}`}, Stats{Unmatched: 1}},
		{"string id", []string{`{"id": "abc", "ok": true, "result": {}}`}, Stats{Unmatched: 1}},
		{"negative id", []string{`{"id": -1, "ok": false, "error": {"code": "bad_params", "message": ""}}`}, Stats{Unmatched: 1}},
		{"fractional id", []string{`{"id": 1.5, "ok": true, "result": {}}`}, Stats{Unmatched: 1}},
		{"huge id", []string{`{"id": 123456789012345678901234567890, "ok": true, "result": {}}`}, Stats{Unmatched: 1}},
		{"over-long line", []string{strings.Repeat("y", 5000)}, Stats{Oversized: 1}},
		{"over-long line bigger than the read buffer", []string{big}, Stats{Oversized: 1}},
		{"blank lines are not messages", []string{"", "   ", "\r"}, Stats{}},
		{"several in a row", []string{`[`, big, `{"id": "x", "ok": true, "result": {}}`, `{}`}, Stats{Malformed: 2, Oversized: 1, Unmatched: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newPipe(t, Options{MaxLineBytes: 1024})
			for _, line := range tc.lines {
				p.send(line)
			}
			roundTripStatus(t, c, p) // the client resynchronised and still works
			got := c.Stats()
			assert.Equal(t, tc.want.Malformed, got.Malformed, "malformed")
			assert.Equal(t, tc.want.Oversized, got.Oversized, "oversized")
			assert.Equal(t, tc.want.Unmatched, got.Unmatched, "unmatched")
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
			c, p := newPipe(t, Options{MaxLineBytes: 64 << 10})
			res := goCall(func() (*Screenshot, error) { return c.Screenshot(t.Context(), nil, FormatRGBA) })
			req := p.read()
			p.send(tc.reply(req.ID))
			_, err := res.wait(t)
			assert.ErrorIs(t, err, tc.want)
			assert.Equal(t, uint64(1), tc.stat(c.Stats()))
			roundTripStatus(t, c, p)
		})
	}
}

func TestConnectionLoss(t *testing.T) {
	t.Run("server closes during a call", func(t *testing.T) {
		c, p := newPipe(t, Options{})
		p.send(drawnLine(1)) // an event that arrived before the loss
		res := goCall(func() (Status, error) { return c.Status(t.Context()) })
		p.read()
		require.NoError(t, p.conn.Close())
		_, err := res.wait(t)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, err, io.EOF, "the cause is kept")
		<-c.Done()
		assert.ErrorIs(t, c.Err(), ErrClosed)

		_, err = c.Status(t.Context())
		assert.ErrorIs(t, err, ErrClosed, "later calls fail at once")

		ev, ok := nextEvent(t, c)
		require.True(t, ok, "events read before the loss are still delivered")
		assert.Equal(t, EventSurfaceDrawn, ev.Name)
		_, ok = nextEvent(t, c)
		assert.False(t, ok, "then Events is closed")
	})
	t.Run("many pending calls all fail", func(t *testing.T) {
		c, p := newPipe(t, Options{})
		var calls []async[Status]
		for range 10 {
			calls = append(calls, goCall(func() (Status, error) { return c.Status(t.Context()) }))
		}
		for range 10 {
			p.read()
		}
		require.NoError(t, p.conn.Close())
		for _, call := range calls {
			_, err := call.wait(t)
			assert.ErrorIs(t, err, ErrClosed)
		}
	})
	t.Run("connection ends mid-line", func(t *testing.T) {
		c, p := newPipe(t, Options{})
		_, err := io.WriteString(p.conn, `{"event": "latency", "da`)
		require.NoError(t, err)
		require.NoError(t, p.conn.Close())
		<-c.Done()
		assert.ErrorIs(t, c.Err(), io.ErrUnexpectedEOF)
	})
	t.Run("busy line during hello", func(t *testing.T) {
		c, p := newPipe(t, Options{})
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
	t.Run("id-less error ends the connection", func(t *testing.T) {
		c, p := newPipe(t, Options{})
		p.send(`{"ok": false, "error": {"code": "internal_error", "message": "session gone"}}`)
		<-c.Done()
		var pe *ProtocolError
		require.ErrorAs(t, c.Err(), &pe)
		assert.Equal(t, CodeInternalError, pe.Code)
		assert.NotErrorIs(t, c.Err(), ErrBusy)
	})
	t.Run("fake ryll drops the client", func(t *testing.T) {
		f := newFakeRyll(t, "1.2").start()
		c := dialFake(t, f)
		f.disconnect()
		<-c.Done()
		assert.ErrorIs(t, c.Err(), ErrClosed)
		_, err := c.Status(t.Context())
		assert.ErrorIs(t, err, ErrClosed)
	})
}

func TestCallHonoursContext(t *testing.T) {
	t.Run("waiting for the response", func(t *testing.T) {
		c, p := newPipe(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		res := goCall(func() (Status, error) { return c.Status(ctx) })
		req := p.read()
		cancel()
		_, err := res.wait(t)
		assert.ErrorIs(t, err, context.Canceled)

		p.send(okLine(req.ID, statusResult)) // too late: nobody waits
		roundTripStatus(t, c, p)
		assert.Equal(t, uint64(1), c.Stats().Unmatched)
	})
	t.Run("already cancelled", func(t *testing.T) {
		c, _ := newPipe(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.SendKey(ctx, 0x1C, KeyPress)
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("blocked writing to a server that does not read", func(t *testing.T) {
		a, b := net.Pipe()
		entered := make(chan struct{}, 1)
		c := NewClient(&signalWriteConn{Conn: a, entered: entered}, Options{})
		p := &pipePeer{t: t, conn: b, r: bufio.NewReader(b)}
		t.Cleanup(func() {
			_ = b.Close()
			_ = c.Close()
		})
		ctx, cancel := context.WithCancel(t.Context())
		res := goCall(func() (time.Time, error) { return c.SendKey(ctx, 0x1C, KeyPress) })
		<-entered
		cancel()
		_, err := res.wait(t)
		assert.ErrorIs(t, err, context.Canceled)
		assert.NoError(t, c.Err(), "nothing was written, so the stream is still in step")
		roundTripStatus(t, c, p)
	})
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

func TestCloseIsIdempotentAndFailsPendingCalls(t *testing.T) {
	c, p := newPipe(t, Options{})
	res := goCall(func() (Status, error) { return c.Status(t.Context()) })
	p.read()
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err := res.wait(t)
	assert.ErrorIs(t, err, ErrClosed)
	<-c.Done()
	assert.ErrorIs(t, c.Err(), ErrClosed)
	_, ok := <-c.Events()
	assert.False(t, ok, "Events is closed after Close")
	_, err = c.Status(t.Context())
	assert.ErrorIs(t, err, ErrClosed)
}

func TestCloseWhileEventsUnread(t *testing.T) {
	c, p := newPipe(t, Options{})
	for i := range 500 {
		p.send(drawnLine(i))
	}
	roundTripStatus(t, c, p)
	require.NoError(t, c.Close(), "Close does not wait for a consumer")
}

func TestManyGoroutinesOverUnixSocket(t *testing.T) {
	f := newFakeRyll(t, "1.2").start()
	c := dialFake(t, f)
	_, err := c.Subscribe(t.Context(), EventSurfaceDrawn)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				var err error
				if i%2 == 0 {
					_, err = c.Status(t.Context())
				} else {
					_, err = c.SendKey(t.Context(), uint16(0x10+g), KeyPress)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range 200 {
		f.emit(EventSurfaceDrawn, fmt.Sprintf(`{"display_channel_id": 0, "surface_id": 0, "produced_at_secs": %d, "wallclock_us": %d}`, i, i))
	}
	wg.Wait()
	assert.Empty(t, errs)
	s := c.Stats()
	assert.Equal(t, uint64(16*20+2), s.Responses, "hello + subscribe + every call")
	assert.Zero(t, s.Malformed+s.Oversized+s.Unmatched)
}
