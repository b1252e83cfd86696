package spiceproxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// copyBuffer is the read size of a plain or delaying direction.
	copyBuffer = 32 << 10
	// maxHeld bounds the server message Nagle mode holds to write in
	// one piece; a larger one (a big image) is written as it arrives,
	// one write per read, so memory stays bounded.
	maxHeld = 4 << 20
)

// The directions, as errors and logs name them.
const (
	dirToServer = "client to server"
	dirToClient = "server to client"
)

// conn is one proxied client connection and its server connection.
type conn struct {
	p       *Proxy
	id      uint64
	client  *net.TCPConn
	server  *net.TCPConn // nil until dialed
	log     *slog.Logger
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	cost    time.Duration // CPU mode's busy time per server message

	toServer, toClient     atomic.Int64
	clientWrites, messages atomic.Int64

	mu      sync.Mutex
	framing string
	ended   time.Time
	err     error
	aborted bool
}

func newConn(ctx context.Context, p *Proxy, id uint64, client *net.TCPConn) *conn {
	c := &conn{p: p, id: id, client: client, started: time.Now(),
		log: p.log.With("conn", id, "client", client.RemoteAddr().String())}
	if p.cfg.Mode.Kind == CPU {
		c.cost = p.cfg.Mode.Delay
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c
}

// abort ends the connection at once: both sockets closed, every
// direction unblocked. The first error is the one reported.
func (c *conn) abort(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.aborted = true
	server := c.server
	c.mu.Unlock()
	c.cancel()
	_ = c.client.Close()
	if server != nil {
		_ = server.Close()
	}
}

func (c *conn) setFraming(s string) {
	c.mu.Lock()
	c.framing = s
	c.mu.Unlock()
}

func (c *conn) stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ConnStats{
		ID: c.id, Client: c.client.RemoteAddr().String(), Started: c.started, Ended: c.ended,
		ToServer: c.toServer.Load(), ToClient: c.toClient.Load(),
		ClientWrites: c.clientWrites.Load(), Messages: c.messages.Load(),
		Framing: c.framing,
	}
	if c.err != nil {
		s.Err = c.err.Error()
	}
	return s
}

// Abort is how the server ends the connection when the proxy shuts
// down.
func (c *conn) Abort(err error) { c.abort(err) }

// Run dials the target and forwards until both directions end.
func (c *conn) Run() {
	defer c.cancel()
	mode := c.p.cfg.Mode
	// Nagle mode keeps Nagle's algorithm on the client's socket; every
	// other socket sets TCP_NODELAY explicitly (Go's default, but the
	// point of the proxy is to say what it does).
	if err := c.client.SetNoDelay(mode.Kind != Nagle); err != nil {
		c.log.Warn("set TCP_NODELAY on the client socket", "err", err)
	}
	d := net.Dialer{Timeout: c.p.cfg.DialTimeout}
	nc, err := d.DialContext(c.ctx, "tcp", c.p.target)
	if err != nil {
		err = fmt.Errorf("dial target %s: %w", c.p.target, err)
		c.log.Error("dial the SPICE server; closing the client", "err", err)
		c.abort(err)
		c.finish()
		return
	}
	server := nc.(*net.TCPConn)
	if err := server.SetNoDelay(true); err != nil {
		c.log.Warn("set TCP_NODELAY on the server socket", "err", err)
	}
	c.mu.Lock()
	c.server = server
	aborted := c.aborted
	c.mu.Unlock()
	if aborted { // the proxy closed while we dialed
		_ = server.Close()
		c.finish()
		return
	}
	c.log.Debug("connected", "server", server.LocalAddr().String())

	toServer := &counter{w: server, bytes: &c.toServer}
	toClient := &counter{w: c.client, bytes: &c.toClient, writes: &c.clientWrites}
	switch mode.Kind {
	case NoDelay:
		c.both(
			func() error { return copyPlain(c.client, toServer) },
			func() error { return copyPlain(server, toClient) })
	case Delay:
		limit := c.p.cfg.DelayBuffer
		fail := func(dir string) func(error) {
			return func(err error) { c.abort(fmt.Errorf("%s: %w", dir, err)) }
		}
		c.both(
			func() error {
				return copyDelayed(c.ctx, c.client, toServer, mode.Delay, limit, fail(dirToServer))
			},
			func() error {
				return copyDelayed(c.ctx, server, toClient, mode.Delay, limit, fail(dirToClient))
			})
	case Nagle, CPU:
		c.nagle(toServer, toClient)
	}
	c.finish()
}

// finish closes both sockets and logs the connection's end.
func (c *conn) finish() {
	_ = c.client.Close()
	c.mu.Lock()
	if c.server != nil {
		_ = c.server.Close()
	}
	c.ended = time.Now()
	err := c.err
	c.mu.Unlock()
	s := c.stats()
	attrs := []any{"to_server", s.ToServer, "to_client", s.ToClient, "client_writes", s.ClientWrites,
		"duration", s.Ended.Sub(s.Started).Round(time.Millisecond)}
	if s.Framing != "" {
		attrs = append(attrs, "framing", s.Framing, "messages", s.Messages)
	}
	if err != nil {
		c.log.Info("connection ended", append(attrs, "err", err)...)
	} else {
		c.log.Info("connection ended", attrs...)
	}
}

// both runs the client-to-server and server-to-client directions and
// waits for them. A direction that ends cleanly (its reader saw EOF)
// half-closes its writer so the other side sees the end too; one that
// fails aborts the connection.
func (c *conn) both(toServer, toClient func() error) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.end(toServer(), c.server, dirToServer)
	}()
	func() {
		defer wg.Done()
		c.end(toClient(), c.client, dirToClient)
	}()
	wg.Wait()
}

// end handles one direction's result.
func (c *conn) end(err error, dst *net.TCPConn, dir string) {
	if err != nil {
		c.abort(fmt.Errorf("%s: %w", dir, err))
		return
	}
	if err := dst.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
		c.abort(fmt.Errorf("%s: half-close: %w", dir, err))
	}
}

// counter counts what is written through it.
type counter struct {
	w      io.Writer
	bytes  *atomic.Int64
	writes *atomic.Int64 // may be nil
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.bytes.Add(int64(n))
	if c.writes != nil {
		c.writes.Add(1)
	}
	return n, err
}

// copyPlain forwards bytes as they are read, one write per read. It
// returns nil at EOF.
func copyPlain(src io.Reader, dst io.Writer) error {
	buf := make([]byte, copyBuffer)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
}

// errEOF marks a direction whose reader ended during the link.
var errEOF = errors.New("end of stream")

// relay reads exactly n bytes from r and forwards what it read to w in
// one write, even when the stream ended early. It returns errEOF (after
// forwarding the part) when the stream ended, and a read or write error
// otherwise.
func relay(r io.Reader, w io.Writer, buf []byte) error {
	k, err := io.ReadFull(r, buf)
	if k > 0 {
		if _, werr := w.Write(buf[:k]); werr != nil {
			return fmt.Errorf("write: %w", werr)
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errEOF
	default:
		return fmt.Errorf("read: %w", err)
	}
}

// nagle runs a Nagle-mode connection: it follows the link exchange to
// learn the data header, then writes each server message with its own
// write. Anything it cannot follow is forwarded as it comes, unchanged.
func (c *conn) nagle(toServer, toClient io.Writer) {
	cr := bufio.NewReaderSize(c.client, copyBuffer)
	sr := bufio.NewReaderSize(c.server, 64<<10)
	c2s, s2c, err := c.followLink(cr, sr, toServer, toClient)
	if err != nil {
		c.abort(fmt.Errorf("link: %w", err))
		return
	}
	c.both(c2s, s2c)
}

// followLink runs the link phase (see linker) and returns what each
// direction does next: framed server messages after a link it could
// follow, plain forwarding from where it stopped otherwise. An error is
// a socket failing during the link.
func (c *conn) followLink(cr, sr *bufio.Reader, toServer, toClient io.Writer) (c2s, s2c func() error, err error) {
	l := linker{cr: cr, sr: sr, toServer: toServer, toClient: toClient}
	hdr, err := l.run()
	if err != nil && !errors.Is(err, errEOF) {
		return nil, nil, err
	}
	if l.channel != "" {
		c.log = c.log.With("channel", l.channel)
	}
	if l.why != "" {
		c.setFraming("plain: " + l.why)
		c.log.Warn("cannot follow the SPICE link: forwarding bytes unchanged, without framing", "why", l.why)
		return func() error { return copyUnlessEOF(l.clientEOF, cr, toServer) },
			func() error { return copyUnlessEOF(l.serverEOF, sr, toClient) }, nil
	}
	c.setFraming(hdr.String())
	c.log.Debug("link followed: one write per server message", "header", hdr.String())
	return func() error { return copyPlain(cr, toServer) },
		func() error { return c.frame(sr, toClient, hdr) }, nil
}

func copyUnlessEOF(eof bool, src io.Reader, dst io.Writer) error {
	if eof {
		return nil
	}
	return copyPlain(src, dst)
}

// frame writes every server message after the link result with one
// write: the data header and its body together. It falls back to plain
// forwarding if the server refused the ticket.
func (c *conn) frame(sr *bufio.Reader, toClient io.Writer, h header) error {
	var res [linkResultSize]byte
	switch err := relay(sr, toClient, res[:]); {
	case errors.Is(err, errEOF):
		return nil
	case err != nil:
		return err
	}
	if code := binary.LittleEndian.Uint32(res[:]); code != 0 {
		why := fmt.Sprintf("plain: server refused the ticket (SPICE_LINK_ERR %d)", code)
		c.setFraming(why)
		c.log.Info("link refused: forwarding the rest unchanged", "why", why)
		return copyPlain(sr, toClient)
	}
	hs := h.size()
	buf := make([]byte, hs, 4<<10)
	for {
		k, err := io.ReadFull(sr, buf[:hs])
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			if k > 0 {
				if _, werr := toClient.Write(buf[:k]); werr != nil {
					return fmt.Errorf("write: %w", werr)
				}
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		size := int64(h.messageSize(buf[:hs]))
		if size > maxHeld {
			// Too big to hold: header now, the body as it arrives.
			c.spend()
			if _, err := toClient.Write(buf[:hs]); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if err := copyN(sr, toClient, size, make([]byte, copyBuffer)); err != nil {
				return err
			}
			c.messages.Add(1)
			continue
		}
		total := hs + int(size)
		if cap(buf) < total {
			buf = append(buf[:hs], make([]byte, total-hs)...)
		}
		buf = buf[:total]
		if k, err := io.ReadFull(sr, buf[hs:]); err != nil {
			// The stream ended or failed mid-message: forward what came.
			if _, werr := toClient.Write(buf[:hs+k]); werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		c.spend()
		if _, err := toClient.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		c.messages.Add(1)
	}
}

// spend costs the CPU that CPU mode charges for one message, before it
// is written; in the other modes it does nothing.
func (c *conn) spend() {
	if c.cost > 0 {
		burn(c.cost)
	}
}

// copyN forwards n bytes from src to dst, one write per read. A stream
// that ends early is not an error here: what came is forwarded and the
// end passed on.
func copyN(src io.Reader, dst io.Writer, n int64, buf []byte) error {
	for n > 0 {
		k, err := src.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			n -= int64(k)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
	return nil
}
