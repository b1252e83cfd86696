package sim

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Session is the SPICE session behind a control socket: what status,
// send_key, paste and screenshot act on, and where events come from. The
// simulated session (New) is one; fakeryll/live serves a real one. The
// Server owns everything the protocol says (hello, subscriptions, the
// per-client queue, busy, the socket file), so a Session only answers
// for the SPICE side.
//
// The methods other than Run are called from the client's request loop,
// one request at a time; they must not block for long, because answers
// go out strictly in order.
type Session interface {
	// Run runs the session. The server calls it once, right after the
	// control socket started listening (or failed to, with a file in
	// the way), as ryll starts its SPICE session after its socket. Run
	// calls ready once the session can answer requests: the server
	// accepts no client before. Run returns nil when ctx is done, and an
	// error wrapping ErrSessionEnded when the session ended on its own;
	// the server then closes and unlinks the socket.
	Run(ctx context.Context, srv *Server, ready func()) error
	// Status is what the status verb reports at now.
	Status(now time.Time) Status
	// SendKey types one key: down, up or press (down then up), with a
	// scancode the server has checked the way the protocol version
	// asks. arrival is when the request was read.
	SendKey(arrival time.Time, scancode uint16, state KeyState) *Error
	// Paste starts typing text, one character every charDelay. It
	// refuses with the error to answer, or returns the typing, which the
	// server runs on its own goroutine after the answer is out.
	Paste(arrival time.Time, text string, charDelay time.Duration) (PasteJob, *Error)
	// Screenshot returns the surface's pixels; the server encodes them.
	Screenshot(now time.Time, surfaceID uint32) (*image.RGBA, *Error)
}

// KeyState is send_key's state parameter.
type KeyState string

// The three key states of send_key.
const (
	KeyDown  KeyState = "down"
	KeyUp    KeyState = "up"
	KeyPress KeyState = "press"
)

// PasteJob types an accepted paste. ctx ends when the client that asked
// goes away or the session stops; ok false means there is nothing to
// report (the typing was abandoned), else out is sent to that client as
// paste_completed or paste_failed.
type PasteJob func(ctx context.Context) (out PasteOutcome, ok bool)

// PasteOutcome is how a paste ended: Failed is empty on success.
type PasteOutcome struct {
	CharsSent uint32
	Failed    string
}

// ServerConfig is what the protocol server itself needs.
type ServerConfig struct {
	// SocketPath is where the control socket is bound (--control-socket).
	SocketPath string
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
	// ProtocolVersion is the version hello reports (major at least 1).
	ProtocolVersion Version
	// QueueDrop is the event queue's overflow model.
	QueueDrop QueueDrop
	// MalformedEvery writes every Nth surface_drawn and dropped event
	// with data that does not decode (0: never), as a broken server would.
	MalformedEvery int
}

// ServerStats counts what the server did, for tests and logs.
type ServerStats struct {
	Dropped     uint64 // events discarded by client queues (backpressure)
	Connections uint64 // control clients accepted
	Busy        uint64 // connections refused with busy
	Ignored     uint64 // requests read while hung, never answered
}

// Server serves ryll's control-socket protocol (v1.x, with the
// behaviours of ryll's code listed in the README) for one Session.
// Create it with NewServer and start it with Run.
type Server struct {
	cfg      ServerConfig
	sess     Session
	log      *slog.Logger
	listen   func(path string) (net.Listener, os.FileInfo, error)
	ready    chan struct{}
	hung     chan struct{}
	hangOnce sync.Once
	running  atomic.Bool
	wg       sync.WaitGroup

	mu     sync.Mutex
	client *client
	limbo  []net.Conn // connections accepted while hung
	stats  ServerStats
}

// NewServer validates cfg and returns a server for sess that has not
// started yet.
func NewServer(cfg ServerConfig, sess Session) (*Server, error) {
	if cfg.SocketPath == "" {
		return nil, errors.New("new control server: no control socket path")
	}
	if cfg.ProtocolVersion.Major < 1 {
		return nil, fmt.Errorf("new control server: protocol version %v: want major 1 or more", cfg.ProtocolVersion)
	}
	if sess == nil {
		return nil, errors.New("new control server: no session")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:    cfg,
		sess:   sess,
		log:    log,
		listen: listenUnix,
		ready:  make(chan struct{}),
		hung:   make(chan struct{}),
	}, nil
}

// Ready is closed once the control socket accepts connections. It is
// never closed when the session runs without a socket (a regular file at
// the socket path).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Hung is closed once Hang has been called.
func (s *Server) Hung() <-chan struct{} { return s.hung }

// Hang makes the server stop answering, as a wedged ryll does: no more
// answers or events, connections and the socket stay open, no new
// connection is accepted. Shutdown still works.
func (s *Server) Hang() { s.hangOnce.Do(func() { close(s.hung) }) }

func (s *Server) isHung() bool {
	select {
	case <-s.hung:
		return true
	default:
		return false
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if s.client != nil {
		st.Dropped += s.client.q.dropped()
	}
	return st
}

// Run binds the socket, runs the session and serves clients until ctx is
// done (the process got SIGINT) or the session ends. Either way it closes
// the listener, unlinks the socket and waits for every goroutine before
// returning nil: ryll exits 0 in both cases. It returns an error only when
// the socket could not be set up. Like ryll, it deletes nothing but a
// socket at the socket path: a regular file there is logged as an error
// and the session runs on without a control socket. Run may be called
// once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("run control server: already started")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	ln, info, err := s.listen(s.cfg.SocketPath)
	switch {
	case errors.Is(err, errNotASocket):
		// ryll's control server gives up and the SPICE session runs on.
		s.log.Error("control socket not started; running without it", "err", err)
		ln = nil
	case err != nil:
		return err
	default:
		s.log.Info("control socket listening", "path", s.cfg.SocketPath, "protocol_version", s.cfg.ProtocolVersion.String())
	}

	var readyOnce sync.Once
	ready := func() {
		readyOnce.Do(func() {
			if ln != nil {
				close(s.ready)
				s.wg.Go(func() { s.acceptLoop(ctx, ln) })
			}
		})
	}
	s.wg.Go(func() {
		err := s.sess.Run(ctx, s, ready)
		switch {
		case err == nil && ctx.Err() == nil:
			err = ErrSessionEnded
		case err != nil && !errors.Is(err, ErrSessionEnded):
			err = fmt.Errorf("%w: %w", ErrSessionEnded, err)
		}
		cancel(err)
	})

	<-ctx.Done()
	if cause := context.Cause(ctx); errors.Is(cause, ErrSessionEnded) {
		s.log.Info("SPICE session ended; closing control socket", "why", cause.Error())
	} else {
		s.log.Info("shutdown requested; closing control socket")
	}
	cancel(nil)
	var closeErr, unlinkErr error
	if ln != nil {
		closeErr = ln.Close()
		unlinkErr = unlinkIfOurs(s.cfg.SocketPath, info)
	}
	s.mu.Lock()
	if s.client != nil {
		_ = s.client.nc.Close()
	}
	for _, nc := range s.limbo {
		_ = nc.Close()
	}
	s.limbo = nil
	s.mu.Unlock()
	s.wg.Wait()
	if unlinkErr != nil {
		s.log.Warn("could not unlink control socket", "err", unlinkErr)
	}
	if closeErr != nil && !errors.Is(closeErr, net.ErrClosed) {
		s.log.Debug("closing control listener", "err", closeErr)
	}
	return nil
}

// Wants reports whether the connected client subscribed to event, so a
// session can skip building events nobody reads.
func (s *Server) Wants(event string) bool {
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	return c != nil && c.subscribed(event)
}

// Emit queues one event for the connected client if it subscribed to
// it. It never blocks: a full queue loses the event as ryll's does.
func (s *Server) Emit(event string, data any) {
	s.EmitN(event, data, 1)
}

// EmitN queues the same event n times (a burst of identical draws),
// encoding it once.
func (s *Server) EmitN(event string, data any, n int) {
	if n <= 0 || !s.Wants(event) {
		return
	}
	line := encodeLine(eventMsg{Event: event, Data: data})
	for range n {
		s.push(event, line)
	}
}

// Lost reports n events the session itself lost before they reached the
// queue; they are counted and reported in the next dropped event, as if
// the queue had refused them.
func (s *Server) Lost(n uint64) {
	if n == 0 || s.isHung() {
		return
	}
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	if c != nil {
		c.q.lose(n)
	}
}

// push queues an encoded event for the current client. It never blocks.
func (s *Server) push(name string, line []byte) {
	if s.isHung() {
		return
	}
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	if c != nil && c.subscribed(name) {
		c.q.push(line)
	}
}
