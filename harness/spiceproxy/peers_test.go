package spiceproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fakes here stand in for both ends of a SPICE channel: a server
// and a client that speak the link exchange of spice-protocol's
// protocol.h and then stream data messages. They record every byte they
// send and receive, so a test can check that the proxy delivered each
// stream unchanged.

// peerTimeout bounds every fake peer's whole conversation.
const peerTimeout = 20 * time.Second

// step is one lock-step move of the link phase: write these bytes, or
// read this many.
type step struct {
	write []byte
	read  int
}

// conversation is what one side does: the lock-step link, then the
// stream written as these writes (then a half-close) while everything
// the other side sends is read until its end.
type conversation struct {
	link   []step
	stream [][]byte
	expect int // the bytes this side expects to read after the link (a size hint)
}

func streamLen(stream [][]byte) int {
	n := 0
	for _, w := range stream {
		n += len(w)
	}
	return n
}

// transcript is what a peer sent and received.
type transcript struct {
	sent, got []byte
	err       error
}

// talk runs a conversation on conn.
func talk(conn net.Conn, cv conversation) transcript {
	var tr transcript
	_ = conn.SetDeadline(time.Now().Add(peerTimeout))
	for i, s := range cv.link {
		if s.write != nil {
			if _, err := conn.Write(s.write); err != nil {
				tr.err = fmt.Errorf("link step %d: write: %w", i, err)
				return tr
			}
			tr.sent = append(tr.sent, s.write...)
		}
		if s.read > 0 {
			b := make([]byte, s.read)
			n, err := io.ReadFull(conn, b)
			tr.got = append(tr.got, b[:n]...)
			if err != nil {
				tr.err = fmt.Errorf("link step %d: read %d bytes: %w", i, s.read, err)
				return tr
			}
		}
	}
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		for _, w := range cv.stream {
			if _, err := conn.Write(w); err != nil {
				werr = fmt.Errorf("stream write: %w", err)
				return
			}
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			werr = cw.CloseWrite()
		}
	})
	// Under -race every byte a test copies into fresh memory costs the
	// detector's shadow pages, so the buffers are sized once, not grown.
	got := bytes.NewBuffer(append(make([]byte, 0, len(tr.got)+cv.expect+bytes.MinRead), tr.got...))
	_, rerr := got.ReadFrom(conn)
	wg.Wait()
	sent := make([]byte, 0, len(tr.sent)+streamLen(cv.stream))
	tr.sent = append(sent, tr.sent...)
	for _, w := range cv.stream {
		tr.sent = append(tr.sent, w...)
	}
	tr.got = got.Bytes()
	tr.err = errors.Join(werr, rerr)
	return tr
}

// linkSpec says what a fake link exchange offers.
type linkSpec struct {
	clientCaps, serverCaps uint32 // common caps words
	replyError             uint32 // SpiceLinkReply.error
	mechanism              uint32 // sent when both offer AUTH_SELECTION
	result                 uint32 // the link result after the ticket
}

const (
	bitAuthSelection = 1 << capAuthSelection
	bitAuthSpice     = 1 << 1
	bitMini          = 1 << capMiniHeader
	allCaps          = bitAuthSelection | bitAuthSpice | bitMini
)

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// linkMess is a SpiceLinkHeader and SpiceLinkMess for a display channel.
func linkMess(caps uint32) []byte {
	b := le32(spiceMagic)
	b = binary.LittleEndian.AppendUint32(b, 2)
	b = binary.LittleEndian.AppendUint32(b, 2)
	b = binary.LittleEndian.AppendUint32(b, linkMessSize+4)
	b = binary.LittleEndian.AppendUint32(b, 0x1234) // connection_id
	b = append(b, 2, 0)                             // display channel 0
	b = binary.LittleEndian.AppendUint32(b, 1)      // one common caps word
	b = binary.LittleEndian.AppendUint32(b, 0)      // no channel caps
	b = binary.LittleEndian.AppendUint32(b, linkMessSize)
	return binary.LittleEndian.AppendUint32(b, caps)
}

// linkReply is a SpiceLinkHeader and SpiceLinkReply; with an error the
// body is the error alone, as spice-server sends it.
func linkReply(rng *rand.Rand, errCode, caps uint32) []byte {
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, errCode)
	if errCode == 0 {
		key := make([]byte, pubKeySize)
		fill(rng, key)
		body = append(body, key...)
		body = binary.LittleEndian.AppendUint32(body, 1)
		body = binary.LittleEndian.AppendUint32(body, 0)
		body = binary.LittleEndian.AppendUint32(body, linkReplySize)
		body = binary.LittleEndian.AppendUint32(body, caps)
	}
	b := le32(spiceMagic)
	b = binary.LittleEndian.AppendUint32(b, 2)
	b = binary.LittleEndian.AppendUint32(b, 2)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func fill(rng *rand.Rand, b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, rng.Uint64())
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

func random(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	fill(rng, b)
	return b
}

// linkSteps is both sides' lock-step link for spec.
func linkSteps(rng *rand.Rand, spec linkSpec) (client, server []step) {
	mess := linkMess(spec.clientCaps)
	reply := linkReply(rng, spec.replyError, spec.serverCaps)
	client = []step{{write: mess, read: len(reply)}}
	server = []step{{read: len(mess), write: reply}}
	if spec.replyError != 0 {
		return client, server
	}
	auth := spec.clientCaps&spec.serverCaps&bitAuthSelection != 0
	ticket := random(rng, 128)
	if auth {
		client = append(client, step{write: le32(spec.mechanism)})
		server = append(server, step{read: 4})
	}
	client = append(client, step{write: ticket, read: 4})
	server = append(server, step{read: 128, write: le32(spec.result)})
	return client, server
}

// messages is n random server messages with the given header, and the
// whole of them.
func messages(rng *rand.Rand, h header, n, maxBody int) ([][]byte, []byte) {
	all := make([]byte, 0, n*(maxBody/2+16))
	msgs := make([][]byte, n)
	for i := range msgs {
		size := rng.IntN(maxBody + 1)
		var m []byte
		if h == fullHeader {
			m = binary.LittleEndian.AppendUint64(m, uint64(i+1))
		}
		m = binary.LittleEndian.AppendUint16(m, uint16(rng.IntN(400)))
		m = binary.LittleEndian.AppendUint32(m, uint32(size))
		if h == fullHeader {
			m = binary.LittleEndian.AppendUint32(m, 0)
		}
		m = append(m, random(rng, size)...)
		msgs[i] = m
		all = append(all, m...)
	}
	return msgs, all
}

// chop cuts b into writes of random sizes, 1 to max bytes, so messages
// both share writes and span them.
func chop(rng *rand.Rand, b []byte, max int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(len(b), 1+rng.IntN(max))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// fakeServer accepts connections and runs serve on each, collecting
// the transcripts.
type fakeServer struct {
	ln    net.Listener
	serve func(conn net.Conn) transcript
	wg    sync.WaitGroup
	mu    sync.Mutex
	trs   []transcript
}

func startFakeServer(t testing.TB, serve func(conn net.Conn) transcript) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &fakeServer{ln: ln, serve: serve}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				tr := s.serve(c)
				s.mu.Lock()
				s.trs = append(s.trs, tr)
				s.mu.Unlock()
			})
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) close() {
	s.ln.Close()
	s.wg.Wait()
}

// transcripts waits for the server's n conversations.
func (s *fakeServer) transcripts(t testing.TB, n int) []transcript {
	t.Helper()
	deadline := time.Now().Add(peerTimeout)
	for {
		s.mu.Lock()
		got := append([]transcript(nil), s.trs...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake server finished %d of %d conversations within %s", len(got), n, peerTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startProxy starts a proxy to target, closed at cleanup, logging into
// the returned buffer.
func startProxy(t testing.TB, target string, mode Mode) (*Proxy, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	p, err := Start(t.Context(), Config{Target: target, Mode: mode,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p, logs
}

func dialProxy(t testing.TB, p *Proxy) *net.TCPConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or the wait times out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(peerTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", peerTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connStats waits until the proxy has ended n connections and returns
// them.
func endedConns(t testing.TB, p *Proxy, n int) []ConnStats {
	t.Helper()
	var ended []ConnStats
	waitFor(t, fmt.Sprintf("%d ended connections", n), func() bool {
		ended = ended[:0]
		for _, c := range p.Conns() {
			if !c.Ended.IsZero() {
				ended = append(ended, c)
			}
		}
		return len(ended) >= n
	})
	return ended
}

var _ = strings.Contains
