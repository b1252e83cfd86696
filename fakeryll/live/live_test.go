package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fakeryll/live"
	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/control/controltest"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait here; a guard against hangs, not a speed claim.
const wait = 10 * time.Second

// fakeConn is a SPICE session the test scripts: it reports what the test
// pushes and records the keys it is asked to send.
type fakeConn struct {
	events chan spice.Event
	done   chan struct{}
	once   sync.Once
	err    error

	mu       sync.Mutex
	keys     []string
	surfaces []spice.Surface
	agent    bool
	keySent  chan struct{}
}

func newFakeConn() *fakeConn {
	return &fakeConn{events: make(chan spice.Event, 64), done: make(chan struct{}), keySent: make(chan struct{}, 16)}
}

func (f *fakeConn) Events() <-chan spice.Event { return f.events }
func (f *fakeConn) Done() <-chan struct{}      { return f.done }
func (f *fakeConn) Err() error                 { return f.err }

// end closes the session as a server would, with cause.
func (f *fakeConn) end(cause error) {
	f.once.Do(func() { f.err = cause; close(f.events); close(f.done) })
}
func (f *fakeConn) Close() error { f.end(spice.ErrClosed); return nil }

func (f *fakeConn) Surfaces() []spice.Surface {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]spice.Surface(nil), f.surfaces...)
}

func (f *fakeConn) AgentConnected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agent
}

func (f *fakeConn) key(what string) error {
	f.mu.Lock()
	f.keys = append(f.keys, what)
	f.mu.Unlock()
	f.keySent <- struct{}{}
	return nil
}

func (f *fakeConn) KeyDown(_ context.Context, code uint16) error {
	w, _ := spice.WireScancode(code, false)
	return f.key("down " + hex(w))
}

func (f *fakeConn) KeyUp(_ context.Context, code uint16) error {
	w, _ := spice.WireScancode(code, true)
	return f.key("up " + hex(w))
}

func hex(v uint32) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (f *fakeConn) sentKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

// lockedLog is a log sink for the server's goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	sock   string
	log    *lockedLog
	link   chan struct{} // closed to let the dial succeed
	conn   *fakeConn
	runErr chan error
	cancel context.CancelFunc
}

// serve runs a control server over a live.Session whose dial waits for
// h.link and then returns h.conn (or dialErr).
func serve(t *testing.T, cfg spice.Config, dialErr error, opts ...func(*live.Session)) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "lv")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	h := &harness{sock: filepath.Join(dir, "s"), log: &lockedLog{}, link: make(chan struct{}), conn: newFakeConn(), runErr: make(chan error, 1)}
	logger := slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dial := func(ctx context.Context, got spice.Config) (live.Conn, error) {
		assert.Equal(t, cfg.Host, got.Host)
		assert.Equal(t, cfg.Password.Reveal(), got.Password.Reveal(), "the password reaches the SPICE link")
		select {
		case <-h.link:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if dialErr != nil {
			return nil, dialErr
		}
		return h.conn, nil
	}
	session := live.New(cfg, logger, dial)
	for _, o := range opts {
		o(session)
	}
	srv, err := sim.NewServer(sim.ServerConfig{SocketPath: h.sock, Logger: logger, ProtocolVersion: sim.Version{Major: 1, Minor: 2}},
		session)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.runErr:
		case <-time.After(wait):
			t.Error("server did not stop")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-h.runErr:
		require.FailNow(t, "server stopped before it was ready", "%v", err)
	case <-time.After(wait):
		require.FailNow(t, "server never ready")
	}
	return h
}

func (h *harness) client(t *testing.T) *control.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := control.Dial(ctx, h.sock, control.Options{ClientName: "live-test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Hello(ctx)
	require.NoError(t, err)
	return c
}

func nextEvent(t *testing.T, c *control.Client) control.Event {
	t.Helper()
	select {
	case ev := <-c.Events():
		return ev
	case <-time.After(wait):
		require.FailNow(t, "no event")
		return control.Event{}
	}
}

func TestRelaysTheRealSession(t *testing.T) {
	pw := secret.NewString("pw-the-ticket")
	h := serve(t, spice.Config{Host: "spice.test", Port: 5900, Password: pw}, nil)
	c := h.client(t)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()

	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.True(t, st.SpiceConnected, "true from the start, as ryll's")
	assert.Empty(t, st.Surfaces)
	_, err = c.Subscribe(ctx, control.EventSurfaceDrawn, control.EventLatency, control.EventAgentConnected)
	require.NoError(t, err)

	// A key pressed before the link is held, then sent in order.
	_, err = c.SendKey(ctx, 0x1E, control.KeyPress)
	require.NoError(t, err)
	_, err = c.SendKey(ctx, 0xE04B, control.KeyDown)
	require.NoError(t, err)
	assert.Empty(t, h.conn.sentKeys(), "nothing reaches a session that is not linked")
	h.conn.mu.Lock()
	h.conn.surfaces = []spice.Surface{{Channel: 0, ID: 0, Width: 720, Height: 400, Primary: true}}
	h.conn.agent = true
	h.conn.mu.Unlock()
	close(h.link)
	for range 3 {
		select {
		case <-h.conn.keySent:
		case <-time.After(wait):
			require.FailNow(t, "keys not sent", "%v", h.conn.sentKeys())
		}
	}
	assert.Equal(t, []string{"down 30", "up 158", "down 19424"}, h.conn.sentKeys(), "0x1E down/up, then 0xE04B as 0x4BE0")

	st, err = c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, []control.Surface{{ChannelID: 0, SurfaceID: 0, Width: 720, Height: 400}}, st.Surfaces)
	assert.True(t, st.AgentConnected)

	recv := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	h.conn.events <- spice.Draw{Channel: 0, Surface: 0, Box: spice.Rect{Top: 0, Left: 32, Bottom: 400, Right: 64}, Type: spice.DisplayDrawCopy, Received: recv}
	ev := nextEvent(t, c)
	require.Equal(t, control.EventSurfaceDrawn, ev.Name)
	d, err := ev.SurfaceDrawn()
	require.NoError(t, err)
	assert.Equal(t, uint64(recv.UnixMicro()), d.WallclockUS, "stamped on receipt, not on relay")
	assert.JSONEq(t, `{"top":0,"left":32,"bottom":400,"right":64}`, string(field(t, ev.Data, "box")))
	assert.JSONEq(t, `"DRAW_COPY"`, string(field(t, ev.Data, "message_type")))

	// Three PINGs: two samples, the gaps between them.
	p0 := time.Now()
	before := time.Now()
	for i, off := range []time.Duration{0, 1500 * time.Microsecond, 15 * time.Second} {
		h.conn.events <- spice.Ping{ID: uint32(i + 1), Size: 12, Received: p0.Add(off)}
	}
	var samples []float64
	for range 2 {
		ev := nextEvent(t, c)
		require.Equal(t, control.EventLatency, ev.Name)
		l, err := ev.Latency()
		require.NoError(t, err)
		samples = append(samples, l.SampleMS)
		assert.False(t, l.Wallclock().Before(before.Truncate(time.Microsecond)), "stamped after the PONG")
	}
	assert.Equal(t, []float64{1.5, 14998.5}, samples, "gaps between consecutive PINGs")

	h.conn.events <- spice.AgentConnected{Connected: false, Received: time.Now()}
	ev = nextEvent(t, c)
	require.Equal(t, control.EventAgentConnected, ev.Name)
	var a struct{ Connected *bool }
	require.NoError(t, json.Unmarshal(ev.Data, &a))
	require.NotNil(t, a.Connected, "connected is required")
	assert.False(t, *a.Connected)

	// Draws the SPICE client lost are reported as dropped, ryll's way:
	// after the next event into an empty queue, subscribed or not.
	h.conn.events <- spice.Dropped{Count: 5}
	h.conn.events <- spice.Draw{Received: time.Now()}
	assert.Equal(t, control.EventSurfaceDrawn, nextEvent(t, c).Name)
	ev = nextEvent(t, c)
	require.Equal(t, control.EventDropped, ev.Name)
	dr, err := ev.Dropped()
	require.NoError(t, err)
	assert.Equal(t, uint32(5), dr.Count)

	// The verbs the loadtest's client does not export, on a connection
	// of their own (one client at a time).
	require.NoError(t, c.Close())
	var pe *control.ProtocolError
	_, err = controltest.Call(ctx, h.sock, "paste", map[string]string{"text": "hi"})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "not_implemented", pe.Code)
	_, err = controltest.Call(ctx, h.sock, "screenshot", map[string]any{"surface_id": 7, "format": "png"})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "no_such_surface", pe.Code)
	_, err = controltest.Call(ctx, h.sock, "screenshot", map[string]string{"format": "png"})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "not_implemented", pe.Code)

	// The server closes the session: the socket goes, Run returns nil.
	h.conn.end(spice.ErrServerClosed)
	select {
	case err := <-h.runErr:
		require.NoError(t, err)
		h.runErr <- nil // for the cleanup
	case <-time.After(wait):
		require.FailNow(t, "the server outlived its SPICE session")
	}
	_, err = os.Lstat(h.sock)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, h.log.String(), "the server closed the connection")
	assert.NotContains(t, h.log.String(), pw.Reveal())
}

func TestLinkFailureEndsTheSession(t *testing.T) {
	pw := secret.NewString("pw-wrong-one")
	denied := &spice.LinkError{Code: spice.LinkErrPermissionDenied}
	h := serve(t, spice.Config{Host: "spice.test", Port: 5900, Password: pw}, denied)
	close(h.link)
	select {
	case err := <-h.runErr:
		require.NoError(t, err, "ryll exits 0 when a headless connection fails")
		h.runErr <- nil
	case <-time.After(wait):
		require.FailNow(t, "a failed link did not end the server")
	}
	_, err := os.Lstat(h.sock)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	log := h.log.String()
	assert.Contains(t, log, "SPICE connection failed")
	assert.Contains(t, log, "PERMISSION_DENIED")
	assert.NotContains(t, log, pw.Reveal())
}

func TestALinkFailureClosesTheClientAndSendsNoKey(t *testing.T) {
	h := serve(t, spice.Config{Host: "spice.test", Port: 5900}, errors.New("no route"))
	c := h.client(t)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	_, err := c.SendKey(ctx, 0x1E, control.KeyDown)
	require.NoError(t, err, "queued while the link is under way")
	close(h.link)
	select {
	case <-c.Done():
	case <-time.After(wait):
		require.FailNow(t, "the control connection outlived the session")
	}
	assert.Empty(t, h.conn.sentKeys())
}

func field(t *testing.T, data json.RawMessage, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &m))
	v, ok := m[name]
	require.True(t, ok, "no %s in %s", name, data)
	return v
}

// TestSurfaceDrawnCarriesRect: each surface_drawn carries the draw's box
// as rect [l,t,r,b], as Kerbside's patched ryll does, and the control
// client reads it; OmitRect (FAKERYLL_NO_RECT=1) leaves it out, as ryll
// 1.2 does.
func TestSurfaceDrawnCarriesRect(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []func(*live.Session)
		want *control.Rect
	}{
		{"by default", nil, &control.Rect{Left: 32, Top: 0, Right: 64, Bottom: 48}},
		{"FAKERYLL_NO_RECT", []func(*live.Session){(*live.Session).OmitRect}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := serve(t, spice.Config{Host: "spice.test", Port: 5900}, nil, tc.opts...)
			c := h.client(t)
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			_, err := c.Subscribe(ctx, control.EventSurfaceDrawn)
			require.NoError(t, err)
			close(h.link)
			h.conn.events <- spice.Draw{Box: spice.Rect{Top: 0, Left: 32, Bottom: 48, Right: 64}, Type: spice.DisplayDrawCopy, Received: time.Now()}
			ev := nextEvent(t, c)
			require.Equal(t, control.EventSurfaceDrawn, ev.Name)
			d, err := ev.SurfaceDrawn()
			require.NoError(t, err)
			assert.Equal(t, tc.want, d.Rect)
		})
	}
}

func TestParseNoRect(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "1": true, " 1 ": true} {
		got, err := live.ParseNoRect(v)
		require.NoError(t, err, v)
		assert.Equal(t, want, got, v)
	}
	for _, bad := range []string{"yes", "2", "true"} {
		_, err := live.ParseNoRect(bad)
		assert.ErrorContains(t, err, "FAKERYLL_NO_RECT", bad)
	}
}
