package spice

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Config says where the SPICE server is and how to authenticate, in the
// terms of a virt-viewer .vv file.
type Config struct {
	Host string
	// Port is the plain TCP port (0: none). A channel that the server
	// answers NEED_SECURED on moves to TLSPort when one is set.
	Port int
	// TLSPort is the TLS port (0: none). With no Port, every channel
	// links over TLS.
	TLSPort int
	// Password is the SPICE ticket; the zero value is the empty password
	// a server with ticketing disabled expects. It is never logged.
	Password secret.String
	// CA is the PEM CA bundle the server certificate must chain to
	// (the .vv "ca"); empty means the system roots.
	CA []byte
	// HostSubject pins the server certificate subject (the .vv
	// "host-subject", e.g. "C=US,O=Shaken Fist,CN=Kerbside Proxy");
	// empty means the certificate must name Host instead.
	HostSubject string
	// Logger receives the session's log lines; nil discards them.
	Logger *slog.Logger
	// LinkTimeout bounds Dial from TCP connect to the last channel
	// linked, so a server that stops talking mid-link cannot hang it.
	// Zero means DefaultLinkTimeout. The Dial context can shorten it.
	LinkTimeout time.Duration
	// EventBuffer is the capacity of Events; zero means
	// DefaultEventBuffer. When it is full, events are dropped and counted
	// (see Dropped), never waited for.
	EventBuffer int
}

// Defaults for Config's zero values.
const (
	DefaultLinkTimeout = 15 * time.Second
	DefaultEventBuffer = 4096
)

// writeTimeout bounds every write to the server (ACKs, PONGs, keys): a
// server that stops reading ends the session instead of blocking it.
const writeTimeout = 10 * time.Second

// Errors a session ends with or Dial returns.
var (
	// ErrClosed: Close was called.
	ErrClosed = errors.New("spice session closed")
	// ErrServerClosed: the server closed a channel's connection.
	ErrServerClosed = errors.New("the server closed the connection")
	// ErrLinkTimeout: the server did not finish the link within
	// Config.LinkTimeout.
	ErrLinkTimeout = errors.New("the server did not complete the link in time")
	// ErrNoInputs: the server offers no inputs channel, so keys cannot
	// be sent.
	ErrNoInputs = errors.New("the server has no inputs channel")
)

// Session is a live SPICE session: one main channel, the display channels
// the server lists and its first inputs channel. Its methods are safe for
// concurrent use.
type Session struct {
	cfg    Config
	log    *slog.Logger
	tlsCfg *tls.Config

	events      chan Event
	emitMu      sync.Mutex
	pendingDrop uint64
	dropped     atomic.Uint64

	sessionID atomic.Uint32
	agent     atomic.Bool
	listReady chan []channelID // the main channel's CHANNELS_LIST, once

	mu       sync.Mutex
	channels []*channel
	displays []*display
	inputs   *channel
	ended    bool
	err      error
	wg       sync.WaitGroup
	done     chan struct{}
}

type channelID struct {
	typ ChannelType
	id  uint8
}

// Dial links a session: the main channel, then (once the server has sent
// MAIN_INIT and, after ATTACH_CHANNELS, its channel list) every display
// channel and the first inputs channel. It returns when all are linked,
// so KeyDown works at once; the first SurfaceCreated usually follows
// within milliseconds. ctx and Config.LinkTimeout bound the whole set-up;
// ctx does not bound the session afterwards (use Close).
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Session{
		cfg:       cfg,
		log:       cfg.Logger,
		listReady: make(chan []channelID, 1),
		done:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.LinkTimeout <= 0 {
		s.cfg.LinkTimeout = DefaultLinkTimeout
	}
	if cfg.EventBuffer <= 0 {
		s.cfg.EventBuffer = DefaultEventBuffer
	}
	s.events = make(chan Event, s.cfg.EventBuffer)
	if cfg.TLSPort != 0 {
		tc, err := tlsConfig(cfg.Host, cfg.CA, cfg.HostSubject)
		if err != nil {
			return nil, fmt.Errorf("spice: %w", err)
		}
		s.tlsCfg = tc
	}

	lctx, cancel := context.WithTimeout(ctx, s.cfg.LinkTimeout)
	defer cancel()
	established := false
	defer func() {
		if !established {
			s.fail(errors.New("dial abandoned"))
			<-s.done
		}
	}()

	main, err := s.open(ctx, lctx, channelID{ChannelMain, 0}, 0)
	if err != nil {
		return nil, fmt.Errorf("spice: %w", err)
	}
	s.start(main)
	var list []channelID
	select {
	case list = <-s.listReady:
	case <-s.done:
		return nil, fmt.Errorf("spice: main channel ended before the server listed its channels: %w", s.Err())
	case <-lctx.Done():
		return nil, fmt.Errorf("spice: wait for MAIN_INIT and CHANNELS_LIST: %w", s.linkCtxErr(ctx))
	}
	sid := s.sessionID.Load()
	haveInputs := false
	for _, ch := range list {
		switch {
		case ch.typ == ChannelDisplay:
			c, err := s.open(ctx, lctx, ch, sid)
			if err != nil {
				return nil, fmt.Errorf("spice: %w", err)
			}
			c.display = newDisplay(ch.id)
			s.start(c)
			// pixmap_cache_id, pixmap_cache_size (pixels), glz_dictionary_id,
			// glz_dictionary_window_size (pixels): 14 bytes.
			init := []byte{1}
			init = binary.LittleEndian.AppendUint64(init, 8<<20)
			init = append(init, 1)
			init = binary.LittleEndian.AppendUint32(init, 8<<20)
			if err := c.send(lctx, msgcDisplayInit, init); err != nil {
				return nil, fmt.Errorf("spice: send DISPLAY_INIT on display channel %d: %w", ch.id, err)
			}
		case ch.typ == ChannelInputs && !haveInputs:
			c, err := s.open(ctx, lctx, ch, sid)
			if err != nil {
				return nil, fmt.Errorf("spice: %w", err)
			}
			haveInputs = true
			s.start(c)
		}
	}
	if len(s.Displays()) == 0 {
		s.log.Warn("the server lists no display channel: no draws will arrive")
	}
	established = true
	return s, nil
}

func (c Config) validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("the Host field is empty"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("the Port field (%d) is not a TCP port", c.Port))
	}
	if c.TLSPort < 0 || c.TLSPort > 65535 {
		errs = append(errs, fmt.Errorf("the TLSPort field (%d) is not a TCP port", c.TLSPort))
	}
	if c.Port == 0 && c.TLSPort == 0 {
		errs = append(errs, errors.New("neither Port nor TLSPort is set"))
	}
	if len(c.Password.Reveal()) > maxPasswordLength {
		errs = append(errs, ErrPasswordTooLong)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spice: bad config: %w", err)
	}
	return nil
}

// linkCtxErr says why the link context ended: the caller's context, or
// the LinkTimeout.
func (s *Session) linkCtxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w (LinkTimeout %s)", ErrLinkTimeout, s.cfg.LinkTimeout)
}

// open links one channel: on the plain port when there is one (moving to
// the TLS port if it answers NEED_SECURED), else on the TLS port.
func (s *Session) open(ctx, lctx context.Context, ch channelID, connID uint32) (*channel, error) {
	req := linkRequest{connectionID: connID, channel: ch.typ, channelID: ch.id, password: s.cfg.Password.Reveal()}
	if s.cfg.Port == 0 {
		return s.linkOn(ctx, lctx, s.cfg.TLSPort, true, req)
	}
	c, err := s.linkOn(ctx, lctx, s.cfg.Port, false, req)
	var le *LinkError
	if errors.As(err, &le) && le.Code == LinkErrNeedSecured && s.cfg.TLSPort != 0 {
		s.log.Info("plain port answered NEED_SECURED; moving to the TLS port", "channel", ch.typ.String(), "tls_port", s.cfg.TLSPort)
		return s.linkOn(ctx, lctx, s.cfg.TLSPort, true, req)
	}
	return c, err
}

func (s *Session) linkOn(ctx, lctx context.Context, port int, useTLS bool, req linkRequest) (*channel, error) {
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(port))
	where := addr
	if useTLS {
		where += " (TLS)"
	}
	what := fmt.Sprintf("link %s channel %d on %s", req.channel, req.channelID, where)
	var d net.Dialer
	raw, err := d.DialContext(lctx, "tcp", addr)
	if err != nil {
		if lctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", what, s.linkCtxErr(ctx))
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// The link is bounded by lctx: its deadline, and a past deadline the
	// moment it is cancelled, so no read or write here can hang.
	if dl, ok := lctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(lctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	conn := raw
	var reply linkReply
	if useTLS {
		tc := tls.Client(raw, s.tlsCfg)
		err = tc.HandshakeContext(lctx)
		if err != nil {
			err = fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	if err == nil {
		reply, err = link(conn, req)
	}
	stopped := stop()
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's deadline is lctx's: its timer fires a moment
		// later, and then says whose deadline it was.
		select {
		case <-lctx.Done():
			stopped = false
		case <-time.After(time.Second):
		}
	}
	if !stopped {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", what, s.linkCtxErr(ctx))
	}
	if err != nil {
		conn.Close()
		var le *LinkError
		if errors.As(err, &le) { // it names the channel itself
			return nil, fmt.Errorf("link on %s: %w", where, err)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	raw.SetDeadline(time.Time{})
	s.log.Debug("linked", "channel", req.channel.String(), "id", req.channelID, "tls", useTLS, "mini_header", reply.mini)
	return &channel{s: s, typ: req.channel, id: req.channelID, conn: conn, mini: reply.mini, rd: newMsgReader(conn, reply.mini)}, nil
}

// start registers c and runs its reader. After the session has ended it
// only closes c.
func (s *Session) start(c *channel) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		c.conn.Close()
		return
	}
	s.channels = append(s.channels, c)
	if c.display != nil {
		s.displays = append(s.displays, c.display)
	}
	if c.typ == ChannelInputs {
		s.inputs = c
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		err := c.readLoop()
		s.fail(fmt.Errorf("%s channel %d: %w", c.typ, c.id, err))
	}()
}

// fail ends the session with err (the first cause wins): every connection
// is closed, and once every reader has returned, Events is closed and then
// Done.
func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended, s.err = true, err
	chans := s.channels
	s.mu.Unlock()
	if !errors.Is(err, ErrClosed) {
		s.log.Info("spice session ended", "err", err)
	}
	for _, c := range chans {
		c.conn.Close()
	}
	go func() {
		s.wg.Wait()
		s.emitMu.Lock()
		close(s.events)
		s.emitMu.Unlock()
		close(s.done)
	}()
}

// emit hands an event to the consumer without ever waiting for it.
func (s *Session) emit(e Event) {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	if s.pendingDrop > 0 {
		select {
		case s.events <- Dropped{Count: s.pendingDrop}:
			s.pendingDrop = 0
		default:
			s.pendingDrop++
			s.dropped.Add(1)
			return
		}
	}
	select {
	case s.events <- e:
	default:
		s.pendingDrop++
		s.dropped.Add(1)
	}
}

// Events delivers the session's events in the order each channel's
// reader saw them. It is closed after the session ends, once the events
// already queued are delivered.
func (s *Session) Events() <-chan Event { return s.events }

// Dropped is the number of events lost so far because Events was full.
func (s *Session) Dropped() uint64 { return s.dropped.Load() }

// Done is closed when the session has ended and its goroutines returned.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is nil while the session is live; after Done it says why it ended
// (ErrClosed after Close; ErrServerClosed, a *LinkError, ErrProtocol or an
// I/O error otherwise, wrapped with the channel).
func (s *Session) Err() error {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	default:
		return nil
	}
}

// Close ends the session and waits for its goroutines. It is safe to call
// more than once.
func (s *Session) Close() error {
	s.fail(ErrClosed)
	<-s.done
	return nil
}

// SessionID is the main channel's session id from MAIN_INIT.
func (s *Session) SessionID() uint32 { return s.sessionID.Load() }

// AgentConnected reports whether the guest's SPICE agent is connected.
func (s *Session) AgentConnected() bool { return s.agent.Load() }

// Displays lists the display channel ids linked.
func (s *Session) Displays() []uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]uint8, len(s.displays))
	for i, d := range s.displays {
		ids[i] = d.channel
	}
	return ids
}

// Surfaces lists the surfaces that exist now, by channel and id.
func (s *Session) Surfaces() []Surface {
	s.mu.Lock()
	displays := s.displays
	s.mu.Unlock()
	var out []Surface
	for _, d := range displays {
		out = d.snapshot(out)
	}
	sortSurfaces(out)
	return out
}

// KeyDown sends KEY_DOWN for a logical AT set-1 scancode (see
// WireScancode for the encoding of 0xE0-prefixed keys).
func (s *Session) KeyDown(ctx context.Context, scancode uint16) error {
	return s.key(ctx, scancode, false)
}

// KeyUp sends KEY_UP (the break code) for a logical AT set-1 scancode.
func (s *Session) KeyUp(ctx context.Context, scancode uint16) error {
	return s.key(ctx, scancode, true)
}

func (s *Session) key(ctx context.Context, scancode uint16, up bool) error {
	code, err := WireScancode(scancode, up)
	if err != nil {
		return fmt.Errorf("spice: send key: %w", err)
	}
	typ, name := uint16(msgcInputsKeyDown), "KEY_DOWN"
	if up {
		typ, name = msgcInputsKeyUp, "KEY_UP"
	}
	s.mu.Lock()
	in, ended, why := s.inputs, s.ended, s.err
	s.mu.Unlock()
	switch {
	case ended:
		return fmt.Errorf("spice: send %s %#x: session ended: %w", name, scancode, why)
	case in == nil:
		return fmt.Errorf("spice: send %s %#x: %w", name, scancode, ErrNoInputs)
	}
	if err := in.send(ctx, typ, le32(code)); err != nil {
		err = fmt.Errorf("spice: send %s %#x on the inputs channel: %w", name, scancode, err)
		if ctx.Err() == nil {
			s.fail(err) // a failed or partial write breaks the channel
		}
		return err
	}
	return nil
}

// channel is one linked SPICE channel.
type channel struct {
	s       *Session
	typ     ChannelType
	id      uint8
	conn    net.Conn
	mini    bool
	rd      *msgReader
	display *display // display channels only

	wmu    sync.Mutex
	serial uint64

	// Owned by the reader goroutine.
	ackWindow, ackCount uint32
	disconnect          string
}

// send writes one message, bounded by ctx's deadline and writeTimeout.
func (c *channel) send(ctx context.Context, typ uint16, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline := time.Now().Add(writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetWriteDeadline(deadline)
	_, err := c.conn.Write(frame(c.mini, &c.serial, typ, body))
	return err
}

// readLoop reads until the connection ends. Flow control (ACK_SYNC, ACK)
// and PONGs are written from here, before any event is handed on, so
// nothing a consumer does can stall the server.
func (c *channel) readLoop() error {
	bg := context.Background()
	for {
		typ, body, err := c.rd.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if c.disconnect != "" {
					return fmt.Errorf("%w after DISCONNECTING (%s)", ErrServerClosed, c.disconnect)
				}
				return ErrServerClosed
			}
			return err
		}
		now := time.Now()
		if c.ackWindow > 0 {
			c.ackCount++
			if c.ackCount >= c.ackWindow {
				c.ackCount = 0
				if err := c.send(bg, msgcAck, nil); err != nil {
					return fmt.Errorf("send ACK: %w", err)
				}
			}
		}
		if err := c.handle(bg, typ, body, now); err != nil {
			return err
		}
	}
}

func (c *channel) handle(ctx context.Context, typ uint16, body []byte, now time.Time) error {
	short := func(name string, want int) error {
		return fmt.Errorf("%w: %s of %d bytes, want at least %d", ErrProtocol, name, len(body), want)
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(body[off:]) }
	switch typ {
	case msgSetAck:
		if len(body) < 8 {
			return short("SET_ACK", 8)
		}
		if err := c.send(ctx, msgcAckSync, body[0:4]); err != nil {
			return fmt.Errorf("send ACK_SYNC: %w", err)
		}
		c.ackWindow, c.ackCount = u32(4), 0
		return nil
	case msgPing:
		if len(body) < 12 {
			return short("PING", 12)
		}
		if err := c.send(ctx, msgcPong, body[0:12]); err != nil {
			return fmt.Errorf("send PONG: %w", err)
		}
		if c.typ == ChannelMain {
			c.s.emit(Ping{ID: u32(0), Size: len(body), Received: now})
		}
		return nil
	case msgDisconnecting:
		if len(body) >= 12 {
			c.disconnect = LinkErrorCode(u32(8)).String()
		}
		return nil
	case msgNotify:
		if len(body) >= 24 {
			n := min(int(u32(20)), len(body)-24, 512)
			c.s.log.Info("server notify", "channel", c.typ.String(), "message", string(body[24:24+n]))
		}
		return nil
	case msgMigrate, msgWaitForChannels:
		return nil
	}
	switch c.typ {
	case ChannelMain:
		return c.handleMain(ctx, typ, body, now)
	case ChannelDisplay:
		ev, err := c.display.handle(typ, body, now)
		if err != nil {
			return err
		}
		if ev != nil {
			c.s.emit(ev)
		}
		return nil
	}
	return nil // inputs: INIT, KEY_MODIFIERS, MOUSE_MOTION_ACK need no answer
}

func (c *channel) handleMain(ctx context.Context, typ uint16, body []byte, now time.Time) error {
	switch typ {
	case msgMainInit:
		if len(body) < 32 {
			return fmt.Errorf("%w: MAIN_INIT of %d bytes, want 32", ErrProtocol, len(body))
		}
		c.s.sessionID.Store(binary.LittleEndian.Uint32(body))
		c.s.agent.Store(binary.LittleEndian.Uint32(body[16:]) != 0)
		if err := c.send(ctx, msgcMainAttach, nil); err != nil {
			return fmt.Errorf("send ATTACH_CHANNELS: %w", err)
		}
	case msgMainChannelsList:
		list, err := parseChannelsList(body)
		if err != nil {
			return err
		}
		select {
		case c.s.listReady <- list:
		default: // a second list (after a migration) changes nothing here
		}
	case msgMainAgentConn, msgMainAgentConnTok:
		if !c.s.agent.Swap(true) {
			c.s.emit(AgentConnected{Connected: true, Received: now})
		}
	case msgMainAgentDisconn:
		if c.s.agent.Swap(false) {
			c.s.emit(AgentConnected{Connected: false, Received: now})
		}
	}
	return nil
}

// parseChannelsList reads CHANNELS_LIST: u32 count, then {type, id} pairs.
func parseChannelsList(body []byte) ([]channelID, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("%w: CHANNELS_LIST of %d bytes", ErrProtocol, len(body))
	}
	n := binary.LittleEndian.Uint32(body)
	if uint64(n)*2 > uint64(len(body)-4) {
		return nil, fmt.Errorf("%w: CHANNELS_LIST claims %d channels in %d bytes", ErrProtocol, n, len(body))
	}
	list := make([]channelID, n)
	for i := range list {
		list[i] = channelID{typ: ChannelType(body[4+2*i]), id: body[5+2*i]}
	}
	return list, nil
}
