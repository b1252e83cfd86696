package sim

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrSessionEnded is the cause Run's context is cancelled with when the
// SPICE session ends on its own (the simulator's crash-after knob, a real
// session closing or failing to link). Run still returns nil then,
// because ryll exits 0 when its headless session closes.
var ErrSessionEnded = errors.New("the SPICE session ended")

// Stats counts what the simulated session did, for tests and logs.
type Stats struct {
	KeyDowns        uint64 // key-downs received (send_key down/press and pasted characters)
	KeyDraws        uint64 // key-downs whose whole draw burst landed
	KeyNoDraw       uint64 // key-downs that drew nothing (no surface yet, or draws-per-key 0)
	DrawEvents      uint64 // surface_drawn events produced, delivered or not
	BackgroundDraws uint64 // surface_drawn events no key caused (background-rate)
	InputsBuffered  uint64 // input events held because the inputs channel was not up yet
	InputsRefused   uint64 // input events refused because that buffer was full
	Pings           uint64 // simulated server PINGs
	// ServerStats are the control server's own counters: dropped
	// events, connections, busy refusals, requests ignored while hung.
	ServerStats
}

// Sim is one simulated ryll process: a simulated SPICE session behind
// the control-socket Server. Create it with New and start it with Run.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	srv     *Server
	started chan struct{}
	sched   *scheduler
	running atomic.Bool

	mu         sync.Mutex
	start      time.Time
	surfacesAt time.Time
	agent      bool
	generation uint64
	keyRNG     *rand.Rand
	noiseRNG   *rand.Rand
	pingRNG    *rand.Rand
	truth      *truthWriter
	stats      Stats

	presses     int       // key-downs numbered so far
	lastKeyDraw time.Time // the last draw of the latest key burst
	inputsUp    bool
	inputsUpCh  chan struct{} // closed when the inputs channel is up
	inputSlots  int           // input events buffered before it was up
	heldKeys    []heldKey     // key-downs among them, in order
}

// heldKey is a key-down that arrived before the inputs channel was up.
type heldKey struct {
	press   int
	arrival time.Time
}

// InputQueueCapacity is how many input events ryll buffers in front of
// the SPICE inputs channel (its INPUT_CHANNEL_SIZE).
const InputQueueCapacity = 256

// New validates cfg and returns a simulator that has not started yet.
func New(cfg Config) (*Sim, error) {
	if cfg.SocketPath == "" {
		return nil, errors.New("new simulator: no control socket path")
	}
	if cfg.SurfaceWidth < 1 || cfg.SurfaceHeight < 1 {
		return nil, fmt.Errorf("new simulator: surface size %dx%d: build the config with DefaultConfig or LoadConfig", cfg.SurfaceWidth, cfg.SurfaceHeight)
	}
	if cfg.ProtocolVersion.Major < 1 {
		return nil, fmt.Errorf("new simulator: protocol version %v: build the config with DefaultConfig or LoadConfig", cfg.ProtocolVersion)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sim{
		cfg:        cfg,
		log:        log,
		started:    make(chan struct{}),
		inputsUpCh: make(chan struct{}),
		sched:      newScheduler(),
		keyRNG:     rand.New(rand.NewPCG(cfg.Seed, 1)),
		noiseRNG:   rand.New(rand.NewPCG(cfg.Seed, 2)),
		pingRNG:    rand.New(rand.NewPCG(cfg.Seed, 3)),
	}
	srv, err := NewServer(ServerConfig{
		SocketPath:      cfg.SocketPath,
		Logger:          log,
		ProtocolVersion: cfg.ProtocolVersion,
		QueueDrop:       cfg.QueueDrop,
		MalformedEvery:  cfg.MalformedEvery,
	}, simSession{s})
	if err != nil {
		return nil, fmt.Errorf("new simulator: %w", err)
	}
	s.srv = srv
	return s, nil
}

// Ready is closed once the control socket accepts connections. It is
// never closed when the session runs without a socket (a regular file at
// the socket path).
func (s *Sim) Ready() <-chan struct{} { return s.srv.Ready() }

// Started is closed once the simulated session has started, with or
// without a control socket.
func (s *Sim) Started() <-chan struct{} { return s.started }

// SessionStart is the moment the simulated SPICE session started, to the
// microsecond; display refresh ticks fall at SessionStart + k*refresh.
// It is the zero time before Ready is closed.
func (s *Sim) SessionStart() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start
}

// Hung is closed when the simulated hang (hang-after) begins.
func (s *Sim) Hung() <-chan struct{} { return s.srv.Hung() }

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.ServerStats = s.srv.Stats()
	return st
}

// alignMicro moves t back to a whole microsecond, keeping its monotonic
// reading, so that every modelled instant is exact on the wire.
func alignMicro(t time.Time) time.Time {
	return t.Add(-time.Duration(t.Nanosecond() % 1000))
}

// Run starts the session and serves the control socket until ctx is done
// (the process got SIGINT) or the session ends (crash-after). Either way
// it closes the listener, unlinks the socket and waits for every goroutine
// before returning nil. It returns an error only when the session could
// not start. Like ryll, it refuses to delete anything but a socket at the
// socket path: a regular file there is logged as an error and the session
// runs on without a control socket. Run may be called once.
func (s *Sim) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("run simulator: already started")
	}
	if d := s.cfg.StartupDelay; d > 0 {
		s.log.Debug("simulating startup delay", "delay", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	if s.cfg.TruthFile != "" {
		tw, err := newTruthWriter(s.cfg.TruthFile)
		if err != nil {
			return err
		}
		s.truth = tw
	}
	err := s.srv.Run(ctx)
	s.closeTruth()
	return err
}

// simSession is the simulated SPICE session as the Server sees it.
type simSession struct{ *Sim }

// Run starts the simulated session when the socket listens: its clock,
// every scheduled action, and the crash or hang.
func (s simSession) Run(ctx context.Context, srv *Server, ready func()) error {
	start := alignMicro(time.Now())
	s.mu.Lock()
	s.start = start
	s.surfacesAt = start.Add(s.cfg.SurfacesDelay)
	s.agent = s.cfg.Agent
	s.mu.Unlock()
	ended := make(chan struct{})
	var endOnce sync.Once
	s.scheduleSession(start, func() { endOnce.Do(func() { close(ended) }) })
	close(s.started)
	ready()
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.sched.run(sctx, srv.Hung()) })
	defer wg.Wait()
	defer cancel()
	select {
	case <-ctx.Done():
		return nil
	case <-ended:
		return ErrSessionEnded
	}
}

func (s simSession) Status(now time.Time) Status { return s.status(now) }

func (s simSession) SendKey(arrival time.Time, _ uint16, state KeyState) *Error {
	evs := []inputEvent{inputKeyDown}
	switch state {
	case KeyUp:
		evs = []inputEvent{inputOther}
	case KeyPress:
		evs = []inputEvent{inputKeyDown, inputOther}
	}
	if taken := s.input(arrival, evs...); taken < len(evs) {
		// ryll's bounded input queue, full before the inputs channel is up.
		if taken > 0 {
			return Errorf(CodeInternalError, "input channel closed or full (after key-down)")
		}
		return Errorf(CodeInternalError, "input channel closed or full")
	}
	return nil
}

// Paste types text as keystrokes through the inputs channel, as ryll
// does: it never needs the vdagent, so agent_not_connected never comes.
// The whole paste is one event in the input queue.
func (s simSession) Paste(arrival time.Time, text string, delay time.Duration) (PasteJob, *Error) {
	if s.input(arrival, inputOther) == 0 {
		return nil, Errorf(CodeInternalError, "input channel closed or full; paste not queued")
	}
	return func(ctx context.Context) (PasteOutcome, bool) {
		var sent uint32
		// Typing starts once the inputs channel is up.
		select {
		case <-ctx.Done():
			return PasteOutcome{}, false
		case <-s.inputsUpCh:
		}
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for i, r := range []rune(text) {
			if i > 0 && delay > 0 {
				timer.Reset(delay)
				select {
				case <-ctx.Done():
					return PasteOutcome{}, false
				case <-timer.C:
				}
			}
			if ctx.Err() != nil || s.srv.isHung() {
				return PasteOutcome{}, false
			}
			if !representable(r) {
				return PasteOutcome{CharsSent: sent, Failed: fmt.Sprintf("character U+%04X is not representable in US-QWERTY", r)}, true
			}
			s.input(alignMicro(time.Now()), inputKeyDown)
			sent++
		}
		return PasteOutcome{CharsSent: sent}, true
	}, nil
}

// representable reports whether r can be typed on a US-QWERTY keyboard.
func representable(r rune) bool {
	return (r >= 0x20 && r <= 0x7e) || r == '\n' || r == '\t'
}

func (s simSession) Screenshot(now time.Time, sid uint32) (*image.RGBA, *Error) {
	if sid != 0 || len(s.status(now).Surfaces) == 0 {
		return nil, Errorf(CodeNoSuchSurface, "no surface %d in this session", sid)
	}
	return renderSurface(s.cfg.SurfaceWidth, s.cfg.SurfaceHeight, s.currentGeneration()), nil
}

func (s *Sim) closeTruth() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.truth != nil {
		if err := s.truth.close(); err != nil {
			s.log.Warn("closing truth file", "err", err)
		}
		s.truth = nil
	}
}

// scheduleSession queues everything the session does on its own:
// PINGs, the surface appearing, the agent connecting, noise, flood,
// and the crash or hang.
func (s *Sim) scheduleSession(start time.Time, endSession func()) {
	cfg := s.cfg
	s.sched.at(start.Add(cfg.SurfacesDelay), func() {
		s.log.Debug("primary surface created", "width", cfg.SurfaceWidth, "height", cfg.SurfaceHeight)
		// The first full-screen paint, caused by no key.
		s.emitDraws(start.Add(cfg.SurfacesDelay), 1)
	})
	if cfg.AgentAfter > 0 {
		s.sched.at(start.Add(cfg.AgentAfter), func() {
			s.mu.Lock()
			s.agent = true
			s.mu.Unlock()
			s.log.Debug("vdagent connected")
			s.emit(EventAgentConnected, AgentConnected{Connected: true})
		})
	}
	if cfg.InputsDelay == 0 {
		s.inputsUp = true
		close(s.inputsUpCh)
	} else {
		s.sched.at(start.Add(cfg.InputsDelay), func() { s.inputsConnected(start.Add(cfg.InputsDelay)) })
	}
	s.schedulePings(start)
	if cfg.BackgroundRate > 0 {
		s.scheduleBackground(start)
	}
	if cfg.Flood > 0 {
		s.scheduleFlood(start, 1, 0)
	}
	if cfg.CrashAfter > 0 {
		s.sched.at(start.Add(cfg.CrashAfter), endSession)
	}
	if cfg.HangAfter > 0 {
		s.sched.at(start.Add(cfg.HangAfter), func() {
			s.log.Info("simulating a hang: control socket stops answering")
			s.srv.Hang()
		})
	}
}

// onTick returns the first display refresh tick at or after t.
func (s *Sim) onTick(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.onTickLocked(t)
}

func (s *Sim) onTickLocked(t time.Time) time.Time {
	r := s.cfg.DisplayRefresh
	if r <= 0 {
		return t
	}
	off := t.Sub(s.start)
	if off <= 0 {
		return s.start
	}
	return s.start.Add((off + r - 1) / r * r)
}

// inputEvent is one event for ryll's input queue: a key-down (which the
// guest answers with a repaint) or anything else (a key-up, a paste).
type inputEvent bool

const (
	inputKeyDown inputEvent = true
	inputOther   inputEvent = false
)

// input offers input events that arrived at arrival to the SPICE inputs
// channel, in order. Once the channel is up they go straight through.
// Before that ryll buffers them, InputQueueCapacity at most, and sends
// them in a burst when it connects; an event that does not fit is
// refused, and so is everything after it in the same request. input
// returns how many were taken. Key-downs get their press numbers here,
// in arrival order, whether delivered now or later.
func (s *Sim) input(arrival time.Time, evs ...inputEvent) int {
	s.mu.Lock()
	var now []int
	taken := 0
	for _, ev := range evs {
		if !s.inputsUp {
			if s.inputSlots >= InputQueueCapacity {
				s.stats.InputsRefused++
				break
			}
			s.inputSlots++
			s.stats.InputsBuffered++
		}
		taken++
		if ev != inputKeyDown {
			continue
		}
		s.stats.KeyDowns++
		s.presses++
		if s.inputsUp {
			now = append(now, s.presses)
		} else {
			s.heldKeys = append(s.heldKeys, heldKey{press: s.presses, arrival: arrival})
		}
	}
	s.mu.Unlock()
	for _, p := range now {
		s.deliverKey(p, arrival, arrival)
	}
	return taken
}

// inputsConnected is the inputs channel coming up at at: every held
// key-down reaches the guest now, in a burst.
func (s *Sim) inputsConnected(at time.Time) {
	s.mu.Lock()
	held := s.heldKeys
	s.heldKeys, s.inputSlots, s.inputsUp = nil, 0, true
	close(s.inputsUpCh)
	s.mu.Unlock()
	s.log.Debug("inputs channel up", "buffered_key_downs", len(held))
	for _, k := range held {
		s.deliverKey(k.press, k.arrival, at)
	}
}

// burstTimes returns the instants of an n-draw burst whose first draw is
// at first: evenly spaced over spread, the last tailCount delayed by tail.
func burstTimes(first time.Time, n int, spread, tail time.Duration, tailCount int) []time.Time {
	out := make([]time.Time, n)
	for i := range n {
		var off time.Duration
		if n > 1 {
			off = (spread * time.Duration(i) / time.Duration(n-1)).Truncate(time.Microsecond)
		}
		if i >= n-tailCount {
			off += tail
		}
		out[i] = first.Add(off)
	}
	return out
}

// drawGroup is a run of draws of one burst that share an instant.
type drawGroup struct {
	at time.Time
	n  int
}

func groupTimes(ts []time.Time) []drawGroup {
	var gs []drawGroup
	for _, t := range ts {
		if len(gs) > 0 && gs[len(gs)-1].at.Equal(t) {
			gs[len(gs)-1].n++
			continue
		}
		gs = append(gs, drawGroup{at: t, n: 1})
	}
	return gs
}

// deliverKey models the guest reacting to key-down number press, which
// the client sent at arrival and the guest received at delivered: one
// repaint burst whose first draw lands draw-delay plus jitter later, on a
// refresh tick, and never before the previous key's repaint has ended (a
// guest repaints in order and SPICE keeps it). Its draws follow over
// draw-spread, the last ones draw-tail later still.
func (s *Sim) deliverKey(press int, arrival, delivered time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delay := s.cfg.DrawDelay
	if j := s.cfg.DrawJitter / time.Microsecond; j > 0 {
		delay += time.Duration(s.keyRNG.Int64N(int64(j)+1)) * time.Microsecond
	}
	first := s.onTickLocked(delivered.Add(delay))
	if s.cfg.StallFor > 0 {
		// A stalled console draws nothing until it resumes, then the
		// held-back repaints at once.
		from := s.start.Add(s.cfg.StallAfter)
		if to := from.Add(s.cfg.StallFor); !first.Before(from) && first.Before(to) {
			first = to
		}
	}
	row := TruthRow{Press: press, ArrivalUS: arrival.UnixMicro()}
	n := s.cfg.DrawsPerKey
	if n == 0 || first.Before(s.surfacesAt) {
		// Nothing to repaint on (or a guest that never draws): the key
		// is lost at the moment its repaint would have begun.
		s.sched.at(first, func() { s.finishPress(row) })
		return
	}
	if first.Before(s.lastKeyDraw) {
		first = s.lastKeyDraw
	}
	times := burstTimes(first, n, s.cfg.DrawSpread, s.cfg.DrawTail, s.cfg.DrawTailCount)
	last := times[len(times)-1]
	s.lastKeyDraw = last
	row.FirstDrawUS, row.LastDrawUS, row.Draws = first.UnixMicro(), last.UnixMicro(), n
	groups := groupTimes(times)
	// Scheduled under s.mu, so bursts are queued in press order.
	for i, g := range groups {
		isFirst, isLast := i == 0, i == len(groups)-1
		s.sched.at(g.at, func() {
			if isFirst {
				s.mu.Lock()
				s.generation++ // the screen changes with the first strip
				// The row is known in full now; written before the first
				// event is queued, so a client that sees it can read it.
				s.writeTruthLocked(row)
				s.mu.Unlock()
			}
			s.emitDraws(g.at, g.n)
			if isLast {
				s.finishPress(row)
			}
		})
	}
}

// finishPress counts a press whose repaint has ended (or that drew
// nothing, whose truth row it then writes). It runs after the burst's
// events are queued, so a caller that sees the count knows they are.
func (s *Sim) finishPress(row TruthRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if row.Drawn() {
		s.stats.KeyDraws++
		return
	}
	s.stats.KeyNoDraw++
	s.writeTruthLocked(row)
}

func (s *Sim) writeTruthLocked(row TruthRow) {
	if s.truth == nil {
		return
	}
	if err := s.truth.add(row); err != nil {
		s.log.Error("writing truth file; no more truth rows", "err", err)
	}
}

// emitDraws produces n surface_drawn events stamped at t.
func (s *Sim) emitDraws(t time.Time, n int) {
	s.mu.Lock()
	s.stats.DrawEvents += uint64(n)
	start := s.start
	s.mu.Unlock()
	s.srv.EmitN(EventSurfaceDrawn, SurfaceDrawn{
		DisplayChannelID: 0,
		SurfaceID:        0,
		ProducedAtSecs:   t.Sub(start).Seconds(),
		WallclockUS:      t.UnixMicro(),
	}, n)
}

// emitBackground produces n draws no key caused, once the surface exists.
func (s *Sim) emitBackground(t time.Time, n int) {
	if t.Before(s.surfacesReadyAt()) {
		return
	}
	s.mu.Lock()
	s.stats.BackgroundDraws += uint64(n)
	s.mu.Unlock()
	s.emitDraws(t, n)
}

// scheduleBackground starts the background draws of background-rate and
// background-pattern. They land on refresh ticks, like every draw.
func (s *Sim) scheduleBackground(start time.Time) {
	switch s.cfg.BackgroundPattern {
	case BackgroundSteady:
		s.scheduleSteadyBackground(start, 1)
	case BackgroundBursty:
		s.schedulePoissonBackground(start, max(1, s.cfg.DrawsPerKey))
	default:
		s.schedulePoissonBackground(start, 1)
	}
}

// scheduleSteadyBackground schedules the k-th draw of a steady
// background, at start + k/rate (computed from start, so it never
// drifts).
func (s *Sim) scheduleSteadyBackground(start time.Time, k int64) {
	us := math.Round(float64(k) / s.cfg.BackgroundRate * 1e6)
	landing := s.onTick(start.Add(time.Duration(us) * time.Microsecond))
	s.sched.at(landing, func() {
		s.emitBackground(landing, 1)
		s.scheduleSteadyBackground(start, k+1)
	})
}

// schedulePoissonBackground schedules the next background event of a
// Poisson process whose previous (unrounded) event was at prev. Each
// event is a burst of size draws spread like a key's repaint, so that
// size draws a burst at rate/size bursts a second keep the rate.
func (s *Sim) schedulePoissonBackground(prev time.Time, size int) {
	gapUS := s.noiseRNG.ExpFloat64() / (s.cfg.BackgroundRate / float64(size)) * 1e6
	next := prev.Add(time.Duration(max(1, int64(gapUS))) * time.Microsecond)
	landing := s.onTick(next)
	s.sched.at(landing, func() {
		groups := groupTimes(burstTimes(landing, size, s.cfg.DrawSpread, 0, 0))
		s.emitBackground(landing, groups[0].n)
		for _, g := range groups[1:] {
			s.sched.at(g.at, func() { s.emitBackground(g.at, g.n) })
		}
		s.schedulePoissonBackground(next, size)
	})
}

// floodTick is the flood knob's emission period.
const floodTick = 10 * time.Millisecond

func (s *Sim) scheduleFlood(start time.Time, k int64, carry float64) {
	at := start.Add(time.Duration(k) * floodTick)
	s.sched.at(at, func() {
		want := carry + s.cfg.Flood*floodTick.Seconds()
		n := int(want)
		if !at.Before(s.surfacesReadyAt()) {
			s.emitDraws(alignMicro(time.Now()), n)
		}
		s.scheduleFlood(start, k+1, want-float64(n))
	})
}

func (s *Sim) surfacesReadyAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.surfacesAt
}

// spiceInterval is how often a QEMU spice-server pings an idle client
// over TCP.
const spiceInterval = 15 * time.Second

// pingSeq yields the simulated server's PING instants in order. It owns
// its RNG, so a seed always gives the same gaps.
type pingSeq struct {
	pattern PingPattern
	start   time.Time
	rng     *rand.Rand
	i       int64
	prev    time.Time
}

// next returns the instant of the next PING; ok is false when the
// pattern sends none.
func (p *pingSeq) next() (time.Time, bool) {
	i := p.i
	p.i++
	switch p.pattern.Mode {
	case PingNone:
		return time.Time{}, false
	case PingSteady:
		return p.start.Add(time.Duration(i) * p.pattern.Interval), true
	}
	// spice: three PINGs at connect, then a pair about every 15 s; the
	// PINGs of a burst are a fraction of a millisecond apart.
	closeGap := time.Duration(200+p.rng.Int64N(1300)) * time.Microsecond
	switch {
	case i == 0:
		p.prev = p.start
	case i < 3 || (i-3)%2 == 1:
		p.prev = p.prev.Add(closeGap)
	default:
		pair := (i-3)/2 + 1
		p.prev = p.start.Add(time.Duration(pair)*spiceInterval +
			time.Duration(p.rng.Int64N(50_000))*time.Microsecond)
	}
	return p.prev, true
}

// schedulePings sets up the PING cadence. Each latency sample is the gap
// between two consecutive PINGs, so the first PING produces none.
func (s *Sim) schedulePings(start time.Time) {
	seq := &pingSeq{pattern: s.cfg.Ping, start: start, rng: s.pingRNG}
	var ping func(at, prev time.Time)
	ping = func(at, prev time.Time) {
		s.sched.at(at, func() {
			s.mu.Lock()
			s.stats.Pings++
			s.mu.Unlock()
			if !prev.IsZero() {
				s.emit(EventLatency, Latency{
					SampleMS:    float64(at.Sub(prev)/time.Microsecond) / 1000,
					WallclockUS: at.UnixMicro(),
				})
			}
			if next, ok := seq.next(); ok {
				ping(next, at)
			}
		})
	}
	if first, ok := seq.next(); ok {
		ping(first, time.Time{})
	}
}

// emit sends one event to the current client if it subscribed to it.
func (s *Sim) emit(name string, data any) { s.srv.Emit(name, data) }

// status is the state the status verb reports at now.
func (s *Sim) status(now time.Time) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Status{SpiceConnected: true, AgentConnected: s.agent, Surfaces: []SurfaceInfo{}}
	if !now.Before(s.surfacesAt) {
		r.Surfaces = append(r.Surfaces, SurfaceInfo{
			ChannelID: 0, SurfaceID: 0,
			Width: uint32(s.cfg.SurfaceWidth), Height: uint32(s.cfg.SurfaceHeight),
		})
	}
	return r
}

func (s *Sim) currentGeneration() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.generation
}
