package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrSessionEnded is the cause Run's context is cancelled with when the
// simulated SPICE session ends (the crash-after knob). Run still returns
// nil then, because ryll exits 0 when its headless session closes.
var ErrSessionEnded = errors.New("simulated SPICE session ended")

// Stats counts what the simulated session did, for tests and logs.
type Stats struct {
	KeyDowns    uint64 // key-downs received (send_key down/press and pasted characters)
	KeyDraws    uint64 // key-downs whose draw burst landed (one truth line each)
	KeyNoDraw   uint64 // key-downs that drew nothing (no surface yet, or draws-per-key 0)
	DrawEvents  uint64 // surface_drawn events produced, delivered or not
	Pings       uint64 // simulated server PINGs
	Dropped     uint64 // events discarded by client queues (backpressure)
	Connections uint64 // control clients accepted
	Busy        uint64 // connections refused with busy
	Ignored     uint64 // requests read while hung, never answered
}

// Sim is one simulated ryll process: a SPICE session plus its control
// socket server. Create it with New and start it with Run.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	ready   chan struct{}
	hung    chan struct{}
	hangMu  sync.Once
	sched   *scheduler
	running atomic.Bool
	wg      sync.WaitGroup

	mu         sync.Mutex
	start      time.Time
	surfacesAt time.Time
	agent      bool
	generation uint64
	client     *client
	limbo      []net.Conn // connections accepted while hung
	keyRNG     *rand.Rand
	noiseRNG   *rand.Rand
	pingRNG    *rand.Rand
	truth      io.WriteCloser
	truthErr   bool
	stats      Stats
}

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
	return &Sim{
		cfg:      cfg,
		log:      log,
		ready:    make(chan struct{}),
		hung:     make(chan struct{}),
		sched:    newScheduler(),
		keyRNG:   rand.New(rand.NewPCG(cfg.Seed, 1)),
		noiseRNG: rand.New(rand.NewPCG(cfg.Seed, 2)),
		pingRNG:  rand.New(rand.NewPCG(cfg.Seed, 3)),
	}, nil
}

// Ready is closed once the control socket accepts connections.
func (s *Sim) Ready() <-chan struct{} { return s.ready }

// SessionStart is the moment the simulated SPICE session started, to the
// microsecond; display refresh ticks fall at SessionStart + k*refresh.
// It is the zero time before Ready is closed.
func (s *Sim) SessionStart() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start
}

// Hung is closed when the simulated hang (hang-after) begins.
func (s *Sim) Hung() <-chan struct{} { return s.hung }

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if s.client != nil {
		st.Dropped += s.client.q.dropped()
	}
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
// not start. Run may be called once.
func (s *Sim) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("run simulator: already started")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

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
		f, err := os.OpenFile(s.cfg.TruthFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("open truth file: %w", err)
		}
		s.truth = f
	}
	ln, info, err := listenUnix(s.cfg.SocketPath)
	if err != nil {
		s.closeTruth()
		return err
	}
	s.log.Info("control socket listening", "path", s.cfg.SocketPath, "protocol_version", s.cfg.ProtocolVersion.String())

	start := alignMicro(time.Now())
	s.mu.Lock()
	s.start = start
	s.surfacesAt = start.Add(s.cfg.SurfacesDelay)
	s.agent = s.cfg.Agent
	s.mu.Unlock()
	s.scheduleSession(start, func() { cancel(ErrSessionEnded) })
	close(s.ready)

	s.wg.Go(func() { s.acceptLoop(ctx, ln) })
	s.wg.Go(func() { s.sched.run(ctx, s.hung) })

	<-ctx.Done()
	if errors.Is(context.Cause(ctx), ErrSessionEnded) {
		s.log.Info("SPICE session ended; closing control socket")
	} else {
		s.log.Info("shutdown requested; closing control socket")
	}
	cancel(nil)
	closeErr := ln.Close()
	unlinkErr := unlinkIfOurs(s.cfg.SocketPath, info)
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
	s.closeTruth()
	if unlinkErr != nil {
		s.log.Warn("could not unlink control socket", "err", unlinkErr)
	}
	if closeErr != nil && !errors.Is(closeErr, net.ErrClosed) {
		s.log.Debug("closing control listener", "err", closeErr)
	}
	return nil
}

func (s *Sim) closeTruth() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.truth != nil {
		if err := s.truth.Close(); err != nil {
			s.log.Warn("closing truth file", "err", err)
		}
		s.truth = nil
	}
}

func (s *Sim) isHung() bool {
	select {
	case <-s.hung:
		return true
	default:
		return false
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
			s.emit(eventAgentConnected, agentData{Connected: true})
		})
	}
	s.schedulePings(start)
	if cfg.SpontaneousDraws > 0 {
		s.scheduleNoise(start)
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
			s.hangMu.Do(func() { close(s.hung) })
		})
	}
}

// onTick returns the first display refresh tick at or after t.
func (s *Sim) onTick(t time.Time) time.Time {
	r := s.cfg.DisplayRefresh
	if r <= 0 {
		return t
	}
	s.mu.Lock()
	start := s.start
	s.mu.Unlock()
	off := t.Sub(start)
	if off <= 0 {
		return start
	}
	return start.Add((off + r - 1) / r * r)
}

// keyDown models the guest reacting to one key-down that arrived at
// arrival: one draw burst, draw-delay plus jitter later, on a refresh
// tick.
func (s *Sim) keyDown(arrival time.Time) {
	s.mu.Lock()
	s.stats.KeyDowns++
	delay := s.cfg.DrawDelay
	if j := s.cfg.DrawJitter / time.Microsecond; j > 0 {
		delay += time.Duration(s.keyRNG.Int64N(int64(j)+1)) * time.Microsecond
	}
	s.mu.Unlock()
	landing := s.onTick(arrival.Add(delay))
	s.sched.at(landing, func() { s.landKey(arrival, landing) })
}

func (s *Sim) landKey(arrival, landing time.Time) {
	s.mu.Lock()
	if landing.Before(s.surfacesAt) || s.cfg.DrawsPerKey == 0 {
		s.stats.KeyNoDraw++
		s.mu.Unlock()
		return
	}
	s.generation++
	if s.truth != nil && !s.truthErr {
		us := landing.Sub(arrival) / time.Microsecond
		if _, err := fmt.Fprintf(s.truth, "%d.%06d\n", us/1e6, us%1e6); err != nil {
			s.truthErr = true
			s.log.Error("writing truth file; no more truth lines", "err", err)
		}
	}
	s.mu.Unlock()
	s.emitDraws(landing, s.cfg.DrawsPerKey)
	// Counted after the events are queued, so a caller that sees the
	// count knows the subscription check for them has been made.
	s.mu.Lock()
	s.stats.KeyDraws++
	s.mu.Unlock()
}

// emitDraws produces n surface_drawn events stamped at t.
func (s *Sim) emitDraws(t time.Time, n int) {
	s.mu.Lock()
	s.stats.DrawEvents += uint64(n)
	start := s.start
	s.mu.Unlock()
	if n <= 0 || !s.wants(eventSurfaceDrawn) {
		return
	}
	line := encodeLine(eventMsg{Event: eventSurfaceDrawn, Data: surfaceDrawnData{
		DisplayChannelID: 0,
		SurfaceID:        0,
		ProducedAtSecs:   t.Sub(start).Seconds(),
		WallclockUS:      t.UnixMicro(),
	}})
	for range n {
		s.push(eventSurfaceDrawn, line)
	}
}

// scheduleNoise schedules the next spontaneous draw of a Poisson process
// whose previous (unrounded) event was at prev.
func (s *Sim) scheduleNoise(prev time.Time) {
	gapUS := s.noiseRNG.ExpFloat64() / s.cfg.SpontaneousDraws * 1e6
	next := prev.Add(time.Duration(max(1, int64(gapUS))) * time.Microsecond)
	landing := s.onTick(next)
	s.sched.at(landing, func() {
		if !landing.Before(s.surfacesReadyAt()) {
			s.emitDraws(landing, 1)
		}
		s.scheduleNoise(next)
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
				s.emit(eventLatency, latencyData{
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

// wants reports whether the current client subscribed to name.
func (s *Sim) wants(name string) bool {
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	return c != nil && c.subscribed(name)
}

// emit sends one event to the current client if it subscribed to it.
func (s *Sim) emit(name string, data any) {
	if !s.wants(name) {
		return
	}
	s.push(name, encodeLine(eventMsg{Event: name, Data: data}))
}

// push queues an encoded event for the current client. It never blocks.
func (s *Sim) push(name string, line []byte) {
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

// status is the state the status verb reports at now.
func (s *Sim) status(now time.Time) statusResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := statusResult{SpiceConnected: true, AgentConnected: s.agent, Surfaces: []surfaceInfo{}}
	if !now.Before(s.surfacesAt) {
		r.Surfaces = append(r.Surfaces, surfaceInfo{
			ChannelID: 0, SurfaceID: 0,
			Width: uint32(s.cfg.SurfaceWidth), Height: uint32(s.cfg.SurfaceHeight),
		})
	}
	return r
}

func (s *Sim) agentConnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent
}

func (s *Sim) currentGeneration() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.generation
}
