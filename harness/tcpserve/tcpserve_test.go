package tcpserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// errTestClosed is the test servers' Config.Closed.
var errTestClosed = errors.New("test server closed")

// echoConn echoes what its client sends. With hold set, Run waits for
// hold to close before anything else and ignores Abort meanwhile: a
// connection that will not end.
type echoConn struct {
	id   uint64
	nc   *net.TCPConn
	ctx  context.Context
	hold chan struct{}

	mu      sync.Mutex
	aborted error
}

func (c *echoConn) Run() {
	if c.hold != nil {
		<-c.hold
	}
	_, _ = io.Copy(c.nc, c.nc)
	_ = c.nc.Close()
}

func (c *echoConn) Abort(err error) {
	c.mu.Lock()
	if c.aborted == nil {
		c.aborted = err
	}
	c.mu.Unlock()
	_ = c.nc.Close()
}

// echoStats is what the test servers report of a connection.
type echoStats struct {
	ID      uint64
	Aborted bool
}

func (c *echoConn) stats() echoStats { return echoStats{ID: c.id, Aborted: c.abortErr() != nil} }

func (c *echoConn) abortErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborted
}

// owner is what link and spiceproxy are to a Server: it keeps the ended
// connections under the mutex it shares with the Server.
type owner struct {
	mu    sync.Mutex
	ended []uint64
	srv   *Server[*echoConn, echoStats]
	// heldInEnded records whether Ended ran with mu held.
	heldInEnded []bool
}

// start serves on a free loopback port; hold, if set, is every
// connection's hold channel. The test's cleanup closes the server.
func start(t *testing.T, ctx context.Context, timeout time.Duration, hold chan struct{}) *owner {
	t.Helper()
	return startKeep(t, ctx, timeout, hold, 0)
}

// startKeep is start with Config.Keep set.
func startKeep(t *testing.T, ctx context.Context, timeout time.Duration, hold chan struct{}, keep int) *owner {
	t.Helper()
	o := &owner{}
	o.srv = New(Config[*echoConn, echoStats]{
		Name:   "test",
		Closed: errTestClosed,
		New: func(ctx context.Context, id uint64, nc *net.TCPConn) *echoConn {
			return &echoConn{id: id, nc: nc, ctx: ctx, hold: hold}
		},
		Stats: (*echoConn).stats,
		Ended: func(s echoStats) {
			held := !o.mu.TryLock()
			if !held {
				o.mu.Unlock()
			}
			o.heldInEnded = append(o.heldInEnded, held)
			o.ended = append(o.ended, s.ID)
		},
		Keep:         keep,
		Mu:           &o.mu,
		CloseTimeout: timeout,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o.srv.Serve(ctx, ln)
	t.Cleanup(func() { _ = o.srv.Close() })
	return o
}

func (o *owner) endedIDs() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]uint64(nil), o.ended...)
}

// dial connects to the server; the test's cleanup closes the client.
func dial(t *testing.T, o *owner) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", o.srv.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds or 10 s pass (a hang guard, not a
// timed assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting for "+what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// roundTrip sends a line and reads the echo back.
func roundTrip(t *testing.T, c net.Conn, line string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := io.WriteString(c, line+"\n")
	require.NoError(t, err)
	got, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, line+"\n", got)
}

func TestAcceptRunsOneConnPerClient(t *testing.T) {
	o := start(t, t.Context(), 0, nil)
	a, b := dial(t, o), dial(t, o)
	roundTrip(t, a, "first")
	roundTrip(t, b, "second")
	open := o.srv.Open()
	require.Len(t, open, 2)
	assert.Equal(t, []uint64{1, 2}, []uint64{open[0].id, open[1].id}, "ids count from 1, in accept order")
	assert.Same(t, o.srv.Context(), open[0].ctx, "New gets the server's context")

	require.NoError(t, a.Close())
	waitFor(t, "the first connection to end", func() bool { return len(o.endedIDs()) == 1 })
	assert.Equal(t, []uint64{1}, o.endedIDs())
	open = o.srv.Open()
	require.Len(t, open, 1, "an ended connection leaves the open set")
	assert.Equal(t, uint64(2), open[0].id)
	o.mu.Lock()
	assert.Equal(t, []bool{true}, o.heldInEnded, "Ended runs with the owner's mutex held")
	assert.Len(t, o.srv.OpenLocked(), 1, "OpenLocked reads the set under the owner's lock")
	o.mu.Unlock()

	require.NoError(t, o.srv.Close())
	assert.Equal(t, []uint64{1, 2}, o.endedIDs(), "Close waited for the second connection")
	assert.Empty(t, o.srv.Open())
}

func TestConnsKeepsTheLastEnded(t *testing.T) {
	o := startKeep(t, t.Context(), 0, nil, 2)
	var clients []net.Conn
	for range 4 {
		c := dial(t, o)
		roundTrip(t, c, "x") // accepted in this order
		clients = append(clients, c)
	}
	// End them out of accept order: 3, 1, 2; 4 stays open.
	for i, idx := range []int{2, 0, 1} {
		require.NoError(t, clients[idx].Close())
		waitFor(t, "a connection to end", func() bool { return len(o.endedIDs()) == i+1 })
	}
	assert.Equal(t, []uint64{3, 1, 2}, o.endedIDs(), "Ended saw every one, in the order they ended")
	assert.Equal(t, []echoStats{{ID: 1}, {ID: 2}, {ID: 4}}, o.srv.Conns(),
		"Conns: the last two ended and the open one, in accept order")
	require.NoError(t, o.srv.Close())
	assert.Equal(t, []echoStats{{ID: 2}, {ID: 4, Aborted: true}}, o.srv.Conns(), "the open one was aborted and ended")
}

func TestCloseAbortsOpenConns(t *testing.T) {
	o := start(t, t.Context(), 0, nil)
	c := dial(t, o)
	roundTrip(t, c, "hello")
	conn := o.srv.Open()[0]

	require.NoError(t, o.srv.Close())
	err := conn.abortErr()
	require.Error(t, err, "Close aborts the open connection")
	require.ErrorIs(t, err, errTestClosed)
	assert.Equal(t, "test shutting down: test server closed", err.Error())
	assert.ErrorIs(t, context.Cause(o.srv.Context()), errTestClosed)

	// The client sees its connection closed, and no new one is served.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
	_, err = net.DialTimeout("tcp", o.srv.Addr().String(), 5*time.Second)
	assert.Error(t, err, "the listener is closed")
	assert.NoError(t, o.srv.Close(), "a second Close returns the same nil")
}

func TestCloseIsBounded(t *testing.T) {
	hold := make(chan struct{})
	o := start(t, t.Context(), 50*time.Millisecond, hold)
	dial(t, o)
	dial(t, o)
	waitFor(t, "two open connections", func() bool { return len(o.srv.Open()) == 2 })

	closed := make(chan error, 1)
	go func() { closed <- o.srv.Close() }()
	var err error
	select {
	case err = <-closed:
	case <-time.After(10 * time.Second): // a hang guard, 200 times the bound
		close(hold)
		require.FailNow(t, "Close did not return: its wait is not bounded")
	}
	require.Error(t, err, "connections that ignore Abort make Close give up")
	assert.Equal(t, "close test: 2 connections did not end within 50ms", err.Error())
	assert.Equal(t, err, o.srv.Close(), "a second Close returns the same error")
	for _, c := range o.srv.Open() {
		assert.ErrorIs(t, c.abortErr(), errTestClosed, "each was asked to end")
	}

	// Let them go, so that no goroutine outlives the test.
	close(hold)
	waitFor(t, "the held connections to end", func() bool { return len(o.endedIDs()) == 2 })
}

func TestContextEndShutsDown(t *testing.T) {
	cause := errors.New("the run was interrupted")
	ctx, cancel := context.WithCancelCause(t.Context())
	o := start(t, ctx, 0, nil)
	c := dial(t, o)
	roundTrip(t, c, "hello")
	conn := o.srv.Open()[0]

	cancel(cause)
	waitFor(t, "the connection to end", func() bool { return len(o.endedIDs()) == 1 })
	err := conn.abortErr()
	require.ErrorIs(t, err, cause, "the Serve context's cause reaches the connections")
	assert.Equal(t, "test shutting down: the run was interrupted", err.Error())
	assert.ErrorIs(t, context.Cause(o.srv.Context()), cause)
	assert.NoError(t, o.srv.Close(), "Close after a shutdown still waits, and finds nothing left")
	assert.ErrorIs(t, context.Cause(o.srv.Context()), cause, "Close does not replace the first cause")
}

// flakyListener fails its first Accepts, as a listener out of file
// descriptors would.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, errors.New("accept4: too many open files")
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptErrorsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(Config[*echoConn, echoStats]{
		Name:  "test",
		Stats: (*echoConn).stats,
		New: func(ctx context.Context, id uint64, nc *net.TCPConn) *echoConn {
			return &echoConn{id: id, nc: nc, ctx: ctx}
		},
	})
	srv.Serve(t.Context(), &flakyListener{Listener: ln, fails: 3})
	t.Cleanup(func() { _ = srv.Close() })
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	roundTrip(t, c, "still serving after three accept errors")
	require.NoError(t, srv.Close())
	assert.ErrorIs(t, context.Cause(srv.Context()), net.ErrClosed, "a nil Config.Closed is net.ErrClosed")
}

func TestCloseBeforeServe(t *testing.T) {
	srv := New(Config[*echoConn, echoStats]{Name: "test",
		New:   func(context.Context, uint64, *net.TCPConn) *echoConn { return nil },
		Stats: (*echoConn).stats})
	assert.Nil(t, srv.Addr())
	require.NoError(t, srv.Close())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Serve(t.Context(), ln)
	_, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	assert.Error(t, err, "a closed server closes the listener it is given")
}

// TestNoGoroutineLeft checks, beyond TestMain's check, that a closed
// server left nothing running while the test's own goroutines are known.
func TestNoGoroutineLeft(t *testing.T) {
	before := goleak.IgnoreCurrent()
	o := start(t, t.Context(), 0, nil)
	for range 5 {
		roundTrip(t, dial(t, o), "x")
	}
	require.NoError(t, o.srv.Close())
	goleak.VerifyNone(t, before)
}
