package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run the simulator inside a synctest bubble, on fake time,
// over an in-memory listener: every instant is exact, so they assert
// times to the microsecond without any real-clock window.

// pipeListener is an in-memory net.Listener. Waiting on it (and on
// net.Pipe) is durably blocking, so the bubble's clock can advance.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn, 1), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

func (l *pipeListener) dial() net.Conn {
	server, client := net.Pipe()
	l.conns <- server
	return client
}

// fakeSession is a simulator on fake time with one connected client.
type fakeSession struct {
	t     *testing.T
	s     *Sim
	start time.Time
	nc    net.Conn
	br    *bufio.Reader
	id    int
	truth string
}

// srvLine is one decoded server line and when (fake time) it was read.
type srvLine struct {
	fields map[string]json.RawMessage
	at     time.Time
}

func (l srvLine) event() string {
	var s string
	_ = json.Unmarshal(l.fields["event"], &s)
	return s
}

func (l srvLine) wallclockUS() int64 {
	var d struct {
		WallclockUS int64 `json:"wallclock_us"`
	}
	_ = json.Unmarshal(l.fields["data"], &d)
	return d.WallclockUS
}

// inBubble runs body against a simulator configured by mutate (defaults,
// no PINGs, no refresh timer, the surface 1ms after start, a truth
// file), on fake time.
func inBubble(t *testing.T, mutate func(*Config), body func(f *fakeSession)) {
	t.Helper()
	truth := filepath.Join(t.TempDir(), "truth.csv")
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.SocketPath = "in-memory"
		cfg.Ping = PingPattern{Mode: PingNone}
		cfg.DisplayRefresh = 0
		cfg.TruthFile = truth
		// The first paint lands just after the client has subscribed.
		cfg.SurfacesDelay = time.Millisecond
		if mutate != nil {
			mutate(&cfg)
		}
		s, err := New(cfg)
		require.NoError(t, err)
		ln := newPipeListener()
		s.srv.listen = func(string) (net.Listener, os.FileInfo, error) { return ln, nil, nil }
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- s.Run(ctx) }()
		<-s.Ready()
		f := &fakeSession{t: t, s: s, start: s.SessionStart(), nc: ln.dial(), truth: truth}
		f.br = bufio.NewReader(f.nc)
		f.call("hello", map[string]any{"client_name": "synctest", "protocol_version": "1.2"})
		body(f)
		_ = f.nc.Close()
		cancel()
		require.NoError(t, <-errc)
	})
}

// send writes a request and returns its id.
func (f *fakeSession) send(method string, params any) int {
	f.t.Helper()
	f.id++
	b, err := json.Marshal(map[string]any{"id": f.id, "method": method, "params": params})
	require.NoError(f.t, err)
	require.NoError(f.t, f.nc.SetWriteDeadline(time.Now().Add(time.Minute)))
	_, err = f.nc.Write(append(b, '\n'))
	require.NoError(f.t, err)
	return f.id
}

// read returns the next line; a silent server fails the test after a
// fake minute instead of hanging it.
func (f *fakeSession) read() srvLine {
	f.t.Helper()
	require.NoError(f.t, f.nc.SetReadDeadline(time.Now().Add(time.Minute)))
	b, err := f.br.ReadBytes('\n')
	require.NoError(f.t, err)
	var l srvLine
	require.NoError(f.t, json.Unmarshal(b, &l.fields), "%s", b)
	l.at = time.Now()
	return l
}

// call sends a request and reads up to its response, returning the
// events read on the way.
func (f *fakeSession) call(method string, params any) (resp srvLine, events []srvLine) {
	f.t.Helper()
	id := f.send(method, params)
	for {
		l := f.read()
		if _, ok := l.fields["event"]; ok {
			events = append(events, l)
			continue
		}
		require.Equal(f.t, fmt.Sprint(id), string(l.fields["id"]), "responses in order")
		return l, events
	}
}

func (f *fakeSession) ok(method string, params any) []srvLine {
	f.t.Helper()
	resp, events := f.call(method, params)
	require.Equal(f.t, "true", string(resp.fields["ok"]), "%s: %v", method, resp.fields)
	return events
}

// draws reads n surface_drawn events (skipping other events).
func (f *fakeSession) draws(n int) []srvLine {
	f.t.Helper()
	var out []srvLine
	for len(out) < n {
		if l := f.read(); l.event() == EventSurfaceDrawn {
			out = append(out, l)
		}
	}
	return out
}

// subscribeDraws subscribes to surface_drawn and reads the first paint.
func (f *fakeSession) subscribeDraws() {
	f.t.Helper()
	f.ok("subscribe", map[string]any{"events": []string{"surface_drawn"}})
	assert.Equal(f.t, f.at(time.Millisecond), f.draws(1)[0].wallclockUS(), "the first paint")
}

// at is the wall clock µs of session start + d.
func (f *fakeSession) at(d time.Duration) int64 { return f.start.Add(d).UnixMicro() }

func (f *fakeSession) rows() []TruthRow {
	f.t.Helper()
	synctest.Wait() // every scheduled action due now has run
	rows, err := ReadTruthFile(f.truth)
	require.NoError(f.t, err)
	return rows
}

func keyDown() map[string]any { return map[string]any{"scancode": 0x39, "state": "down"} }

func TestRepaintSpreadAndTail(t *testing.T) {
	inBubble(t, func(c *Config) {
		c.DrawDelay, c.DrawsPerKey, c.DrawSpread = 20*time.Millisecond, 5, 4*time.Millisecond
		c.DrawTail, c.DrawTailCount = 40*time.Millisecond, 2
	}, func(f *fakeSession) {
		f.subscribeDraws()
		time.Sleep(time.Second)
		sent := time.Since(f.start)
		f.ok("send_key", keyDown())
		got := f.draws(5)
		want := []time.Duration{20, 21, 22, 23 + 40, 24 + 40}
		for i, d := range got {
			assert.Equal(t, f.at(sent+want[i]*time.Millisecond), d.wallclockUS(), "draw %d", i)
			assert.Equal(t, d.wallclockUS(), d.at.UnixMicro(), "draw %d is sent at its own moment", i)
		}
		rows := f.rows()
		require.Len(t, rows, 1)
		assert.Equal(t, TruthRow{Press: 1, ArrivalUS: f.at(sent), FirstDrawUS: got[0].wallclockUS(), LastDrawUS: got[4].wallclockUS(), Draws: 5}, rows[0])
		assert.Equal(t, 20*time.Millisecond, rows[0].FirstDraw())
		assert.Equal(t, 64*time.Millisecond, rows[0].Repaint())
	})
}

func TestRepaintsDoNotOverlap(t *testing.T) {
	inBubble(t, func(c *Config) {
		c.DrawDelay, c.DrawsPerKey, c.DrawSpread, c.DrawTail = 10*time.Millisecond, 3, 2*time.Millisecond, 40*time.Millisecond
		c.SurfacesDelay = time.Hour // no first paint to skip
	}, func(f *fakeSession) {
		f.ok("send_key", keyDown())
		time.Sleep(time.Millisecond)
		f.ok("send_key", keyDown())
		time.Sleep(time.Hour)
		f.ok("send_key", keyDown())
		rows := f.rows()
		require.Len(t, rows, 2, "the third press has not drawn yet")
		for _, r := range rows {
			assert.False(t, r.Drawn(), "before the surface nothing draws")
		}
	})
	inBubble(t, func(c *Config) {
		c.DrawDelay, c.DrawsPerKey, c.DrawSpread, c.DrawTail = 10*time.Millisecond, 3, 2*time.Millisecond, 40*time.Millisecond
	}, func(f *fakeSession) {
		time.Sleep(time.Second)
		f.ok("send_key", keyDown())
		time.Sleep(time.Millisecond)
		f.ok("send_key", keyDown())
		time.Sleep(time.Second)
		rows := f.rows()
		require.Len(t, rows, 2)
		assert.Equal(t, 10*time.Millisecond, rows[0].FirstDraw())
		assert.Equal(t, 52*time.Millisecond, rows[0].Repaint())
		assert.Equal(t, rows[0].LastDrawUS, rows[1].FirstDrawUS, "the second repaint waits for the first's stalled tail")
		assert.Equal(t, 2, rows[1].Press)
	})
}

func TestBackgroundSteady(t *testing.T) {
	inBubble(t, func(c *Config) {
		c.BackgroundRate, c.BackgroundPattern = 100, BackgroundSteady
	}, func(f *fakeSession) {
		f.subscribeDraws()
		got := f.draws(6)
		for i, d := range got {
			assert.Equal(t, f.at(time.Duration(i+1)*10*time.Millisecond), d.wallclockUS(), "draw %d every 1/rate", i)
		}
		assert.Zero(t, f.s.Stats().KeyDowns)
		assert.GreaterOrEqual(t, f.s.Stats().BackgroundDraws, uint64(6))
	})
}

func TestBackgroundBursty(t *testing.T) {
	inBubble(t, func(c *Config) {
		c.BackgroundRate, c.BackgroundPattern = 46, BackgroundBursty
		c.DrawsPerKey, c.DrawSpread = 23, 3*time.Millisecond
	}, func(f *fakeSession) {
		f.subscribeDraws()
		burst := f.draws(23)
		first := burst[0].wallclockUS()
		assert.Equal(t, first+3000, burst[22].wallclockUS(), "a burst is spread like a repaint")
		for i := 1; i < len(burst); i++ {
			assert.GreaterOrEqual(t, burst[i].wallclockUS(), burst[i-1].wallclockUS())
		}
		time.Sleep(10 * time.Second)
		bg := f.s.Stats().BackgroundDraws
		assert.Zero(t, bg%23, "whole bursts only")
		assert.InDelta(t, 460, float64(bg), 200, "about rate draws a second")
		assert.Empty(t, f.rows(), "background draws are not presses")
	})
}

func TestKeysBeforeInputsChannelAreBuffered(t *testing.T) {
	inBubble(t, func(c *Config) {
		c.InputsDelay, c.DrawDelay, c.DrawsPerKey, c.DrawSpread = 500*time.Millisecond, 20*time.Millisecond, 1, 0
	}, func(f *fakeSession) {
		f.subscribeDraws()
		var sent []int64
		for range 3 {
			sent = append(sent, time.Now().UnixMicro())
			f.ok("send_key", keyDown())
			f.ok("send_key", map[string]any{"scancode": 0x39, "state": "up"})
			time.Sleep(100 * time.Millisecond)
		}
		assert.Equal(t, uint64(6), f.s.Stats().InputsBuffered)
		assert.Empty(t, f.rows(), "nothing reached the guest yet")
		got := f.draws(3)
		for i, d := range got {
			assert.Equal(t, f.at(520*time.Millisecond), d.wallclockUS(), "press %d is repainted when the channel is up", i+1)
		}
		rows := f.rows()
		require.Len(t, rows, 3, "buffered, not lost")
		for i, r := range rows {
			assert.Equal(t, i+1, r.Press)
			assert.Equal(t, sent[i], r.ArrivalUS, "the truth keeps when the request came")
		}
		// Once up, keys go straight through.
		now := time.Since(f.start)
		f.ok("send_key", keyDown())
		assert.Equal(t, f.at(now+20*time.Millisecond), f.draws(1)[0].wallclockUS())
	})
}

func TestInputBufferIsBounded(t *testing.T) {
	inBubble(t, func(c *Config) { c.InputsDelay = time.Hour }, func(f *fakeSession) {
		for range InputQueueCapacity / 2 {
			f.ok("send_key", map[string]any{"scancode": 0x39, "state": "press"})
		}
		for _, params := range []map[string]any{keyDown(), {"scancode": 0x39, "state": "press"}, {"text": "x"}} {
			method := "send_key"
			if _, ok := params["text"]; ok {
				method = "paste"
			}
			resp, _ := f.call(method, params)
			var e struct{ Code, Message string }
			require.NoError(t, json.Unmarshal(resp.fields["error"], &e), "%s %v: %v", method, params, resp.fields)
			assert.Equal(t, CodeInternalError, e.Code)
			assert.Contains(t, e.Message, "input channel closed or full")
		}
		st := f.s.Stats()
		assert.Equal(t, uint64(InputQueueCapacity), st.InputsBuffered)
		assert.Equal(t, uint64(3), st.InputsRefused)
		assert.Equal(t, uint64(InputQueueCapacity/2), st.KeyDowns, "refused key-downs are no presses")
	})
}

// TestFullQueueDropsNewestAndStallsAnswers is ryll's code under
// overload: the events that do not fit are the newest, the answer to a
// request waits for a slot behind the queued events, and dropped comes
// only after a later event finds the queue drained, unsubscribed or not.
func TestFullQueueDropsNewestAndStallsAnswers(t *testing.T) {
	inBubble(t, func(c *Config) {
		c.DrawDelay, c.DrawsPerKey, c.DrawSpread = time.Millisecond, 300, 0
	}, func(f *fakeSession) {
		f.subscribeDraws()
		time.Sleep(time.Second)
		keyAt := time.Now().Add(time.Millisecond).UnixMicro()
		f.ok("send_key", keyDown())
		// The burst lands while we do not read: the writer holds one
		// event, 256 are queued, the rest are refused.
		time.Sleep(10 * time.Millisecond)
		id := f.send("status", map[string]any{})
		var draws int
		for {
			l := f.read()
			if l.event() == "" {
				assert.Equal(t, fmt.Sprint(id), string(l.fields["id"]))
				break
			}
			require.Equal(t, EventSurfaceDrawn, l.event(), "no dropped yet: nothing followed the drain")
			assert.Equal(t, keyAt, l.wallclockUS())
			draws++
		}
		// 256 queued, plus the one the writer may have taken before the
		// burst filled the queue.
		assert.GreaterOrEqual(t, draws, QueueCapacity, "the answer waited behind a full queue")
		assert.LessOrEqual(t, draws, QueueCapacity+1)
		assert.Equal(t, uint64(300-draws), f.s.Stats().Dropped, "the newest were refused")

		f.ok("unsubscribe", map[string]any{"events": []string{"surface_drawn"}})
		f.ok("subscribe", map[string]any{"events": []string{"latency"}})
		// A later event into the drained queue brings the count, although
		// the client never subscribed to dropped.
		f.s.emit(EventLatency, Latency{SampleMS: 1, WallclockUS: time.Now().UnixMicro()})
		assert.Equal(t, EventLatency, f.read().event())
		l := f.read()
		require.Equal(t, EventDropped, l.event())
		assert.JSONEq(t, fmt.Sprintf(`{"count": %d}`, 300-draws), string(l.fields["data"]))
	})
}
