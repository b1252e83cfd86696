package spiceproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/tcpserve"
)

// Defaults for Config's zero values, and the proxy's fixed bounds.
const (
	DefaultListen      = tcpserve.DefaultListen
	DefaultDialTimeout = 10 * time.Second
	// DefaultDelayBuffer bounds the bytes a delay proxy holds per
	// direction of one connection. When it is full the proxy stops
	// reading from that side (TCP backpressure) until bytes are due.
	DefaultDelayBuffer = 8 << 20
	// CloseTimeout bounds Close's wait for the proxy's goroutines once
	// every socket is closed.
	CloseTimeout = tcpserve.DefaultCloseTimeout
)

// ErrClosed is the cause of the proxy's context once Close was called.
var ErrClosed = errors.New("spice proxy closed")

// Config says where a proxy listens, where it forwards and how.
type Config struct {
	// Listen is the address to accept clients on; empty means
	// DefaultListen (a free loopback port: read it back with Addr).
	Listen string
	// Target is the SPICE server's host:port. Every accepted
	// connection dials it: SPICE opens one TCP connection per channel,
	// and each is proxied on its own.
	Target string
	// Mode says how bytes are forwarded (see Parse).
	Mode Mode
	// Logger receives the proxy's log lines; nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds each dial of Target; zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// DelayBuffer bounds the bytes held per direction and connection in
	// Delay mode; zero means DefaultDelayBuffer.
	DelayBuffer int
}

// Proxy is a running SPICE proxy. Close must be called.
type Proxy struct {
	cfg    Config
	target string
	log    *slog.Logger
	srv    *tcpserve.Server[*conn, ConnStats]

	mu    sync.Mutex // the server's: guards its open set (see open) and ended
	ended Totals     // summed over the connections that ended
}

// Start listens on cfg.Listen and proxies every client connection to
// cfg.Target in cfg.Mode until Close is called or ctx is done. A ctx
// that ends closes every connection, as Close does; Close must still be
// called to wait for the proxy's goroutines.
func Start(ctx context.Context, cfg Config) (*Proxy, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.DelayBuffer == 0 {
		cfg.DelayBuffer = DefaultDelayBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Mode.validate(); err != nil {
		return nil, fmt.Errorf("start spice proxy: %w", err)
	}
	if cfg.DialTimeout < 0 || cfg.DelayBuffer < 0 {
		return nil, fmt.Errorf("start spice proxy: negative DialTimeout (%s) or DelayBuffer (%d)", cfg.DialTimeout, cfg.DelayBuffer)
	}
	ln, target, err := tcpserve.Listen(ctx, net.ListenConfig{}, "proxy", cfg.Listen, cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("start spice proxy: %w", err)
	}
	p := &Proxy{
		cfg:    cfg,
		target: target,
		log:    cfg.Logger.With("component", "spiceproxy", "mode", cfg.Mode.String()),
	}
	p.srv = tcpserve.New(tcpserve.Config[*conn, ConnStats]{
		Name:   "spice proxy",
		Closed: ErrClosed,
		New: func(ctx context.Context, id uint64, nc *net.TCPConn) *conn {
			return newConn(ctx, p, id, nc)
		},
		Stats:  (*conn).stats,
		Ended:  p.ended.add,
		Mu:     &p.mu,
		Logger: p.log,
	})
	p.srv.Serve(ctx, ln, "target", p.target)
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() net.Addr { return p.srv.Addr() }

// Mode is the mode the proxy runs in.
func (p *Proxy) Mode() Mode { return p.cfg.Mode }

// Close stops accepting, closes every connection and waits, at most
// CloseTimeout, for the proxy's goroutines. It is safe to call more than
// once and returns the same error each time.
func (p *Proxy) Close() error { return p.srv.Close() }

// open yields the open connections by id, for a caller that holds p.mu.
func (p *Proxy) open(yield func(uint64, *conn) bool) {
	for _, c := range p.srv.OpenLocked() {
		if !yield(c.id, c) {
			return
		}
	}
}

// ConnStats describes one proxied connection (one SPICE channel).
type ConnStats struct {
	ID     uint64
	Client string // the client's address
	// Started is when the client was accepted; Ended is zero while the
	// connection is open.
	Started, Ended time.Time
	// ToServer and ToClient are the bytes forwarded each way.
	ToServer, ToClient int64
	// ClientWrites counts the writes made to the client's socket.
	ClientWrites int64
	// Messages counts the server messages forwarded one per write after
	// the link (Nagle and CPU modes only). The link takes three writes of its
	// own (the server's link header, its reply, the link result), so
	// ClientWrites is Messages+3 on a framed connection that sent no
	// message too large to hold.
	Messages int64
	// Framing says how the server's bytes were cut in Nagle and CPU
	// modes: "mini header", "full header", or "plain: <why>" when the
	// link could not be followed and bytes were forwarded as they came.
	// Empty in the other modes.
	Framing string
	// Err says why the connection ended, if not by both sides closing.
	Err string
}

// Conns reports the open connections and the last ended ones, in the
// order they were accepted.
func (p *Proxy) Conns() []ConnStats { return p.srv.Conns() }

// Totals is what a proxy forwarded over every connection so far, open
// or ended (Conns keeps only the last ended ones).
type Totals struct {
	Conns              int64 // connections accepted and counted
	ToServer, ToClient int64 // bytes forwarded each way
	// Messages counts the server messages forwarded one per write: in
	// Nagle and CPU modes only, the modes that frame (see ConnStats).
	Messages int64
}

func (t *Totals) add(s ConnStats) {
	t.Conns++
	t.ToServer += s.ToServer
	t.ToClient += s.ToClient
	t.Messages += s.Messages
}

// Totals sums every connection so far, open or ended.
func (p *Proxy) Totals() Totals {
	p.mu.Lock()
	t := p.ended
	open := p.srv.OpenLocked()
	p.mu.Unlock()
	for _, c := range open {
		t.add(c.stats())
	}
	return t
}
