package control

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

// simServer is fakeryll's simulator running in this process: the stand-in
// for ryll the rest of the project uses, so the client is tested against
// the same server, and with the same knobs, as the loadtest.
type simServer struct {
	*sim.Sim
	cfg  sim.Config
	path string
	stop func() error // ends Run (as SIGINT ends ryll) and waits; safe twice
}

// startSim runs a simulator until the test ends. Its socket lives in a
// private short directory (Unix socket paths are capped near 108 bytes,
// and t.TempDir's can be longer). The defaults are the knobs' except: no
// PINGs (so only what a test asks for produces events) and key draws that
// land at once (these tests check the client, not the timing model).
func startSim(t testing.TB, mutate func(*sim.Config)) *simServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg := sim.DefaultConfig()
	cfg.SocketPath = filepath.Join(dir, "s")
	cfg.Ping = sim.PingPattern{Mode: sim.PingNone}
	cfg.DrawDelay, cfg.DisplayRefresh = 0, 0
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	srv := &simServer{Sim: s, cfg: cfg, path: cfg.SocketPath, stop: func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(hangGuard):
				runErr = errors.New("simulator did not stop (hang guard)")
			}
		})
		return runErr
	}}
	t.Cleanup(func() { assert.NoError(t, srv.stop(), "simulator Run") })
	select {
	case <-s.Ready():
	case err := <-errc:
		require.FailNowf(t, "simulator stopped before it was ready", "%v", err)
	case <-time.After(hangGuard):
		require.FailNow(t, "simulator not ready (hang guard)")
	}
	return srv
}

// startHungSim runs a simulator that hangs at once (hang-after): it
// accepts one connection and then neither reads, answers nor accepts.
func startHungSim(t testing.TB) *simServer {
	t.Helper()
	s := startSim(t, func(c *sim.Config) { c.HangAfter = time.Nanosecond })
	select {
	case <-s.Hung():
	case <-time.After(hangGuard):
		require.FailNow(t, "simulator never hung (hang guard)")
	}
	return s
}

// connect opens a client on the simulator's socket without hello. Every
// request line the client writes is recorded in the returned log, which
// fails the test if a line breaks the document's request rules.
func (s *simServer) connect(t testing.TB, opts Options) (*Client, *wireLog) {
	t.Helper()
	nc, err := net.DialTimeout("unix", s.path, hangGuard)
	require.NoError(t, err)
	w := &wireLog{Conn: nc}
	c := NewClient(w, opts)
	t.Cleanup(func() {
		_ = c.Close()
		for _, p := range w.problems() {
			t.Errorf("client wrote a bad request: %v", p)
		}
	})
	return c, w
}

// hello is connect followed by the handshake.
func (s *simServer) hello(t testing.TB, opts Options) (*Client, *wireLog) {
	t.Helper()
	c, w := s.connect(t, opts)
	_, err := c.Hello(t.Context())
	require.NoError(t, err)
	return c, w
}

// dial goes through Dial itself, with a fast busy retry.
func (s *simServer) dial(t testing.TB) *Client {
	t.Helper()
	c, err := Dial(t.Context(), s.path, Options{ClientName: "control-test", BusyRetryInterval: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// settle presses one key while c is subscribed to nothing and waits until
// its draws were produced. The session's first paint, caused by no key,
// happens before that on the simulator's single timeline, so a test that
// subscribes afterwards counts only the draws of its own keys.
func (s *simServer) settle(t testing.TB, c *Client) {
	t.Helper()
	before := s.Stats().KeyDraws + s.Stats().KeyNoDraw
	_, err := c.SendKey(t.Context(), 0x39, KeyPress)
	require.NoError(t, err)
	eventually(t, "the settling key's draws", func() bool {
		st := s.Stats()
		return st.KeyDraws+st.KeyNoDraw > before
	})
}

// wireLog records what the client writes to its connection.
type wireLog struct {
	net.Conn
	mu    sync.Mutex
	reqs  []wireRequest
	probs []error
}

// Write checks that each Write is one complete request line, as the
// client promises, and passes it on.
func (w *wireLog) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	if n < len(b) {
		return n, err // interrupted: the connection ends, nothing to check
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	line, ok := bytes.CutSuffix(b, []byte("\n"))
	if !ok || bytes.IndexByte(line, '\n') >= 0 {
		w.probs = append(w.probs, errors.New("a Write that is not exactly one line: "+string(b)))
		return n, err
	}
	req, perr := checkRequestShape(line)
	if perr != nil {
		w.probs = append(w.probs, perr)
		return n, err
	}
	w.reqs = append(w.reqs, req)
	return n, err
}

func (w *wireLog) problems() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.probs...)
}

// requests returns the requests written so far.
func (w *wireLog) requests() []wireRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]wireRequest(nil), w.reqs...)
}

// count is how many requests for method were written.
func (w *wireLog) count(method string) int {
	n := 0
	for _, r := range w.requests() {
		if r.Method == method {
			n++
		}
	}
	return n
}

// last returns the params of the last request for method.
func (w *wireLog) last(t testing.TB, method string) string {
	t.Helper()
	reqs := w.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method {
			return string(reqs[i].Params)
		}
	}
	require.FailNow(t, "no "+method+" request was written")
	return ""
}
