package spiceproxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNagleWritesEachMessageAlone: a repaint's 23 small draws reach the
// proxy in one write; the proxy must send them to the client with 23
// writes, as the measured Kerbside did, while a nodelay proxy is free to
// pass them on as they came.
func TestNagleWritesEachMessageAlone(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	cl, sl := linkSteps(rng, linkSpec{clientCaps: allCaps, serverCaps: allCaps, mechanism: 1})
	_, repaint := messages(rng, miniHeader, 23, 200)
	srv := startFakeServer(t, func(c net.Conn) transcript {
		return talk(c, conversation{link: sl, stream: [][]byte{repaint}})
	})
	p, _ := startProxy(t, srv.addr(), Mode{Kind: Nagle})
	ctr := talk(dialProxy(t, p), conversation{link: cl})
	require.NoError(t, ctr.err)
	require.NoError(t, srv.transcripts(t, 1)[0].err)
	assert.True(t, bytes.HasSuffix(ctr.got, repaint), "the repaint arrived unchanged")
	cs := endedConns(t, p, 1)[0]
	assert.Equal(t, "mini header", cs.Framing)
	assert.Equal(t, int64(23), cs.Messages)
	assert.Equal(t, int64(23+3), cs.ClientWrites, "one write per message, after the link's three")
}

// TestDelayHoldsEachByte checks, on a fake clock, that every byte and
// the end of the stream arrive exactly the delay after they were read.
func TestDelayHoldsEachByte(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 30 * time.Millisecond
		inW, inR := net.Pipe()
		outW, outR := net.Pipe()
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			done <- copyDelayed(t.Context(), inR, outW, d, 1<<20, func(error) { inR.Close(); outW.Close() })
			outW.Close()
		}()
		go func() {
			inW.Write([]byte("a"))
			time.Sleep(10 * time.Millisecond)
			inW.Write([]byte("bc"))
			time.Sleep(5 * time.Millisecond)
			inW.Close()
		}()
		type arrival struct {
			at time.Duration
			b  string
		}
		var got []arrival
		buf := make([]byte, 16)
		for {
			n, err := outR.Read(buf)
			if n > 0 {
				got = append(got, arrival{time.Since(start), string(buf[:n])})
			}
			if err != nil {
				assert.Equal(t, io.EOF, err)
				got = append(got, arrival{time.Since(start), "EOF"})
				break
			}
		}
		assert.NoError(t, <-done)
		assert.Equal(t, []arrival{{30 * time.Millisecond, "a"}, {40 * time.Millisecond, "bc"}, {45 * time.Millisecond, "EOF"}}, got)
	})
}

// TestDelayBackpressure: with the buffer full the proxy stops reading,
// so the sender blocks, and bytes read late are held from when they
// were read.
func TestDelayBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = time.Second
		inW, inR := net.Pipe()
		outW, outR := net.Pipe()
		start := time.Now()
		go func() {
			copyDelayed(t.Context(), inR, outW, d, 4, func(error) { inR.Close(); outW.Close() })
			outW.Close()
		}()
		var mu sync.Mutex
		var sentAt []time.Duration
		sent := func() []time.Duration {
			mu.Lock()
			defer mu.Unlock()
			return append([]time.Duration(nil), sentAt...)
		}
		go func() {
			for _, s := range []string{"abcd", "efgh", "ijkl"} {
				inW.Write([]byte(s))
				mu.Lock()
				sentAt = append(sentAt, time.Since(start))
				mu.Unlock()
			}
			inW.Close()
		}()
		synctest.Wait()
		// "abcd" is held (it counts until written), "efgh" read and
		// waiting for room, so the write of "ijkl" cannot be taken yet.
		assert.Equal(t, []time.Duration{0, 0}, sent(), "the third write waits for room")
		var got []string
		var at []time.Duration
		buf := make([]byte, 16)
		for {
			n, err := outR.Read(buf)
			if err != nil {
				break
			}
			got = append(got, string(buf[:n]))
			at = append(at, time.Since(start))
		}
		assert.Equal(t, []string{"abcd", "efgh", "ijkl"}, got)
		assert.Equal(t, []time.Duration{d, d, 2 * d}, at, "efgh was read at 0, ijkl only once abcd left at 1s")
		assert.Equal(t, []time.Duration{0, 0, d}, sent())
	})
}

// TestDelayIsALowerBound: through a real delay proxy, a byte sent at t
// reaches the server no earlier than t+DUR, and the server's answer
// reaches the client no earlier than DUR after it left. (A lower bound
// only: a loaded machine can only make it later.)
func TestDelayIsALowerBound(t *testing.T) {
	const d = 40 * time.Millisecond
	arrived := make(chan time.Time, 8)
	srv := startFakeServer(t, func(c net.Conn) transcript {
		c.SetDeadline(time.Now().Add(peerTimeout))
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return transcript{}
			}
			now := time.Now()
			arrived <- now
			if _, err := c.Write(b); err != nil {
				return transcript{err: err}
			}
		}
	})
	p, _ := startProxy(t, srv.addr(), Mode{Kind: Delay, Delay: d})
	c := dialProxy(t, p)
	c.SetDeadline(time.Now().Add(peerTimeout))
	for i := range 5 {
		sent := time.Now()
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
		b := make([]byte, 1)
		_, err = io.ReadFull(c, b)
		require.NoError(t, err)
		back := time.Now()
		atServer := <-arrived
		assert.GreaterOrEqual(t, atServer.Sub(sent), d, "client to server")
		assert.GreaterOrEqual(t, back.Sub(atServer), d, "server to client")
		assert.Equal(t, byte(i), b[0])
	}
}

// TestCloseEndsActiveConnections: Close closes every connection, in
// every mode and with bytes still held by a delay, and returns; the
// goroutine leak check in TestMain sees that it waited for everything.
func TestCloseEndsActiveConnections(t *testing.T) {
	modes := append(testModes, Mode{Kind: Delay, Delay: MaxDelay})
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			srv := startFakeServer(t, func(c net.Conn) transcript {
				c.SetDeadline(time.Now().Add(peerTimeout))
				io.Copy(c, c)
				return transcript{}
			})
			p, err := Start(t.Context(), Config{Target: srv.addr(), Mode: mode})
			require.NoError(t, err)
			var clients []*net.TCPConn
			for range 3 {
				c := dialProxy(t, p)
				c.SetDeadline(time.Now().Add(peerTimeout))
				_, err := c.Write([]byte("REDQ and then some"))
				require.NoError(t, err)
				clients = append(clients, c)
			}
			waitFor(t, "three open connections", func() bool { return len(p.Conns()) == 3 })
			require.NoError(t, p.Close())
			require.NoError(t, p.Close(), "a second Close")
			for i, c := range clients {
				_, err := io.ReadAll(c)
				var ne net.Error
				if err != nil && assert.ErrorAs(t, err, &ne) {
					assert.False(t, ne.Timeout(), "client %d: the proxy closed it, no timeout: %v", i, err)
				}
			}
			for _, cs := range p.Conns() {
				assert.False(t, cs.Ended.IsZero(), "connection %d ended", cs.ID)
			}
		})
	}
}

// TestContextEndsTheProxy: the Start context ending closes the proxy's
// connections as Close does.
func TestContextEndsTheProxy(t *testing.T) {
	srv := startFakeServer(t, func(c net.Conn) transcript {
		c.SetDeadline(time.Now().Add(peerTimeout))
		io.Copy(c, c)
		return transcript{}
	})
	ctx, cancel := context.WithCancel(t.Context())
	p, err := Start(ctx, Config{Target: srv.addr(), Mode: Mode{Kind: NoDelay}})
	require.NoError(t, err)
	c := dialProxy(t, p)
	c.SetDeadline(time.Now().Add(peerTimeout))
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	cancel()
	_, err = io.ReadAll(c)
	if err != nil {
		var ne net.Error
		assert.False(t, assert.ErrorAs(t, err, &ne) && ne.Timeout(), "closed by the proxy, not timed out: %v", err)
	}
	assert.NoError(t, p.Close())
}

// TestUnreachableTarget: a target that refuses closes the client's
// connection and logs why.
func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	target := ln.Addr().String()
	ln.Close() // nothing listens there now
	p, logs := startProxy(t, target, Mode{Kind: Nagle})
	c := dialProxy(t, p)
	c.SetDeadline(time.Now().Add(peerTimeout))
	got, err := io.ReadAll(c)
	if err != nil {
		var ne net.Error
		assert.False(t, assert.ErrorAs(t, err, &ne) && ne.Timeout(), "closed by the proxy, not timed out: %v", err)
	}
	assert.Empty(t, got)
	cs := endedConns(t, p, 1)[0]
	assert.Contains(t, cs.Err, "dial target "+target)
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "dial the SPICE server")
}

// FuzzFollowLinkNeverChanges: whatever the two sides send, the link
// follower and the framer deliver exactly it (the streams are fed whole,
// so lock step does not matter).
func FuzzFollowLinkNeverChanges(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, spec := range []linkSpec{
		{clientCaps: allCaps, serverCaps: allCaps, mechanism: 1},
		{clientCaps: allCaps &^ bitMini, serverCaps: allCaps, mechanism: 1},
		{clientCaps: allCaps, serverCaps: allCaps, mechanism: 2},
	} {
		cl, sl := linkSteps(rng, spec)
		var client, server []byte
		for _, s := range cl {
			client = append(client, s.write...)
		}
		for _, s := range sl {
			server = append(server, s.write...)
		}
		_, msgs := messages(rng, miniHeader, 5, 50)
		f.Add(client, append(server, msgs...))
		f.Add(client[:30], server[:100])
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), []byte("HTTP/1.1 400 Bad Request\r\n"))
	f.Fuzz(func(t *testing.T, client, server []byte) {
		c := &conn{log: slog.New(slog.DiscardHandler)}
		var toServer, toClient bytes.Buffer
		cr := bufio.NewReader(bytes.NewReader(client))
		sr := bufio.NewReader(bytes.NewReader(server))
		c2s, s2c, err := c.followLink(cr, sr, &toServer, &toClient)
		require.NoError(t, err)
		require.NoError(t, c2s())
		require.NoError(t, s2c())
		if !bytes.Equal(client, toServer.Bytes()) || !bytes.Equal(server, toClient.Bytes()) {
			t.Fatalf("framing %q changed a stream: client %d -> %d bytes, server %d -> %d bytes",
				c.framing, len(client), toServer.Len(), len(server), toClient.Len())
		}
	})
}
