package link

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run the link over real loopback sockets. They assert only
// relations a busy machine cannot break: a delay of D adds at least D, a
// rate r takes at least N/r for N bytes. How close the link comes is the
// benchmarks' business.

// peerTimeout bounds every test peer's whole conversation.
const peerTimeout = 20 * time.Second

// server is a TCP server for the link to dial: handle runs per
// connection, and Close waits for them.
type server struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startServer(t *testing.T, handle func(c *net.TCPConn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &server{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(peerTimeout))
				handle(c.(*net.TCPConn))
			})
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// echo copies what it reads back, and half-closes after the client did.
func echo(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		_ = c.CloseWrite()
	}
}

func startLink(t *testing.T, target string, p Profile) *Link {
	t.Helper()
	l, err := Start(t.Context(), Config{Target: target, Profile: p, Seed: 1})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

func dial(t *testing.T, l *Link) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(peerTimeout)))
	return c.(*net.TCPConn)
}

// waitFor polls cond until it holds or the peer timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(peerTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDelayIsALowerBoundBothWays: a byte sent at t reaches the server no
// earlier than t+RTT/2, and the server's answer reaches the client no
// earlier than RTT/2 after it left.
func TestDelayIsALowerBoundBothWays(t *testing.T) {
	const rtt = 60 * time.Millisecond
	arrived := make(chan time.Time, 8)
	srv := startServer(t, func(c *net.TCPConn) {
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			arrived <- time.Now()
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	})
	l := startLink(t, srv.addr(), Profile{RTT: rtt})
	c := dial(t, l)
	for i := range 5 {
		sent := time.Now()
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
		b := make([]byte, 1)
		_, err = io.ReadFull(c, b)
		require.NoError(t, err)
		back := time.Now()
		atServer := <-arrived
		assert.GreaterOrEqual(t, atServer.Sub(sent), rtt/2, "client to server")
		assert.GreaterOrEqual(t, back.Sub(atServer), rtt/2, "server to client")
		assert.GreaterOrEqual(t, back.Sub(sent), rtt, "the round trip")
		assert.Equal(t, byte(i), b[0])
	}
}

// TestRateIsALowerBoundBothWays: N bytes at rate r take at least N*8/r
// from the moment they were written to the last one's arrival, in each
// direction, and arrive intact.
func TestRateIsALowerBoundBothWays(t *testing.T) {
	const n, rate = 24 << 10, 1_000_000 // 197 ms at 1 Mbit/s
	minTime := time.Duration(n*8) * time.Second / rate
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	type got struct {
		at   time.Time // the last byte arrived
		sent time.Time // the server began to write them back
		b    []byte
		err  error
	}
	atServer := make(chan got, 1)
	srv := startServer(t, func(c *net.TCPConn) {
		b := make([]byte, n)
		_, err := io.ReadFull(c, b)
		r := got{at: time.Now(), b: b, err: err, sent: time.Now()}
		atServer <- r
		if err != nil {
			return
		}
		// Now the other way: the same bytes back.
		_, _ = c.Write(b)
		_ = c.CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
	l := startLink(t, srv.addr(), Profile{Rate: rate, Queue: 64 << 10})
	c := dial(t, l)
	sent := time.Now()
	_, err := c.Write(payload)
	require.NoError(t, err)
	up := <-atServer
	require.NoError(t, up.err)
	assert.Equal(t, payload, up.b, "client to server: every byte, in order")
	assert.GreaterOrEqual(t, up.at.Sub(sent), minTime, "client to server: no faster than the rate")
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, payload, b, "server to client: every byte, in order")
	assert.GreaterOrEqual(t, time.Since(up.sent), minTime, "server to client: no faster than the rate")
	require.NoError(t, c.CloseWrite())
	waitFor(t, "the connection to end", func() bool { cs := l.Conns(); return len(cs) == 1 && !cs[0].Open })
	st := l.Stats()
	assert.Equal(t, int64(n), st.ToServer.Bytes)
	assert.Equal(t, int64(n), st.ToClient.Bytes)
	assert.Positive(t, st.ToClient.QueueHighWater)
	assert.LessOrEqual(t, st.ToClient.QueueHighWater, int64(64<<10))
	assert.Positive(t, st.ToClient.QueuedS)
	assert.Equal(t, map[string]int{EndClosed: 1}, st.Ends, "%+v", l.Conns())
}

// TestHalfCloseCrossesTheLink: the client's end of stream reaches the
// server (after the delay), the server still answers, and its end of
// stream reaches the client; nothing is an error.
func TestHalfCloseCrossesTheLink(t *testing.T) {
	const rtt = 40 * time.Millisecond
	type result struct {
		got []byte
		eof time.Time
		err error
	}
	res := make(chan result, 1)
	srv := startServer(t, func(c *net.TCPConn) {
		got, err := io.ReadAll(c) // to the client's half-close
		r := result{got: got, eof: time.Now(), err: err}
		if err == nil {
			_, r.err = c.Write([]byte("bye"))
		}
		res <- r
	})
	l := startLink(t, srv.addr(), Profile{RTT: rtt})
	c := dial(t, l)
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	closed := time.Now()
	require.NoError(t, c.CloseWrite())
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "hello", string(r.got))
	assert.GreaterOrEqual(t, r.eof.Sub(closed), rtt/2, "the end of stream was delayed like a byte")
	back, err := io.ReadAll(c)
	require.NoError(t, err, "the server's end of stream reached the client")
	assert.Equal(t, "bye", string(back))
	waitFor(t, "the connection to end", func() bool { cs := l.Conns(); return len(cs) == 1 && !cs[0].Open })
	cs := l.Conns()[0]
	assert.Empty(t, cs.Err, "both sides closed: no error")
	assert.Equal(t, EndClosed, cs.End)
	assert.Equal(t, int64(5), cs.ToServer.Bytes)
	assert.Equal(t, int64(3), cs.ToClient.Bytes)
}

// TestManyConnections: SPICE opens a connection per channel; each
// crosses its own link, at once, and keeps its own bytes.
func TestManyConnections(t *testing.T) {
	const conns, size = 24, 8 << 10
	srv := startServer(t, echo)
	l := startLink(t, srv.addr(), Profile{RTT: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Rate: 50_000_000, Queue: 64 << 10})
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c := dial(t, l)
		wg.Go(func() {
			payload := bytes.Repeat([]byte{byte(i)}, size)
			go func() {
				_, _ = c.Write(payload)
				_ = c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			switch {
			case err != nil:
				errs <- fmt.Errorf("conn %d: %w", i, err)
			case !bytes.Equal(got, payload):
				errs <- fmt.Errorf("conn %d: got %d bytes back, not its own %d", i, len(got), size)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "every connection to end", func() bool {
		st := l.Stats()
		cs := l.Conns()
		if st.Connections != conns || len(cs) != conns {
			return false
		}
		// Every one ended: they end in any order, not by id.
		return !slices.ContainsFunc(cs, func(c ConnStats) bool { return c.Open })
	})
	st := l.Stats()
	assert.Equal(t, int64(conns*size), st.ToServer.Bytes)
	assert.Equal(t, int64(conns*size), st.ToClient.Bytes)
	assert.Equal(t, map[string]int{EndClosed: conns}, st.Ends)
	for _, cs := range l.Conns() {
		assert.False(t, cs.Open)
		assert.Equal(t, int64(size), cs.ToClient.Bytes, "conn %d", cs.ID)
	}
}

// TestCloseEndsActiveConnections: Close ends every connection, even with
// bytes held on a long link, and returns; TestMain's leak check sees
// that it waited for every goroutine.
func TestCloseEndsActiveConnections(t *testing.T) {
	srv := startServer(t, echo)
	l, err := Start(t.Context(), Config{Target: srv.addr(), Profile: Profile{RTT: 2 * MaxRTT / 2, Rate: 1_000_000, Queue: 4096}})
	require.NoError(t, err)
	var clients []*net.TCPConn
	for range 3 {
		c := dial(t, l)
		_, err := c.Write(bytes.Repeat([]byte("x"), 32<<10))
		require.NoError(t, err)
		clients = append(clients, c)
	}
	waitFor(t, "three connections", func() bool { return len(l.Conns()) == 3 })
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "a second Close")
	for i, c := range clients {
		_, err := io.ReadAll(c)
		var ne net.Error
		if err != nil && assert.ErrorAs(t, err, &ne) {
			assert.False(t, ne.Timeout(), "client %d: the link closed it, no timeout: %v", i, err)
		}
	}
	st := l.Stats()
	assert.Equal(t, 3, st.Connections)
	assert.Equal(t, map[string]int{EndLinkClosed: 3}, st.Ends, "closed under them")
	for _, cs := range l.Conns() {
		assert.False(t, cs.Open)
		assert.Contains(t, cs.Err, ErrClosed.Error())
	}
}

// TestContextEndsTheLink: the Start context ending closes the link's
// connections as Close does.
func TestContextEndsTheLink(t *testing.T) {
	srv := startServer(t, echo)
	ctx, cancel := context.WithCancel(t.Context())
	l, err := Start(ctx, Config{Target: srv.addr(), Profile: Profile{RTT: 10 * time.Millisecond}})
	require.NoError(t, err)
	c := dial(t, l)
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	cancel()
	_, err = io.ReadAll(c)
	if err != nil {
		var ne net.Error
		assert.False(t, assert.ErrorAs(t, err, &ne) && ne.Timeout(), "closed by the link, not timed out: %v", err)
	}
	assert.NoError(t, l.Close())
	_, err = net.DialTimeout("tcp", l.Addr().String(), time.Second)
	assert.Error(t, err, "the link no longer listens")
}

// TestUnreachableTarget: a target that refuses closes the client's
// connection, and the link says why.
func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	target := ln.Addr().String()
	ln.Close() // nothing listens there now
	l := startLink(t, target, Profile{})
	c := dial(t, l)
	got, err := io.ReadAll(c)
	if err != nil {
		var ne net.Error
		assert.False(t, assert.ErrorAs(t, err, &ne) && ne.Timeout(), "closed by the link, not timed out: %v", err)
	}
	assert.Empty(t, got)
	waitFor(t, "the connection to end", func() bool { cs := l.Conns(); return len(cs) == 1 && !cs[0].Open })
	assert.Contains(t, l.Conns()[0].Err, "dial target "+target)
	assert.Equal(t, map[string]int{EndDialFailed: 1}, l.Stats().Ends)
}

func TestStartRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		says string
	}{
		{"no target", Config{}, "no target"},
		{"bad target", Config{Target: "localhost"}, "target"},
		{"two ports", Config{Target: "127.0.0.1:5900:5901"}, "one per port"},
		{"bad profile", Config{Target: "127.0.0.1:5900", Profile: Profile{Rate: 1_000_000}}, "queue 0B is outside"},
		{"bad listen", Config{Listen: "127.0.0.1:http-x", Target: "127.0.0.1:5900"}, "listen on"},
		{"negative dial timeout", Config{Target: "127.0.0.1:5900", DialTimeout: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Start(t.Context(), tc.cfg)
			if l != nil {
				l.Close()
			}
			if assert.Error(t, err) {
				assert.Contains(t, err.Error(), tc.says)
			}
		})
	}
}

// TestStatsJSON: the sidecar's field names.
func TestStatsJSON(t *testing.T) {
	b, err := json.Marshal(Stats{Profile: Profile{Name: "lan"}})
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	for _, k := range []string{"profile", "connections", "ends", "to_server", "to_client"} {
		assert.Contains(t, got, k)
	}
	dir := got["to_client"].(map[string]any)
	var keys []string
	for k := range dir {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"bytes", "reads", "writes", "queue_high_water_bytes", "queued_s", "queue_wait_max_s", "blocked_s"}, keys)
}

// TestBackPressureReachesTheSender: behind a slow link a sender's writes
// block over real sockets too: what it manages to write in a second is
// the link's queue and hold plus the kernel's buffers, nowhere near what
// it tried. (Logged: how much the kernel adds, with the link's socket
// options and with the kernel's own for loopback.)
func TestBackPressureReachesTheSender(t *testing.T) {
	const tried = 16 << 20
	for _, tc := range []struct {
		name     string
		buf, mss int
	}{{"the link's read buffer and MSS", 0, 0}, {"the kernel's read buffer and loopback's MSS", -1, -1}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, func(c *net.TCPConn) { _, _ = io.Copy(io.Discard, c) })
			p := Profile{RTT: 20 * time.Millisecond, Rate: 1_000_000, Queue: 16 << 10}
			l, err := Start(t.Context(), Config{Target: srv.addr(), Profile: p, ReadBuffer: tc.buf, MSS: tc.mss})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, l.Close()) })
			c := dial(t, l)
			// The sender writes until the link says its reads block behind
			// its full queue. On a busy host the sender may be scheduled
			// too little in any one second to fill the queue, so it keeps
			// trying (in short writes, each bounded) instead of giving up
			// after one.
			var written atomic.Int64
			stop := make(chan struct{})
			wrote := make(chan error, 1)
			go func() {
				buf := make([]byte, 64<<10)
				for {
					select {
					case <-stop:
						wrote <- nil
						return
					default:
					}
					if err := c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
						wrote <- err
						return
					}
					n, err := c.Write(buf)
					written.Add(int64(n))
					if ne := (net.Error)(nil); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
						wrote <- err
						return
					}
					if written.Load() >= tried {
						wrote <- nil
						return
					}
				}
			}()
			var st Stats
			blocked := assert.Eventually(t, func() bool { st = l.Stats(); return st.ToServer.BlockedS > 0 }, 30*time.Second, 10*time.Millisecond,
				"the link's reads block behind its full queue")
			close(stop)
			require.NoError(t, <-wrote, "the sender's writes fail only by their deadline")
			n := int(written.Load())
			if !blocked {
				return
			}
			// Held back: the link delivers 125 KB/s, so in the at most 30 s
			// it took to block, a sender that was not held back would have
			// written all it tried.
			assert.Less(t, n, tried/2, "the sender was held back")
			assert.LessOrEqual(t, st.ToServer.QueueHighWater, p.Queue)
			t.Logf("%s: the sender wrote %d KiB before the link blocked; the link delivered %d KiB, holds at most %d KiB (queue %d KiB); the rest is in kernel buffers",
				tc.name, n>>10, st.ToServer.Bytes>>10, newShaper(p, 0).maxHeld>>10, p.Queue>>10)
		})
	}
}
