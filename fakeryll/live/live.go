// Package live serves ryll's control socket from a real SPICE session.
//
// It is the Session behind fakeryll's `--fake-session spice`: the
// control-socket protocol is sim.Server's, the SPICE side is a
// fakeryll/spice session to a real server (QEMU's spice-server, or a
// proxy in front of one). What the control client sees is what ryll's
// code produces:
//   - surface_drawn for every draw message, stamped when the whole message
//     was read (spice.Draw.Received), with ryll's fields and two extras
//     (the damaged box and the message type);
//   - latency: the gap between consecutive server PINGs on the main
//     channel, stamped just after the PONG went out;
//   - agent_connected on the agent's transitions; status from the session;
//   - send_key to the inputs channel, through a 256-event buffer that is
//     drained once the session is linked (keys sent before are not lost);
//   - paste and screenshot answer not_implemented: this client decodes no
//     images and types no text.
//
// The session is dialled after the socket listens, as ryll does, so a
// link failure (a wrong password, say) ends the session: the socket is
// closed and unlinked and fakeryll exits 0, as ryll does in headless mode.
package live

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
)

// Conn is what the session needs of a SPICE session; *spice.Session is
// one. It exists so the session can be tested without a server.
type Conn interface {
	Events() <-chan spice.Event
	Done() <-chan struct{}
	Err() error
	Close() error
	Surfaces() []spice.Surface
	AgentConnected() bool
	KeyDown(ctx context.Context, scancode uint16) error
	KeyUp(ctx context.Context, scancode uint16) error
}

// Dialer opens a Conn; Dial is the real one.
type Dialer func(ctx context.Context, cfg spice.Config) (Conn, error)

// Dial links a real SPICE session with spice.Dial.
func Dial(ctx context.Context, cfg spice.Config) (Conn, error) {
	s, err := spice.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Session is a sim.Session backed by a real SPICE session. Create it with
// New and hand it to sim.NewServer.
type Session struct {
	cfg  spice.Config
	log  *slog.Logger
	dial Dialer
	keys chan keyEvent // ryll's bounded input queue
	// noRect leaves rect out of surface_drawn (OmitRect); set before Run.
	noRect bool

	mu    sync.Mutex
	start time.Time // session-relative clock for produced_at_secs
	conn  Conn      // nil until linked
	ended bool
}

// keyEvent is one KEY_DOWN or KEY_UP waiting for the inputs channel.
type keyEvent struct {
	scancode uint16
	up       bool
}

// New returns a session that dials cfg with dial (nil means Dial) when
// the server runs it. cfg.Logger, when nil, becomes log.
func New(cfg spice.Config, log *slog.Logger, dial Dialer) *Session {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	if dial == nil {
		dial = Dial
	}
	return &Session{cfg: cfg, log: log, dial: dial, keys: make(chan keyEvent, sim.InputQueueCapacity)}
}

// Run links the SPICE session and relays its events until ctx is done
// (nil) or the session ends (an error wrapping sim.ErrSessionEnded and
// the cause, a failed link among them).
func (s *Session) Run(ctx context.Context, srv *sim.Server, ready func()) error {
	s.mu.Lock()
	s.start = time.Now()
	s.mu.Unlock()
	ready() // the socket answers while the link is under way, as ryll's does
	conn, err := s.dial(ctx, s.cfg)
	if err != nil {
		s.end()
		if ctx.Err() != nil {
			return nil
		}
		s.log.Error("SPICE connection failed", "err", err)
		return fmt.Errorf("%w: connect: %w", sim.ErrSessionEnded, err)
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	s.log.Info("SPICE session established")

	kctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.sendKeys(kctx, conn) })
	defer func() {
		cancel()
		wg.Wait()
		s.end()
		_ = conn.Close()
	}()

	var lastPing time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-conn.Events():
			if !ok {
				<-conn.Done()
				why := conn.Err()
				if why == nil {
					why = errors.New("the SPICE session ended")
				}
				return fmt.Errorf("%w: %w", sim.ErrSessionEnded, why)
			}
			s.relay(srv, ev, &lastPing)
		}
	}
}

func (s *Session) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

// Draw is the surface_drawn payload: ryll's fields, then the damaged box
// as Kerbside's key-to-draw rig adds it to a patched ryll (rect: [left,
// top, right, bottom], which the loadtest reads to keep a busy guest's
// activity apart from the key's repaint; left out with NoRect), the same
// box as an object and the SPICE message type, which ryll does not send
// and clients ignore.
type Draw struct {
	sim.SurfaceDrawn
	Rect        *[4]int32 `json:"rect,omitempty"`
	Box         Box       `json:"box"`
	MessageType string    `json:"message_type"`
}

// NoRectKnob (FAKERYLL_NO_RECT=1) leaves rect out of every surface_drawn,
// as ryll 1.2 does, so a test can show what the loadtest does without it.
// It follows the simulation knobs' convention but is the real session's.
var NoRectKnob = sim.Knob{
	Name:    "no-rect",
	Default: "0",
	Usage:   "1 leaves the draw rectangle (rect [l,t,r,b]) out of surface_drawn in a real SPICE session, as ryll 1.2 does",
}

// ParseNoRect reads NoRectKnob's value: 0 or 1.
func ParseNoRect(v string) (bool, error) {
	switch strings.TrimSpace(v) {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s=%q: want 0 or 1", NoRectKnob.EnvName(), v)
}

// OmitRect makes the session leave rect out of surface_drawn (NoRectKnob).
// Call it before Run.
func (s *Session) OmitRect() { s.noRect = true }

// Box is a draw's damaged area in surface pixels.
type Box struct {
	Top    int32 `json:"top"`
	Left   int32 `json:"left"`
	Bottom int32 `json:"bottom"`
	Right  int32 `json:"right"`
}

// relay turns one SPICE event into control-socket events. lastPing is the
// previous main-channel PING, for the latency sample.
func (s *Session) relay(srv *sim.Server, ev spice.Event, lastPing *time.Time) {
	switch e := ev.(type) {
	case spice.Draw:
		if !srv.Wants(sim.EventSurfaceDrawn) {
			return
		}
		d := Draw{
			SurfaceDrawn: sim.SurfaceDrawn{
				DisplayChannelID: e.Channel,
				SurfaceID:        e.Surface,
				ProducedAtSecs:   e.Received.Sub(s.started()).Seconds(),
				WallclockUS:      e.Received.UnixMicro(),
			},
			Box:         Box{Top: e.Box.Top, Left: e.Box.Left, Bottom: e.Box.Bottom, Right: e.Box.Right},
			MessageType: e.Type.String(),
		}
		if !s.noRect {
			d.Rect = &[4]int32{e.Box.Left, e.Box.Top, e.Box.Right, e.Box.Bottom}
		}
		srv.Emit(sim.EventSurfaceDrawn, d)
	case spice.Ping:
		prev := *lastPing
		*lastPing = e.Received
		if prev.IsZero() {
			return // the first PING has nothing to be a gap from
		}
		gap := e.Received.Sub(prev)
		// The spice client answered the PING before reporting it, so
		// now is after the PONG, where ryll stamps the sample.
		srv.Emit(sim.EventLatency, sim.Latency{
			SampleMS:    float64(gap/time.Microsecond) / 1000,
			WallclockUS: time.Now().UnixMicro(),
		})
	case spice.AgentConnected:
		srv.Emit(sim.EventAgentConnected, sim.AgentConnected{Connected: e.Connected})
	case spice.Dropped:
		// The SPICE client's own buffer overflowed: those draws never
		// reached the queue, and the client must hear that they are lost.
		s.log.Warn("SPICE events lost before the control queue", "count", e.Count)
		srv.Lost(e.Count)
	case spice.SurfaceCreated:
		s.log.Debug("surface created", "channel", e.Channel, "surface", e.ID, "width", e.Width, "height", e.Height)
	case spice.SurfaceDestroyed:
		s.log.Debug("surface destroyed", "channel", e.Channel, "surface", e.ID)
	}
}

func (s *Session) started() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start
}

// sendKeys drains the input queue into the inputs channel, in order.
func (s *Session) sendKeys(ctx context.Context, conn Conn) {
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-s.keys:
			var err error
			if k.up {
				err = conn.KeyUp(ctx, k.scancode)
			} else {
				err = conn.KeyDown(ctx, k.scancode)
			}
			if err != nil && ctx.Err() == nil {
				// A failed write ends the SPICE session, and Run with it.
				s.log.Warn("sending a key to the inputs channel", "err", err)
			}
		}
	}
}

// Status reports the real session: spice_connected stays true until it
// ends (ryll's starts true, before the link), the agent as the main
// channel last said, and every surface that exists.
func (s *Session) Status(time.Time) sim.Status {
	s.mu.Lock()
	conn, ended := s.conn, s.ended
	s.mu.Unlock()
	st := sim.Status{SpiceConnected: !ended, Surfaces: []sim.SurfaceInfo{}}
	if conn == nil {
		return st
	}
	st.AgentConnected = conn.AgentConnected()
	for _, sf := range conn.Surfaces() {
		st.Surfaces = append(st.Surfaces, sim.SurfaceInfo{ChannelID: sf.Channel, SurfaceID: sf.ID, Width: sf.Width, Height: sf.Height})
	}
	return st
}

// SendKey queues the key's events for the inputs channel: one for down or
// up, two for press. Like ryll, the answer means "queued", and a full
// queue (or an ended session) is internal_error.
func (s *Session) SendKey(_ time.Time, scancode uint16, state sim.KeyState) *sim.Error {
	if _, err := spice.WireScancode(scancode, false); err != nil {
		return sim.Errorf(sim.CodeBadParams, "%v", err)
	}
	evs := []keyEvent{{scancode: scancode}}
	switch state {
	case sim.KeyUp:
		evs = []keyEvent{{scancode: scancode, up: true}}
	case sim.KeyPress:
		evs = append(evs, keyEvent{scancode: scancode, up: true})
	}
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended {
		return sim.Errorf(sim.CodeInternalError, "input channel closed or full")
	}
	for i, ev := range evs {
		select {
		case s.keys <- ev:
		default:
			if i > 0 {
				return sim.Errorf(sim.CodeInternalError, "input channel closed or full (after key-down)")
			}
			return sim.Errorf(sim.CodeInternalError, "input channel closed or full")
		}
	}
	return nil
}

// Paste is not implemented: the protocol allows not_implemented.
func (s *Session) Paste(time.Time, string, time.Duration) (sim.PasteJob, *sim.Error) {
	return nil, sim.Errorf(sim.CodeNotImplemented, "paste is not implemented by fakeryll's SPICE session")
}

// Screenshot is not implemented (no image is decoded); a surface that
// does not exist is still no_such_surface.
func (s *Session) Screenshot(now time.Time, surfaceID uint32) (*image.RGBA, *sim.Error) {
	for _, sf := range s.Status(now).Surfaces {
		if sf.SurfaceID == surfaceID {
			return nil, sim.Errorf(sim.CodeNotImplemented, "screenshot is not implemented by fakeryll's SPICE session: it decodes no images")
		}
	}
	return nil, sim.Errorf(sim.CodeNoSuchSurface, "no surface %d in this session", surfaceID)
}
