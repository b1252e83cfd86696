package link

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
)

// The directions, as errors and logs name them.
const (
	dirToServer = "client to server"
	dirToClient = "server to client"
)

// conn is one client connection and its server connection.
type conn struct {
	l      *Link
	id     uint64
	client *net.TCPConn
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	toServer, toClient *shaper

	mu      sync.Mutex
	server  *net.TCPConn // nil until dialed
	ended   bool
	end     string // how it ended (End...), set with err
	err     error
	aborted bool
}

func newConn(ctx context.Context, l *Link, id uint64, client *net.TCPConn) *conn {
	c := &conn{l: l, id: id, client: client,
		log:      l.log.With("conn", id, "client", client.RemoteAddr().String()),
		toServer: newShaper(l.cfg.Profile, l.seedBase+2*id),
		toClient: newShaper(l.cfg.Profile, l.seedBase+2*id+1),
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c
}

// abort ends the connection at once: both sockets closed, every
// direction unblocked, bytes on the link dropped. The first error is the
// one reported, with end saying what kind of end it was.
func (c *conn) abort(end string, err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		c.end = end
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

func (c *conn) stats() ConnStats {
	c.mu.Lock()
	s := ConnStats{ID: c.id, Client: c.client.RemoteAddr().String(), Open: !c.ended}
	if c.ended {
		s.End = cmp.Or(c.end, EndClosed)
	}
	if c.err != nil {
		s.Err = c.err.Error()
	}
	c.mu.Unlock()
	s.ToServer = c.toServer.stats()
	s.ToClient = c.toClient.stats()
	return s
}

// Abort is how the server ends the connection when the link shuts down.
func (c *conn) Abort(err error) { c.abort(EndLinkClosed, err) }

// Run dials the target and forwards both ways until both directions
// have ended.
func (c *conn) Run() {
	defer c.cancel()
	_ = c.client.SetNoDelay(true) // Go's default: a link adds its own delay, not Nagle's
	d := net.Dialer{Timeout: c.l.cfg.DialTimeout, Control: c.l.cfg.control}
	nc, err := d.DialContext(c.ctx, "tcp", c.l.target)
	if err != nil {
		if c.ctx.Err() != nil { // the link closed while we dialed
			err = fmt.Errorf("link shutting down while dialing %s: %w", c.l.target, context.Cause(c.ctx))
		} else {
			err = fmt.Errorf("dial target %s: %w", c.l.target, err)
		}
		end := EndDialFailed
		if c.ctx.Err() != nil {
			end = EndLinkClosed
		} else {
			c.log.Error("dial the target; closing the client", "err", err)
		}
		c.abort(end, err)
		c.finish()
		return
	}
	server := nc.(*net.TCPConn)
	_ = server.SetNoDelay(true)
	c.mu.Lock()
	c.server = server
	aborted := c.aborted
	c.mu.Unlock()
	if aborted { // the link closed while we dialed
		_ = server.Close()
		c.finish()
		return
	}
	c.log.Debug("connected", "server", server.LocalAddr().String())

	fail := func(dir string) func(error) {
		return func(err error) {
			end := EndError
			switch {
			case c.l.srv.Context().Err() != nil:
				end = EndLinkClosed
			case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
				end = EndReset
			}
			c.abort(end, fmt.Errorf("%s: %w", dir, err))
		}
	}
	// Each direction ends on its own: at the sender's end of stream it
	// half-closes the receiver once the delayed end is due, and the other
	// direction runs on. A failure aborts both (run calls fail).
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = c.toServer.run(c.ctx, c.client, server, server.CloseWrite, fail(dirToServer))
	})
	_ = c.toClient.run(c.ctx, server, c.client, c.client.CloseWrite, fail(dirToClient))
	wg.Wait()
	c.finish()
}

// finish closes both sockets and logs the connection's end.
func (c *conn) finish() {
	_ = c.client.Close()
	c.mu.Lock()
	if c.server != nil {
		_ = c.server.Close()
	}
	c.ended = true
	err := c.err
	c.mu.Unlock()
	s := c.stats()
	attrs := []any{"to_server_bytes", s.ToServer.Bytes, "to_client_bytes", s.ToClient.Bytes,
		"to_client_queue_high_water", s.ToClient.QueueHighWater, "to_client_blocked_s", s.ToClient.BlockedS}
	if err != nil {
		c.log.Info("connection ended", append(attrs, "err", err)...)
	} else {
		c.log.Info("connection ended", attrs...)
	}
}
