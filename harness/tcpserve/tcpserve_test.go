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
	srv   *Server[*echoConn]
	// heldInEnded records whether Ended ran with mu held.
	heldInEnded []bool
}

// start serves on a free loopback port; hold, if set, is every
// connection's hold channel. The test's cleanup closes the server.
func start(t *testing.T, ctx context.Context, timeout time.Duration, hold chan struct{}) *owner {
	t.Helper()
	o := &owner{}
	o.srv = New(Config[*echoConn]{
		Name:   "test",
		Closed: errTestClosed,
		New: func(ctx context.Context, id uint64, nc *net.TCPConn) *echoConn {
			return &echoConn{id: id, nc: nc, ctx: ctx, hold: hold}
		},
		Ended: func(c *echoConn) {
			o.heldInEnded = append(o.heldInEnded, !o.mu.TryLock())
			o.ended = append(o.ended, c.id)
		},
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

	err := o.srv.Close()
	require.Error(t, err, "connections that ignore Abort make Close give up")
	assert.Equal(t, "2 connections did not end within 50ms", err.Error())
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
	srv := New(Config[*echoConn]{
		Name: "test",
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
	srv := New(Config[*echoConn]{Name: "test", New: func(context.Context, uint64, *net.TCPConn) *echoConn { return nil }})
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
