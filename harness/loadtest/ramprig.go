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
	"github.com/shakenfist/kerbside-latency/harness/guestload"
	"github.com/shakenfist/kerbside-latency/harness/link"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/loadrig"
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
	// the proxy runs inside the harness (its CPU is then the harness's);
	// RemotePid when it runs on another host (Kerbside), where the ramp
	// cannot read it: never a 0 that passes for the harness's.
	Pid() int
	// Process reads the proxy's CPU time and resident memory.
	Process() (load.Process, error)
	Close(ctx context.Context) error
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
type NewRampRig func(ctx context.Context, cfg *config.Config, logger *slog.Logger) (RampRig, error)

// rigCores caps the proxy's and the generator's Go code at one core
// each (GOMAXPROCS): on the small hosts this runs on, a proxy that runs
// out of CPU then does so at one core, leaving the rest of the host to
// the harness and QEMU, so its knee is its own and not the host's.
const rigCores = 1

// processRig is the rig of harness/loadrig: the proxy under test and
// the synthetic load generator each a process of its own (the
// loadtest's binary re-executed), so that their CPU and memory are
// told apart from the harness's and QEMU's, and a proxy that runs out
// of CPU shows as the proxy's.
func processRig(ctx context.Context, cfg *config.Config, logger *slog.Logger) (RampRig, error) {
	r := cfg.Ramp
	cc := loadrig.ChildConfig{Logger: logger, GOMAXPROCS: rigCores}
	px, err := loadrig.StartProxy(ctx, loadrig.ProxyConfig{ChildConfig: cc, Mode: r.Proxy})
	if err != nil {
		return RampRig{}, fmt.Errorf("start the proxy under test (LATENCY_PROXY=%s): %w", r.Proxy, err)
	}
	src, err := busySource(ctx, cfg, cc, px.Router(), logger)
	if err != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = px.Close(tctx)
		return RampRig{}, err
	}
	return RampRig{Proxy: processProxy{px}, Source: src}, nil
}

// busySource makes the ramp's busy sessions through the proxy's router:
// synthetic sessions from a generator process of their own, or QEMU
// guests of our own running the activity (each QEMU its own process,
// whose CPU the samples carry).
func busySource(ctx context.Context, cfg *config.Config, cc loadrig.ChildConfig, router load.Router, logger *slog.Logger) (load.Source, error) {
	r := cfg.Ramp
	switch r.Source {
	case config.LoadSynthetic:
		act, err := loadrig.ParseActivity(r.Activity)
		if err != nil {
			return nil, fmt.Errorf("LATENCY_LOAD_ACTIVITY: %w", err)
		}
		src, err := loadrig.StartSynthetic(ctx, loadrig.SyntheticConfig{ChildConfig: cc, Activity: act, BitsPerSecond: r.Rate, Router: router})
		if err != nil {
			return nil, fmt.Errorf("start the synthetic load generator: %w", err)
		}
		return src, nil
	case config.LoadQemu:
		src, err := guestload.NewQemu(guestload.QemuConfig{Binary: cfg.Qemu, Activity: r.Activity, Router: router,
			LogDir: cfg.ResultsDir, RunID: cfg.RunID, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("busy QEMU guests (LATENCY_LOAD_SOURCE=qemu): %w", err)
		}
		return src, nil
	default:
		return nil, fmt.Errorf("LATENCY_LOAD_SOURCE=%s: want synthetic or qemu", r.Source)
	}
}

// RemotePid is the Pid of a proxy under test that runs on another host.
const RemotePid = -1

// rigFor is the rig this build makes for cfg: on openstack Kerbside and
// more servers (cloudRig), otherwise loadrig's processes (processRig).
func rigFor(cfg *config.Config, opts Options) NewRampRig {
	if cfg.Ramp != nil && cfg.Ramp.Remote {
		return cloudRig(opts)
	}
	return processRig
}

// cloudRig is the rig of an openstack ramp: the proxy under test is
// Kerbside (remoteProxy), and the busy sessions are more servers booted
// beside the measured one (guestload.Cloud), each viewed through its own
// spice-direct console, so through Kerbside as the measured console is.
// The cloud client is the measured console's (opts.Getenv,
// opts.Console's cloud options and HTTP client). LATENCY_LINK's link
// sits in front of every busy viewer as in front of the measured
// console (console.Open puts that one).
func cloudRig(opts Options) NewRampRig {
	return func(ctx context.Context, cfg *config.Config, logger *slog.Logger) (RampRig, error) {
		px := newRemoteProxy(ctx, cfg.Link, logger)
		cc := guestload.CloudConfigFrom(cfg)
		cc.Getenv, cc.CloudOptions, cc.HTTPClient, cc.Logger = opts.Getenv, opts.Console.CloudOptions, opts.Console.HTTPClient, logger
		if cfg.Link != nil {
			cc.Router = px.Router()
		}
		src, err := guestload.NewCloud(cc)
		if err != nil {
			_ = px.Close(ctx)
			return RampRig{}, fmt.Errorf("busy servers (LATENCY_LOAD_SOURCE=openstack): %w", err)
		}
		return RampRig{Proxy: px, Source: src}, nil
	}
}

// remoteProxy is an openstack ramp's proxy under test: Kerbside, whatever
// the spice-direct consoles point at. It is not ours and not on this
// host: its CPU is not measured (Pid is RemotePid, Process an error),
// and the ramp's host figures, the host-bound verdict among them, cover
// the harness's host only; Notes say both in the records. Its Router
// gives the address a busy viewer dials: with LATENCY_LINK, a link of
// that profile in front of the console (one per address the .vv names,
// every connection its own link, kept until Close: Kerbside's stand-in
// names a port per console, so a long ramp keeps one listener per busy
// session it ever started), else the console itself.
type remoteProxy struct {
	ctx     context.Context
	profile *link.Profile
	logger  *slog.Logger

	mu     sync.Mutex
	links  map[netip.AddrPort]*link.Link
	closed bool
}

func newRemoteProxy(ctx context.Context, p *link.Profile, logger *slog.Logger) *remoteProxy {
	return &remoteProxy{ctx: ctx, profile: p, logger: logger, links: map[netip.AddrPort]*link.Link{}}
}

// Router gives target itself, or with a link profile the address of a
// link to it (started on first use; its life bounded by the rig's ctx).
func (p *remoteProxy) Router() load.Router {
	return func(_ context.Context, target netip.AddrPort) (netip.AddrPort, error) {
		if p.profile == nil {
			return target, nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return netip.AddrPort{}, errors.New("route through the link: the ramp's rig is closed")
		}
		if l, ok := p.links[target]; ok {
			return addrPort(l)
		}
		l, err := link.Start(p.ctx, link.Config{Target: target.String(), Profile: *p.profile, Logger: p.logger.With("link", "busy")})
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("start the link (%s) in front of the busy consoles at %s: %w", p.profile, target, err)
		}
		p.links[target] = l
		p.logger.Info("link in front of the busy consoles", "profile", p.profile.String(), "target", target.String(), "listen", l.Addr().String())
		return addrPort(l)
	}
}

func addrPort(l *link.Link) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(l.Addr().String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("the link's address %s: %w", l.Addr(), err)
	}
	return ap, nil
}

// Describe names Kerbside as remote and unmeasured, for load.json and the
// summary.
func (p *remoteProxy) Describe() string { return remoteDescription }

// remoteDescription is an openstack ramp's proxy under test, in words.
const remoteDescription = "Kerbside (remote, whatever the spice-direct consoles point at; its CPU is not measured)"

// Pid is RemotePid: Kerbside is no process of this host.
func (p *remoteProxy) Pid() int { return RemotePid }

// Process fails: Kerbside's CPU and memory are not readable from here.
func (p *remoteProxy) Process() (load.Process, error) {
	return load.Process{}, errors.New("the proxy under test is Kerbside, on another host: its CPU is not measured")
}

// Notes are what the ramp's verdict must say of a remote proxy.
func (p *remoteProxy) Notes() []string {
	return []string{
		"the proxy under test is Kerbside, remote: its CPU is not measured, and the host figures (the host-bound check among them) cover this harness's host only",
		"the busy servers' viewers run inside the harness: their CPU is the harness's; their bytes per second are what they read",
	}
}

// Close stops the links. Safe to call more than once.
func (p *remoteProxy) Close(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for t, l := range p.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop the link in front of %s: %w", t, err))
		}
	}
	clear(p.links)
	return errors.Join(errs...)
}

// processProxy is loadrig's proxy as the ramp's RampProxy.
type processProxy struct{ *loadrig.Proxy }

func (p processProxy) Describe() string {
	return fmt.Sprintf("%s (a process of its own, pid %d)", p.Mode(), p.Pid())
}
