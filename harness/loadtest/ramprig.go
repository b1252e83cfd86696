package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/loadgen"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// RampProxy is the proxy under test of a ramp: every session, the
// measured console's and the busy ones, reaches its server through it.
type RampProxy interface {
	// Router gives the address through the proxy to a target.
	Router() load.Router
	// Describe names the proxy for the records (its mode, and where it
	// runs).
	Describe() string
	// Pid is the proxy's own process, whose CPU the ramp reads; 0 when
	// the proxy runs inside the harness (its CPU is then the harness's).
	Pid() int
	Close() error
}

// RampRig is what a ramp runs beside the measured console: the proxy
// under test and the source of busy sessions through it.
type RampRig struct {
	Proxy  RampProxy
	Source load.Source
}

// NewRampRig makes a ramp's proxy and source from its configuration.
// ctx bounds the rig's life (its proxy closes every connection when it
// ends).
type NewRampRig func(ctx context.Context, r *config.Ramp, logger *slog.Logger) (RampRig, error)

// inProcessRig is the rig without processes of its own: our SPICE
// proxy (harness/spiceproxy) and synthetic sessions (harness/loadgen)
// inside the harness. The CPU of the proxy and of the generator is
// then the harness's, which the records say; harness/loadrig's
// processes tell them apart.
func inProcessRig(ctx context.Context, r *config.Ramp, logger *slog.Logger) (RampRig, error) {
	if r.Source != config.LoadSynthetic {
		return RampRig{}, fmt.Errorf("LATENCY_LOAD_SOURCE=%s: this build runs only synthetic busy sessions (the qemu source is harness/guestload's, not wired into the ramp yet); use LATENCY_LOAD_SOURCE=synthetic", r.Source)
	}
	px := &inProcessProxy{ctx: ctx, mode: r.Proxy, logger: logger, routes: map[netip.AddrPort]*spiceproxy.Proxy{}}
	src, err := newInProcessSynthetic(ctx, r, px.Router(), logger)
	if err != nil {
		_ = px.Close()
		return RampRig{}, err
	}
	return RampRig{Proxy: px, Source: src}, nil
}

// inProcessProxy routes each target through a spiceproxy.Proxy of its
// own, all in one mode, inside the harness.
type inProcessProxy struct {
	ctx    context.Context
	mode   spiceproxy.Mode
	logger *slog.Logger

	mu     sync.Mutex
	routes map[netip.AddrPort]*spiceproxy.Proxy
	closed bool
}

func (p *inProcessProxy) Describe() string {
	return fmt.Sprintf("%s, in the harness's process", p.mode)
}

func (p *inProcessProxy) Pid() int { return 0 }

func (p *inProcessProxy) Router() load.Router {
	return func(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return netip.AddrPort{}, errors.New("route through the proxy under test: it is closed")
		}
		if px, ok := p.routes[target]; ok {
			return netip.ParseAddrPort(px.Addr().String())
		}
		px, err := spiceproxy.Start(p.ctx, spiceproxy.Config{Target: target.String(), Mode: p.mode, Logger: p.logger})
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("route %s through the proxy under test: %w", target, err)
		}
		addr, err := netip.ParseAddrPort(px.Addr().String())
		if err != nil {
			_ = px.Close()
			return netip.AddrPort{}, fmt.Errorf("route %s through the proxy under test: its address: %w", target, err)
		}
		p.routes[target] = px
		return addr, nil
	}
}

func (p *inProcessProxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for t, px := range p.routes {
		if err := px.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop the proxy route to %s: %w", t, err))
		}
		delete(p.routes, t)
	}
	return errors.Join(errs...)
}

// activityDraw is each activity's draw size: a few glyphs (typing), a
// strip of text rows (scroll), a large area (video).
var activityDraw = map[string]int{"typing": 1 << 10, "scroll": 16 << 10, "video": 64 << 10}

// flowTimeout bounds how long a new busy session has to read display
// traffic after it linked.
const flowTimeout = 30 * time.Second

// inProcessSynthetic is load.Source over one loadgen.Server and one
// loadgen.Client per session, dialled through the proxy under test.
type inProcessSynthetic struct {
	srv    *loadgen.Server
	addr   string // the server's address through the proxy
	logger *slog.Logger

	clients []*loadgen.Client
	ended   loadgen.Stats // sessions stopped so far, summed
}

func newInProcessSynthetic(ctx context.Context, r *config.Ramp, route load.Router, logger *slog.Logger) (*inProcessSynthetic, error) {
	srv, err := loadgen.Listen(ctx, "127.0.0.1:0", loadgen.ServerConfig{BitsPerSecond: r.Rate, DrawSize: activityDraw[r.Activity], Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("start the synthetic SPICE server: %w", err)
	}
	target, err := netip.ParseAddrPort(srv.Addr().String())
	if err == nil {
		var via netip.AddrPort
		via, err = route(ctx, target)
		if err == nil {
			return &inProcessSynthetic{srv: srv, addr: via.String(), logger: logger}, nil
		}
	}
	_ = srv.Close()
	return nil, fmt.Errorf("route the synthetic sessions through the proxy under test: %w", err)
}

func (s *inProcessSynthetic) Name() string { return config.LoadSynthetic }

// Set starts or stops sessions until n run, each new one reading
// display traffic.
func (s *inProcessSynthetic) Set(ctx context.Context, n int) error {
	for len(s.clients) > n {
		c := s.clients[len(s.clients)-1]
		_ = c.Close()
		s.ended = addStats(s.ended, c.Stats())
		s.clients = s.clients[:len(s.clients)-1]
	}
	if len(s.clients) == n {
		return nil
	}
	fresh, err := dialSessions(ctx, s.addr, n-len(s.clients))
	s.clients = append(s.clients, fresh...)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(flowTimeout)
	for _, c := range fresh {
		for c.Stats().Bytes == 0 {
			if err := c.Err(); err != nil {
				return fmt.Errorf("a busy session ended before its display flowed: %w", err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("a busy session read no display traffic within %s", flowTimeout)
			}
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

func (s *inProcessSynthetic) Sample(context.Context) (load.Sample, error) {
	st := s.ended
	for _, c := range s.clients {
		st = addStats(st, c.Stats())
	}
	return load.Sample{At: time.Now(), Sessions: len(s.clients), Bytes: int64(st.Bytes), Messages: int64(st.Messages),
		AckWait: time.Duration(s.srv.Stats().AckWaitS * float64(time.Second))}, nil
}

func (s *inProcessSynthetic) Close(context.Context) error {
	for _, c := range s.clients {
		_ = c.Close()
		s.ended = addStats(s.ended, c.Stats())
	}
	s.clients = nil
	return s.srv.Close()
}

func addStats(st loadgen.Stats, ss loadgen.SessionStats) loadgen.Stats {
	st.Bytes += ss.Bytes
	st.Messages += ss.Messages
	return st
}

// dialParallel bounds the sessions linking at once.
const dialParallel = 16

// dialSessions links n sessions to addr, dialParallel at a time, and
// returns those that linked, with why any did not.
func dialSessions(ctx context.Context, addr string, n int) ([]*loadgen.Client, error) {
	out := make([]*loadgen.Client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = loadgen.Dial(ctx, loadgen.ClientConfig{Addr: addr})
		}()
	}
	wg.Wait()
	var linked []*loadgen.Client
	for _, c := range out {
		if c != nil {
			linked = append(linked, c)
		}
	}
	for _, err := range errs {
		if err != nil {
			return linked, fmt.Errorf("link %d busy sessions (%d linked; the first failure): %w", n, len(linked), err)
		}
	}
	return linked, nil
}
