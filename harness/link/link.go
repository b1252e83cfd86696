package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/tcpserve"
)

// Defaults for Config's zero values, and the link's fixed bounds.
const (
	DefaultListen      = tcpserve.DefaultListen
	DefaultDialTimeout = 10 * time.Second
	// DefaultReadBuffer is the kernel receive buffer (SO_RCVBUF) of the
	// link's sockets. The bytes the kernel holds before the link reads
	// them are a queue the profile does not see; capping them keeps the
	// profile's queue the one that counts. 64 KiB still moves gigabits
	// over loopback.
	DefaultReadBuffer = 64 << 10
	// DefaultMSS is the TCP maximum segment size of the link's sockets:
	// an Ethernet path's (1500-byte MTU less 40 bytes of headers).
	DefaultMSS = 1460
	// CloseTimeout bounds Close's wait for the link's goroutines once
	// every socket is closed.
	CloseTimeout = tcpserve.DefaultCloseTimeout
)

// ErrClosed is the cause of the link's context once Close was called.
var ErrClosed = errors.New("link closed")

// Config says where a link listens, where it forwards and what it does.
type Config struct {
	// Listen is the address clients connect to; empty means
	// DefaultListen (a free loopback port: read it back with Addr).
	Listen string
	// Target is the server's host:port. Every accepted connection dials
	// it: SPICE opens one TCP connection per channel, and each crosses
	// the link on its own.
	Target string
	// Profile is what the link does to the bytes (see Parse). The zero
	// Profile forwards them unchanged.
	Profile Profile
	// Logger receives the link's log lines; nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds each dial of Target; zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ReadBuffer is SO_RCVBUF on the link's sockets; zero means
	// DefaultReadBuffer, negative leaves the kernel's own (autotuned,
	// up to megabytes: a hidden queue in front of the profile's).
	ReadBuffer int
	// MSS is the TCP maximum segment size of the link's sockets, which
	// their peers learn in the handshake; zero means DefaultMSS,
	// negative leaves loopback's 64 KiB. Linux sizes a sender's send
	// buffer in segments, so with loopback's MSS a sender in front of a
	// slow link buffered 4 MiB (measured) that it would not on a real
	// path: a hidden queue the profile cannot bound. With 1460 it
	// buffered 0.4-0.9 MiB, still more than a real path's; for SPICE,
	// spice-server's ACK window bounds what it sends first.
	MSS int
	// Seed seeds the jitter; zero means a random seed.
	Seed uint64
}

// control applies ReadBuffer and MSS to a socket before it listens or
// connects.
func (cfg Config) control(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = shapeSocket(fd, cfg.ReadBuffer, cfg.MSS) }); err != nil {
		return err
	}
	return serr
}

// Link is a running link: a TCP forwarder that puts its profile between
// every client and the target, both ways. Close must be called.
type Link struct {
	cfg    Config
	target string
	log    *slog.Logger
	srv    *tcpserve.Server[*conn, ConnStats]

	mu       sync.Mutex // the server's: guards its open set and total
	total    Stats      // the ended connections, summed
	seedBase uint64
}

// Start listens on cfg.Listen and forwards every client connection to
// cfg.Target through cfg.Profile until Close is called or ctx is done.
// A ctx that ends closes every connection, as Close does; Close must
// still be called to wait for the link's goroutines.
func Start(ctx context.Context, cfg Config) (*Link, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.MSS == 0 {
		cfg.MSS = DefaultMSS
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Profile.Validate(); err != nil {
		return nil, fmt.Errorf("start link: %w", err)
	}
	if cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("start link: negative DialTimeout %s", cfg.DialTimeout)
	}
	// Accepted sockets inherit the listener's options, set before the
	// handshake so that the window and the MSS advertised fit them.
	ln, target, err := tcpserve.Listen(ctx, net.ListenConfig{Control: cfg.control}, "link", cfg.Listen, cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("start link: %w", err)
	}
	l := &Link{
		cfg:      cfg,
		target:   target,
		log:      cfg.Logger.With("component", "link", "profile", cfg.Profile.String()),
		seedBase: cfg.Seed,
	}
	if l.seedBase == 0 {
		l.seedBase = rand.Uint64()
	}
	l.total.Profile = cfg.Profile
	l.total.Ends = map[string]int{}
	l.srv = tcpserve.New(tcpserve.Config[*conn, ConnStats]{
		Name:   "link",
		Closed: ErrClosed,
		New: func(ctx context.Context, id uint64, nc *net.TCPConn) *conn {
			return newConn(ctx, l, id, nc)
		},
		Stats:  (*conn).stats,
		Ended:  l.total.add,
		Mu:     &l.mu,
		Logger: l.log,
	})
	l.srv.Serve(ctx, ln, "target", l.target)
	return l, nil
}

// Addr is the address clients connect to.
func (l *Link) Addr() net.Addr { return l.srv.Addr() }

// Profile is the profile the link applies.
func (l *Link) Profile() Profile { return l.cfg.Profile }

// Close stops accepting, closes every connection (bytes still on the
// link are dropped, as when a cable is pulled) and waits, at most
// CloseTimeout, for the link's goroutines. It is safe to call more than
// once and returns the same error each time.
func (l *Link) Close() error { return l.srv.Close() }

// Conns reports the open connections and the last ended ones, in the
// order they were accepted.
func (l *Link) Conns() []ConnStats { return l.srv.Conns() }

// Stats is what the link did to every connection so far, open or ended,
// summed per direction.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	total := l.total
	total.Ends = maps.Clone(l.total.Ends)
	open := l.srv.OpenLocked()
	l.mu.Unlock()
	for _, c := range open {
		total.add(c.stats())
	}
	return total
}
