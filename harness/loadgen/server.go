package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// ServerConfig says what a busy session's display looks like. Every
// session the Server serves gets the same stream.
type ServerConfig struct {
	// Password is the SPICE ticket clients must send; empty accepts any
	// ticket, as spice-server does with ticketing disabled. It is never
	// logged.
	Password secret.String
	// BitsPerSecond is each session's display rate, counted over whole
	// SPICE messages; 0 sends as fast as the ACK window and the socket
	// allow.
	BitsPerSecond int64
	// DrawSize is the size of one DRAW_COPY body in bytes: 93 bytes of
	// draw and image headers, then a raw 32-bit bitmap as wide as the
	// surface (or narrower, for a small draw) and as many rows as it
	// takes, so the size is rounded up to whole rows; DrawMessageSize
	// says what it came to. 0 means DefaultDrawSize.
	DrawSize int
	// Width and Height are the primary surface's; 0 means 1024x768.
	Width, Height int
	// AckWindow is the window SET_ACK announces; 0 means DefaultAckWindow.
	// The server stops while more than twice that many messages are
	// unacknowledged, as spice-server does.
	AckWindow uint32
	// PingInterval is the time between the display channel's PINGs; 0
	// means DefaultPingInterval, negative sends none.
	PingInterval time.Duration
	// LinkTimeout bounds each connection's link handshake; 0 means
	// DefaultLinkTimeout.
	LinkTimeout time.Duration
	// Logger receives one line per refused link and per session that
	// ended in error; nil discards them.
	Logger *slog.Logger
}

// Defaults for ServerConfig's zero values.
const (
	DefaultDrawSize     = 4096
	DefaultAckWindow    = 20 // spice-server's CLIENT_ACK_WINDOW
	DefaultPingInterval = 15 * time.Second
	DefaultLinkTimeout  = 10 * time.Second
	defaultWidth        = 1024
	defaultHeight       = 768
)

// maxClientMessage bounds a client message's body on every channel of
// the Server (spice-server's clients send at most a few KiB at a time).
const maxClientMessage = 64 << 10

func (c ServerConfig) withDefaults() ServerConfig {
	if c.DrawSize == 0 {
		c.DrawSize = DefaultDrawSize
	}
	if c.Width == 0 && c.Height == 0 {
		c.Width, c.Height = defaultWidth, defaultHeight
	}
	if c.AckWindow == 0 {
		c.AckWindow = DefaultAckWindow
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.LinkTimeout <= 0 {
		c.LinkTimeout = DefaultLinkTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c ServerConfig) validate() error {
	var errs []error
	if c.BitsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("BitsPerSecond %d is negative", c.BitsPerSecond))
	}
	if c.Width <= 0 || c.Height <= 0 || c.Width > 8192 || c.Height > 8192 {
		errs = append(errs, fmt.Errorf("surface %dx%d: want 1..8192 each way", c.Width, c.Height))
	} else if c.DrawSize < 4 || c.DrawSize > c.Width*c.Height*4 {
		errs = append(errs, fmt.Errorf("DrawSize %d: want 4..%d (one pixel to the whole %dx%d surface)", c.DrawSize, c.Width*c.Height*4, c.Width, c.Height))
	}
	if c.AckWindow > 1<<20 {
		errs = append(errs, fmt.Errorf("AckWindow %d is beyond any SPICE client's", c.AckWindow))
	}
	if len(c.Password.Reveal()) > maxPassword {
		errs = append(errs, fmt.Errorf("password longer than %d bytes (SPICE_MAX_PASSWORD_LENGTH)", maxPassword))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadgen: bad server config: %w", err)
	}
	return nil
}

// Server is a SPICE server that streams a busy desktop to every session.
// Its methods are safe for concurrent use.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	key  serverKey
	ln   net.Listener
	draw drawTemplate

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   func() bool

	linkFailures atomic.Uint64

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	sessions map[uint32]*srvSession // live, by id
	all      []*srvSession          // every session ever, for Stats
	closed   bool
}

// Listen starts a Server on addr (e.g. "127.0.0.1:0").
func Listen(ctx context.Context, addr string, cfg ServerConfig) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: listen on %s: %w", addr, err)
	}
	s, err := Serve(ctx, ln, cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

// Serve starts a Server on ln, which it owns from then on. It runs until
// Close or until ctx ends.
func Serve(ctx context.Context, ln net.Listener, cfg ServerConfig) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key, err := newServerKey()
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		key:      key,
		ln:       ln,
		draw:     newDrawTemplate(cfg.DrawSize, cfg.Width, cfg.Height),
		conns:    map[net.Conn]struct{}{},
		sessions: map[uint32]*srvSession{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.stop = context.AfterFunc(ctx, s.shutdown)
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is where the Server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// DrawMessageSize is the size of one draw on the wire, body and mini
// data header, in bytes.
func (s *Server) DrawMessageSize() int { return miniHeaderSize + len(s.draw.pixels) + drawPrefixSize }

// Close stops accepting, ends every session and waits for every
// goroutine. It is safe to call more than once.
func (s *Server) Close() error {
	s.stop()
	s.shutdown()
	s.wg.Wait()
	return nil
}

func (s *Server) shutdown() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	s.cancel()
	s.ln.Close()
	for c := range conns {
		c.Close()
	}
}

// Stats reports every session the Server has served, live or ended.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	all := append([]*srvSession(nil), s.all...)
	s.mu.Unlock()
	now := time.Now()
	per := make([]SessionStats, 0, len(all))
	for _, ss := range all {
		per = append(per, ss.c.snapshot(now))
	}
	return total(per, s.linkFailures.Load())
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("loadgen server stopped accepting", "err", err)
			}
			return
		}
		if !s.track(conn) {
			conn.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			s.handle(conn)
		}()
	}
}

// track registers a connection so shutdown closes it; false after
// shutdown.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// handle links one connection and serves its channel.
func (s *Server) handle(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(s.cfg.LinkTimeout))
	var sess *srvSession
	route := func(lm linkMess) uint32 {
		if lm.channelID != 0 || (lm.channel != chanMain && lm.channel != chanDisplay && lm.channel != chanInputs) {
			return linkErrNoChannel
		}
		return linkOK
	}
	admit := func(lm linkMess) uint32 {
		if lm.channel == chanMain {
			return linkOK
		}
		var code uint32
		sess, code = s.join(lm.connID, lm.channel)
		return code
	}
	lm, mini, err := acceptLink(conn, s.key, s.cfg.Password.Reveal(), route, admit)
	if err != nil {
		s.linkFailures.Add(1)
		s.log.Info("loadgen: link refused", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	conn.SetDeadline(time.Time{})
	switch lm.channel {
	case chanMain:
		s.serveMain(conn, mini)
	case chanDisplay:
		s.serveDisplay(sess, conn, mini)
	case chanInputs:
		s.serveInputs(sess, conn, mini)
	}
}

// srvSession is one client session: its main channel and what joined it.
type srvSession struct {
	id     uint32
	ctx    context.Context // ends with the main channel or the server
	cancel context.CancelFunc
	c      counters

	mu      sync.Mutex
	display bool
	inputs  bool
	win     *window // the display channel's, once linked
}

// newSession makes a session with a fresh random id.
func (s *Server) newSession() (*srvSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	id := rand.Uint32()
	for id == 0 || s.sessions[id] != nil {
		id = rand.Uint32()
	}
	ss := &srvSession{id: id}
	ss.ctx, ss.cancel = context.WithCancel(s.ctx)
	ss.c.session.Store(id)
	s.sessions[id] = ss
	s.all = append(s.all, ss)
	return ss, true
}

// join attaches a display or inputs channel to a live session.
func (s *Server) join(id uint32, channel uint8) (*srvSession, uint32) {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		return nil, linkErrBadConnection
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case channel == chanDisplay && !ss.display:
		ss.display = true
	case channel == chanInputs && !ss.inputs:
		ss.inputs = true
	default:
		return nil, linkErrError // the channel is linked already
	}
	return ss, linkOK
}

func (s *Server) serveMain(conn net.Conn, mini bool) {
	ss, ok := s.newSession()
	if !ok {
		return
	}
	defer func() {
		ss.cancel()
		s.mu.Lock()
		delete(s.sessions, ss.id)
		s.mu.Unlock()
	}()
	le := binary.LittleEndian
	var serial uint64
	write := func(typ uint16, body []byte) error {
		serial++
		_, err := conn.Write(append(appendHeader(nil, mini, serial, typ, len(body)), body...))
		return err
	}
	init := make([]byte, 0, 32)
	init = le.AppendUint32(init, ss.id)
	init = le.AppendUint32(init, 1) // display_channels_hint
	init = le.AppendUint32(init, 3) // supported_mouse_modes: SERVER|CLIENT
	init = le.AppendUint32(init, 1) // current_mouse_mode: SERVER
	init = le.AppendUint32(init, 0) // agent_connected
	init = le.AppendUint32(init, 0) // agent_tokens
	init = le.AppendUint32(init, uint32(time.Now().UnixMilli()))
	init = le.AppendUint32(init, 0) // ram_hint
	if err := write(msgMainInit, init); err != nil {
		s.log.Info("loadgen: main channel: send MAIN_INIT", "session", ss.id, "err", err)
		return
	}
	rd := newMsgReader(conn, mini, 4<<10)
	for {
		typ, size, err := rd.header()
		if err == nil {
			switch {
			case typ == msgcMainAttach:
				err = rd.skip(typ, size)
				if err == nil {
					list := le.AppendUint32(nil, 2)
					list = append(list, chanDisplay, 0, chanInputs, 0)
					err = write(msgMainChannels, list)
				}
			case typ >= msgcAckSync && typ <= msgcDisconnecting, typ >= msgcMainClientInfo && typ <= 113:
				// Flow control on a channel that does not use it, PONGs,
				// client info, mouse modes and agent traffic: nothing to do.
				if size > maxClientMessage {
					err = fmt.Errorf("%w: main channel message type %d of %d bytes", ErrProtocol, typ, size)
				} else {
					err = rd.skip(typ, size)
				}
			default:
				err = fmt.Errorf("%w: unknown main channel message type %d", ErrProtocol, typ)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
				s.log.Info("loadgen: main channel ended", "session", ss.id, "err", err)
			}
			return
		}
	}
}

func (s *Server) serveInputs(ss *srvSession, conn net.Conn, mini bool) {
	stop := context.AfterFunc(ss.ctx, func() { conn.Close() })
	defer stop()
	// INPUTS_INIT: keyboard_modifiers (u16), none held.
	if _, err := conn.Write(append(appendHeader(nil, mini, 1, msgInputsInit, 2), 0, 0)); err != nil {
		return
	}
	rd := newMsgReader(conn, mini, 512)
	for {
		typ, size, err := rd.header()
		if err == nil && size > maxClientMessage {
			err = fmt.Errorf("%w: inputs message type %d of %d bytes", ErrProtocol, typ, size)
		}
		if err == nil {
			err = rd.skip(typ, size) // keys and mouse go nowhere
		}
		if err != nil {
			return
		}
	}
}
