package loadgen

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// ClientConfig says where a busy session's viewer connects.
type ClientConfig struct {
	// Addr is the SPICE server's port, host:port: a Server, a proxy in
	// front of one, or any SPICE server; its TLS port when TLS is set.
	Addr string
	// Password is the ticket (a .vv's one-time password, for a console
	// behind Kerbside); it is never logged.
	Password secret.String
	// TLS, when set, runs every channel over TLS with this configuration
	// (a .vv's tls-port, CA and host-subject): Kerbside's plain port
	// answers every link NEED_SECURED. The handshake is bounded by the
	// link's time, like the rest of the link.
	TLS *tls.Config
	// LinkTimeout bounds Dial from the first connect to the display
	// channel linked; 0 means DefaultLinkTimeout.
	LinkTimeout time.Duration

	// fullHeader makes the client leave MINI_HEADER out, so that the
	// tests see both data headers.
	fullHeader bool
	// noAck makes the client answer SET_ACK but never ACK, so that the
	// tests see where a server stops.
	noAck bool
}

// maxServerMessage bounds a server message's body; the Client reads the
// bodies it needs (a few bytes) and discards the rest unread.
const maxServerMessage = 64 << 20

// clientWriteTimeout bounds each ACK, ACK_SYNC and PONG: a server that
// stops reading ends the session instead of blocking it.
const clientWriteTimeout = 10 * time.Second

// Errors a Client ends with.
var (
	// ErrServerClosed: the server closed a channel.
	ErrServerClosed = errors.New("the server closed the connection")
	// ErrNoDisplay: the server lists no display channel.
	ErrNoDisplay = errors.New("the server lists no display channel")
)

// Client is one synthetic session's viewer: its main and display
// channels, each read by one goroutine that answers flow control and
// PINGs and counts what it reads.
type Client struct {
	c          counters
	fullHeader bool
	noAck      bool
	tls        *tls.Config
	display    *chanReader
	conns      []net.Conn
	running    atomic.Int32 // readers still running; the last closes done
	done       chan struct{}
	mu         sync.Mutex
	closing    bool
	err        error
}

// Dial links a session (main channel, then display channel 0) and
// starts reading. ctx and cfg.LinkTimeout bound the link only; the
// session runs until Close or until the server ends it.
func Dial(ctx context.Context, cfg ClientConfig) (_ *Client, err error) {
	if cfg.LinkTimeout <= 0 {
		cfg.LinkTimeout = DefaultLinkTimeout
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.LinkTimeout)
	defer cancel()
	cl := &Client{done: make(chan struct{}), fullHeader: cfg.fullHeader, noAck: cfg.noAck, tls: cfg.TLS}
	defer func() {
		if err != nil {
			for _, c := range cl.conns {
				c.Close()
			}
		}
	}()
	pw := cfg.Password.Reveal()

	main, mini, err := cl.link(lctx, cfg.Addr, 0, chanMain, pw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	// The main channel's handshake and the display's link are bounded by
	// lctx too: its deadline is on the connection, and a cancel sets a
	// past one.
	stopMain := context.AfterFunc(lctx, func() { main.SetDeadline(time.Unix(1, 0)) })
	defer stopMain()
	mainRd := cl.newChanReader(main, mini, false, 4<<10)
	sid, err := mainRd.handshakeMain()
	if err != nil {
		return nil, fmt.Errorf("loadgen: main channel on %s: %w", cfg.Addr, linkErr(lctx, err))
	}
	cl.c.session.Store(sid)
	disp, dmini, err := cl.link(lctx, cfg.Addr, sid, chanDisplay, pw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	// DISPLAY_INIT: pixmap cache id and size, glz dictionary id and
	// window; the server may ignore them, the reader never caches.
	init := []byte{1}
	init = binary.LittleEndian.AppendUint64(init, 0)
	init = append(init, 1)
	init = binary.LittleEndian.AppendUint32(init, 0)
	if _, err := disp.Write(append(appendHeader(nil, dmini, 1, msgcDisplayInit, len(init)), init...)); err != nil {
		return nil, fmt.Errorf("loadgen: send DISPLAY_INIT: %w", linkErr(lctx, err))
	}
	if !stopMain() {
		return nil, fmt.Errorf("loadgen: link on %s: %w", cfg.Addr, context.Cause(lctx))
	}
	for _, c := range cl.conns {
		c.SetDeadline(time.Time{})
	}
	cl.c.start(time.Now())
	dispRd := cl.newChanReader(disp, dmini, true, 32<<10)
	dispRd.serial = 1 // DISPLAY_INIT
	cl.display = dispRd
	cl.running.Store(2)
	go mainRd.run()
	go dispRd.run()
	return cl, nil
}

// link connects and links one channel, bounded by lctx.
func (cl *Client) link(lctx context.Context, addr string, sid uint32, channel uint8, pw string) (net.Conn, bool, error) {
	var d net.Dialer
	conn, err := d.DialContext(lctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("connect channel type %d to %s: %w", channel, addr, err)
	}
	cl.conns = append(cl.conns, conn)
	if dl, ok := lctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(lctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if cl.tls != nil {
		tc := tls.Client(conn, cl.tls)
		if err := tc.HandshakeContext(lctx); err != nil {
			conn.Close()
			return nil, false, fmt.Errorf("TLS for channel type %d on %s: %w", channel, addr, linkErr(lctx, err))
		}
		// The TLS connection is what the channel reads, writes and
		// closes from now on; the raw one is closed with it.
		cl.conns[len(cl.conns)-1] = tc
		conn = tc
	}
	mini, err := dialLink(conn, sid, channel, 0, pw, !cl.fullHeader)
	if err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("link channel type %d on %s: %w", channel, addr, linkErr(lctx, err))
	}
	return conn, mini, nil
}

// linkErr says when a link failed because its time ran out.
func linkErr(lctx context.Context, err error) error {
	if lctx.Err() != nil {
		return fmt.Errorf("%w (link bounded by: %w)", err, context.Cause(lctx))
	}
	return err
}

// chanReader reads one of a Client's channels. It answers SET_ACK, every
// window-th message and PINGs itself, before anything else, so nothing
// can stall the server's flow control.
type chanReader struct {
	cl      *Client
	conn    net.Conn
	rd      *msgReader
	mini    bool
	display bool
	serial  uint64
	window  uint32
	count   uint32
	out     []byte
	// sinceSetAck counts the messages after the last SET_ACK (tests).
	sinceSetAck atomic.Uint32
}

func (cl *Client) newChanReader(conn net.Conn, mini, display bool, bufSize int) *chanReader {
	return &chanReader{cl: cl, conn: conn, rd: newMsgReader(conn, mini, bufSize), mini: mini, display: display}
}

func (r *chanReader) send(typ uint16, body []byte) error {
	r.serial++
	r.out = append(appendHeader(r.out[:0], r.mini, r.serial, typ, len(body)), body...)
	r.conn.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
	_, err := r.conn.Write(r.out)
	return err
}

// next reads one message whole. It answers flow control and PINGs
// itself; the main channel's MAIN_INIT and CHANNELS_LIST bodies are
// returned (valid until the next call), every other body is discarded
// unread. A message is counted only once it has been read whole.
func (r *chanReader) next() (typ uint16, body []byte, err error) {
	le := binary.LittleEndian
	typ, size, err := r.rd.header()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, ErrServerClosed
		}
		return 0, nil, err
	}
	if size > maxServerMessage {
		return 0, nil, fmt.Errorf("%w: message type %d of %d bytes, more than %d", ErrProtocol, typ, size, maxServerMessage)
	}
	r.sinceSetAck.Add(1)
	if r.window > 0 && !r.cl.noAck {
		if r.count++; r.count >= r.window {
			r.count = 0
			if err := r.send(msgcAck, nil); err != nil {
				return 0, nil, fmt.Errorf("send ACK: %w", err)
			}
			r.cl.c.acks.Add(1)
		}
	}
	switch {
	case typ == msgSetAck:
		b, err := r.rd.head(typ, size, 8)
		if err != nil {
			return 0, nil, err
		}
		if err := r.send(msgcAckSync, b[0:4]); err != nil {
			return 0, nil, fmt.Errorf("send ACK_SYNC: %w", err)
		}
		r.window, r.count = le.Uint32(b[4:]), 0
		r.sinceSetAck.Store(0)
	case typ == msgPing:
		b, err := r.rd.head(typ, size, 12)
		if err != nil {
			return 0, nil, err
		}
		if err := r.send(msgcPong, b[0:12]); err != nil {
			return 0, nil, fmt.Errorf("send PONG: %w", err)
		}
		r.cl.c.pings.Add(1)
	case !r.display && typ == msgMainInit:
		body, err = r.rd.head(typ, size, 32)
	case !r.display && typ == msgMainChannels:
		body, err = r.rd.body(typ, size, maxLinkMess)
	default:
		err = r.rd.skip(typ, size)
	}
	if err != nil {
		return 0, nil, err
	}
	if r.display {
		r.cl.c.messages.Add(1)
		r.cl.c.bytes.Add(uint64(headerSize(r.mini)) + uint64(size))
		if isDraw(typ) {
			r.cl.c.draws.Add(1)
		}
	}
	return typ, body, nil
}

// handshakeMain reads MAIN_INIT, asks for the channels and checks that a
// display channel is listed. It returns the session id.
func (r *chanReader) handshakeMain() (uint32, error) {
	le := binary.LittleEndian
	var sid uint32
	for {
		typ, body, err := r.next()
		if err != nil {
			return 0, fmt.Errorf("wait for MAIN_INIT and CHANNELS_LIST: %w", unexpected(err))
		}
		switch typ {
		case msgMainInit:
			sid = le.Uint32(body)
			if err := r.send(msgcMainAttach, nil); err != nil {
				return 0, fmt.Errorf("send ATTACH_CHANNELS: %w", err)
			}
		case msgMainChannels:
			if len(body) < 4 || uint64(le.Uint32(body))*2 > uint64(len(body)-4) {
				return 0, fmt.Errorf("%w: CHANNELS_LIST of %d bytes does not hold its count", ErrProtocol, len(body))
			}
			if sid == 0 {
				return 0, fmt.Errorf("%w: CHANNELS_LIST before MAIN_INIT", ErrProtocol)
			}
			for i := range int(le.Uint32(body)) {
				if body[4+2*i] == chanDisplay && body[5+2*i] == 0 {
					return sid, nil
				}
			}
			return 0, ErrNoDisplay
		}
	}
}

// head reads the first n bytes of a body (which must have them) and
// discards the rest.
func (m *msgReader) head(typ uint16, size uint32, n uint32) ([]byte, error) {
	if size < n {
		return nil, fmt.Errorf("%w: message type %d of %d bytes, want at least %d", ErrProtocol, typ, size, n)
	}
	b, err := m.body(typ, n, n)
	if err != nil {
		return nil, err
	}
	if err := m.skip(typ, size-n); err != nil {
		return nil, err
	}
	return b, nil
}

// run reads one channel until it ends.
func (r *chanReader) run() {
	defer func() {
		if r.cl.running.Add(-1) == 0 {
			close(r.cl.done)
		}
	}()
	for {
		if _, _, err := r.next(); err != nil {
			r.cl.fail(err)
			return
		}
	}
}

// isDraw reports the display messages that change a surface's pixels:
// COPY_BITS, DRAW_FILL..DRAW_ALPHA_BLEND, DRAW_COMPOSITE, STREAM_DATA,
// STREAM_DATA_SIZED and GL_DRAW.
func isDraw(typ uint16) bool {
	return typ == 104 || (typ >= 302 && typ <= 313) || typ == 318 || typ == 123 || typ == 316 || typ == 321
}

// fail ends the session with err unless it is being closed; every
// connection is closed.
func (cl *Client) fail(err error) {
	cl.mu.Lock()
	if cl.closing {
		err = nil
	}
	first := cl.err == nil && !cl.closing
	if first {
		cl.err = err
		cl.closing = true
	}
	cl.mu.Unlock()
	if first {
		cl.c.end(time.Now(), err)
	}
	for _, c := range cl.conns {
		c.Close()
	}
}

// Close ends the session and waits for its goroutines. It is safe to
// call more than once; after Close, Err is nil unless the session had
// failed before.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if !cl.closing {
		cl.closing = true
		cl.c.end(time.Now(), nil)
	}
	cl.mu.Unlock()
	for _, c := range cl.conns {
		c.Close()
	}
	<-cl.done
	return nil
}

// Done is closed when the session has ended and its goroutines returned.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err says why the session ended by itself (nil while it runs, and after
// Close).
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

// Stats reports the session so far.
func (cl *Client) Stats() SessionStats { return cl.c.snapshot(time.Now()) }
