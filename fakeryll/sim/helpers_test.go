package sim_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait in these tests; it is a deadline against hangs,
// never an assertion about speed. An RGBA screenshot (megabytes of
// base64 under -race) took more than 15 s beside a second make test.
const wait = time.Minute

// running is one simulator under test.
type running struct {
	sim  *sim.Sim
	cfg  sim.Config
	path string
	dir  string
	errc chan error
	stop context.CancelFunc
}

// newConfig returns a test configuration: defaults, except no PINGs (so
// that only what a test asks for produces events), plus mutate.
func newConfig(t testing.TB, mutate func(*sim.Config)) (sim.Config, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fr")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg := sim.DefaultConfig()
	cfg.SocketPath = filepath.Join(dir, "s")
	cfg.Ping = sim.PingPattern{Mode: sim.PingNone}
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg, dir
}

// startSim runs a simulator until the test ends and waits until its
// socket accepts connections.
func startSim(t testing.TB, mutate func(*sim.Config)) *running {
	t.Helper()
	cfg, dir := newConfig(t, mutate)
	return startWith(t, cfg, dir)
}

func startWith(t testing.TB, cfg sim.Config, dir string) *running {
	t.Helper()
	s, err := sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{sim: s, cfg: cfg, path: cfg.SocketPath, dir: dir, errc: make(chan error, 1), stop: cancel}
	go func() { r.errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.errc:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
			r.errc <- err // keep it for anyone else asking
		case <-time.After(wait):
			t.Errorf("Run did not return within %v of cancel", wait)
		}
	})
	select {
	case <-s.Ready():
	case err := <-r.errc:
		r.errc <- err
		require.FailNowf(t, "simulator stopped before it was ready", "%v", err)
	case <-time.After(wait):
		require.FailNow(t, "simulator not ready")
	}
	return r
}

// msg is one line from the server.
type msg struct {
	raw    []byte
	fields map[string]json.RawMessage
}

func (m msg) has(k string) bool { _, ok := m.fields[k]; return ok }
func (m msg) isEvent() bool     { return m.has("event") }

func (m msg) str(k string) string {
	var s string
	_ = json.Unmarshal(m.fields[k], &s)
	return s
}

func (m msg) ok() bool {
	var b bool
	_ = json.Unmarshal(m.fields["ok"], &b)
	return b
}

func (m msg) errCode() string {
	var e struct{ Code, Message string }
	_ = json.Unmarshal(m.fields["error"], &e)
	return e.Code
}

func (m msg) errMessage() string {
	var e struct{ Code, Message string }
	_ = json.Unmarshal(m.fields["error"], &e)
	return e.Message
}

// into decodes field k (e.g. "result" or "data") into v.
func (m msg) into(t testing.TB, k string, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(m.fields[k]))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "decode %s of %s", k, m.raw)
}

// rawID returns the id exactly as the server wrote it.
func (m msg) rawID() string { return string(m.fields["id"]) }

// conn is a raw NDJSON client.
type conn struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader
	nextID int
	events []msg // events read while waiting for responses
}

func dial(t testing.TB, path string) *conn {
	t.Helper()
	nc, err := net.DialTimeout("unix", path, wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return &conn{t: t, nc: nc, br: bufio.NewReaderSize(nc, 1<<20)}
}

// dialHello connects and completes hello at 1.2.
func dialHello(t testing.TB, path string) *conn {
	t.Helper()
	c := dial(t, path)
	r := c.call("hello", map[string]any{"client_name": "test", "protocol_version": "1.2"})
	require.True(t, r.ok(), "hello: %s", r.raw)
	return c
}

// dialWhenFree connects and says hello at version, retrying while the
// server still holds a previous (closed) client and answers busy.
func dialWhenFree(t testing.TB, path, version string) (*conn, msg) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c := dial(t, path)
		// A busy server may close before the hello is written: not an error.
		_, _ = fmt.Fprintf(c.nc, `{"id": 1, "method": "hello", "params": {"client_name": "test", "protocol_version": %q}}`+"\n", version)
		m, err := c.tryRead(wait)
		if err == nil && m.ok() {
			c.nextID = 1
			return c, m
		}
		if err == nil {
			require.Equal(t, "busy", m.errCode(), "%s", m.raw)
		}
		_ = c.nc.Close()
		require.False(t, time.Now().After(deadline), "server stayed busy")
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *conn) writeRaw(s string) {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetWriteDeadline(time.Now().Add(wait)))
	_, err := c.nc.Write([]byte(s))
	require.NoError(c.t, err)
}

// read returns the next line, failing the test after the deadline.
func (c *conn) read() msg {
	c.t.Helper()
	m, err := c.tryRead(wait)
	require.NoError(c.t, err)
	return m
}

func (c *conn) tryRead(d time.Duration) (msg, error) {
	if err := c.nc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return msg{}, err
	}
	line, err := c.br.ReadBytes('\n')
	if err != nil {
		return msg{}, err
	}
	m := msg{raw: line}
	if err := json.Unmarshal(line, &m.fields); err != nil {
		return msg{}, fmt.Errorf("server sent a line that is not a JSON object: %q: %w", line, err)
	}
	return m, nil
}

// send writes a request with a fresh integer id and returns the id.
func (c *conn) send(method string, params any) int {
	c.t.Helper()
	c.nextID++
	b, err := json.Marshal(map[string]any{"id": c.nextID, "method": method, "params": params})
	require.NoError(c.t, err)
	c.writeRaw(string(b) + "\n")
	return c.nextID
}

// call sends a request and returns its response; events read meanwhile
// are kept in c.events.
func (c *conn) call(method string, params any) msg {
	c.t.Helper()
	id := c.send(method, params)
	return c.response(strconv.Itoa(id))
}

// response reads until the response whose raw id is rawID.
func (c *conn) response(rawID string) msg {
	c.t.Helper()
	for {
		m := c.read()
		if m.isEvent() {
			c.events = append(c.events, m)
			continue
		}
		require.Equal(c.t, rawID, m.rawID(), "responses must come in request order: %s", m.raw)
		return m
	}
}

// event returns the next event called name, from those already read or
// from the wire.
func (c *conn) event(name string) msg {
	c.t.Helper()
	for i, m := range c.events {
		if m.str("event") == name {
			c.events = append(c.events[:i], c.events[i+1:]...)
			return m
		}
	}
	for {
		m := c.read()
		require.True(c.t, m.isEvent(), "unexpected response %s", m.raw)
		if m.str("event") == name {
			return m
		}
		c.events = append(c.events, m)
	}
}

// expectEOF asserts the server closed the connection.
func (c *conn) expectEOF() {
	c.t.Helper()
	m, err := c.tryRead(wait)
	require.Error(c.t, err, "expected EOF, got %s", m.raw)
	require.False(c.t, errors.Is(err, os.ErrDeadlineExceeded), "server did not close the connection")
}

// subscribe subscribes and returns the accepted names.
func (c *conn) subscribe(names ...string) []string {
	c.t.Helper()
	if names == nil {
		names = []string{}
	}
	r := c.call("subscribe", map[string]any{"events": names})
	require.True(c.t, r.ok(), "subscribe: %s", r.raw)
	var res struct {
		Subscribed []string `json:"subscribed"`
	}
	r.into(c.t, "result", &res)
	return res.Subscribed
}

// drawn is a decoded surface_drawn event.
type drawn struct {
	DisplayChannelID uint8   `json:"display_channel_id"`
	SurfaceID        uint32  `json:"surface_id"`
	ProducedAtSecs   float64 `json:"produced_at_secs"`
	WallclockUS      int64   `json:"wallclock_us"`
}

func (c *conn) drawn() drawn {
	c.t.Helper()
	var d drawn
	c.event("surface_drawn").into(c.t, "data", &d)
	return d
}

// drawnAfter returns the next surface_drawn stamped at or after us,
// skipping earlier ones (the session's first paint can reach a client
// that subscribes quickly; it is not caused by any key).
func (c *conn) drawnAfter(us int64) drawn {
	c.t.Helper()
	for {
		if d := c.drawn(); d.WallclockUS >= us {
			return d
		}
	}
}

// keyDown sends send_key down and returns the wall clock (µs) just before
// the write and just after the response.
func (c *conn) keyDown(code int) (beforeUS, afterUS int64) {
	c.t.Helper()
	beforeUS = time.Now().UnixMicro()
	r := c.call("send_key", map[string]any{"scancode": code, "state": "down"})
	afterUS = time.Now().UnixMicro()
	require.True(c.t, r.ok(), "send_key: %s", r.raw)
	return beforeUS, afterUS
}

// eventually polls cond until it holds, failing after the deadline. It
// waits for state, never stands in for a measurement.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting: "+what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// statusRes is a decoded status result.
type statusRes struct {
	SpiceConnected bool `json:"spice_connected"`
	AgentConnected bool `json:"agent_connected"`
	Surfaces       []struct {
		ChannelID uint8  `json:"channel_id"`
		SurfaceID uint32 `json:"surface_id"`
		Width     uint32 `json:"width"`
		Height    uint32 `json:"height"`
	} `json:"surfaces"`
}

func (c *conn) status(m msg) statusRes {
	c.t.Helper()
	require.True(c.t, m.ok(), "status: %s", m.raw)
	var st statusRes
	m.into(c.t, "result", &st)
	return st
}
