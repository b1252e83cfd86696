package loadrig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sync"

	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

const roleProxy = "proxy"

// ProxyConfig says how the proxy process forwards.
type ProxyConfig struct {
	ChildConfig
	// Mode is how every route forwards (spiceproxy.Parse's forms:
	// nodelay, nagle, delay:DUR, cpu:DUR).
	Mode spiceproxy.Mode
}

// Proxy is the proxy under test as a process of its own: harness/spiceproxy
// with routes added at run time, each a loopback listener that forwards
// to one target in the one Mode. Its CPU and memory are its own
// (Process), apart from the harness's and the load generator's. Its
// methods are safe for concurrent use. Close must be called.
type Proxy struct {
	p    *proc
	mode spiceproxy.Mode

	mu     sync.Mutex
	routes map[netip.AddrPort]netip.AddrPort
}

// proxyConfigArgs is the proxy child's "config" command.
type proxyConfigArgs struct {
	Mode string `json:"mode"`
}

// childInfo is every child's answer to "config".
type childInfo struct {
	Pid        int `json:"pid"`
	GOMAXPROCS int `json:"gomaxprocs"`
}

type routeArgs struct {
	Target string `json:"target"`
}

type routeResult struct {
	Addr string `json:"addr"`
}

// ProxyTotals is what the proxy forwarded over all its routes, every
// connection counted, open or ended.
type ProxyTotals struct {
	Routes int   `json:"routes"`
	Conns  int64 `json:"conns"` // connections accepted
	// ToServer and ToClient are the bytes forwarded each way.
	ToServer int64 `json:"to_server"`
	ToClient int64 `json:"to_client"`
	// Messages counts server messages in the modes that frame them
	// (nagle, cpu:DUR); 0 in the others.
	Messages int64 `json:"messages"`
}

// StartProxy starts the proxy process and returns once it runs, with no
// route yet (Router adds them).
func StartProxy(ctx context.Context, cfg ProxyConfig) (*Proxy, error) {
	if cfg.Mode == (spiceproxy.Mode{}) {
		return nil, errors.New("start proxy child: no mode set (nodelay, nagle, delay:DUR or cpu:DUR)")
	}
	if _, err := spiceproxy.Parse(cfg.Mode.String()); err != nil {
		return nil, fmt.Errorf("start proxy child: %w", err)
	}
	var info childInfo
	p, err := startProc(ctx, roleProxy, cfg.ChildConfig, proxyConfigArgs{Mode: cfg.Mode.String()}, &info)
	if err != nil {
		return nil, err
	}
	if cfg.GOMAXPROCS > 0 && info.GOMAXPROCS != cfg.GOMAXPROCS {
		_ = p.close(ctx)
		return nil, fmt.Errorf("start proxy child: it runs with GOMAXPROCS=%d, not the %d asked for", info.GOMAXPROCS, cfg.GOMAXPROCS)
	}
	return &Proxy{p: p, mode: cfg.Mode, routes: map[netip.AddrPort]netip.AddrPort{}}, nil
}

// Mode is how the proxy forwards.
func (x *Proxy) Mode() spiceproxy.Mode { return x.mode }

// Pid is the proxy process's id.
func (x *Proxy) Pid() int { return x.p.Pid() }

// Router routes through the proxy: the first call for a target adds a
// route to it (a new listener), later ones return the same address.
func (x *Proxy) Router() load.Router { return x.Route }

// Route returns the address that reaches target through the proxy,
// adding a route on first use.
func (x *Proxy) Route(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error) {
	x.mu.Lock()
	defer x.mu.Unlock() // one route per target: concurrent first uses wait
	if a, ok := x.routes[target]; ok {
		return a, nil
	}
	var res routeResult
	if err := x.p.call(ctx, "route", routeArgs{Target: target.String()}, &res); err != nil {
		return netip.AddrPort{}, fmt.Errorf("route %s through the proxy: %w", target, err)
	}
	a, err := netip.ParseAddrPort(res.Addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("route %s through the proxy: the proxy listens on %q: %w", target, res.Addr, err)
	}
	x.routes[target] = a
	return a, nil
}

// Totals reads what the proxy forwarded so far.
func (x *Proxy) Totals(ctx context.Context) (ProxyTotals, error) {
	var t ProxyTotals
	if err := x.p.call(ctx, "totals", nil, &t); err != nil {
		return ProxyTotals{}, fmt.Errorf("read the proxy's totals: %w", err)
	}
	return t, nil
}

// Process reads the proxy process's CPU time and RSS (role "proxy").
func (x *Proxy) Process() (load.Process, error) { return x.p.usage() }

// Close ends the proxy process and every connection through it. It
// reports a proxy that had died before, or did not end cleanly. It is
// safe to call more than once.
func (x *Proxy) Close(ctx context.Context) error { return x.p.close(ctx) }

// proxyRole is the proxy child: one spiceproxy.Proxy per route.
type proxyRole struct {
	log    *slog.Logger
	mode   spiceproxy.Mode
	set    bool
	routes map[string]*spiceproxy.Proxy
	order  []string
}

func newProxyRole(log *slog.Logger) role {
	return &proxyRole{log: log, routes: map[string]*spiceproxy.Proxy{}}
}

func (r *proxyRole) handle(ctx context.Context, op string, raw json.RawMessage) (any, error) {
	if op != "config" && !r.set {
		return nil, fmt.Errorf("%s before config", op)
	}
	switch op {
	case "config":
		var a proxyConfigArgs
		if err := strictDecode(raw, &a); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if r.set {
			return nil, errors.New("config: already configured")
		}
		m, err := spiceproxy.Parse(a.Mode)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		r.mode, r.set = m, true
		r.log.Info("proxy ready", "mode", m.String(), "gomaxprocs", runtime.GOMAXPROCS(0))
		return childInfo{Pid: os.Getpid(), GOMAXPROCS: runtime.GOMAXPROCS(0)}, nil
	case "route":
		var a routeArgs
		if err := strictDecode(raw, &a); err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
		if p, ok := r.routes[a.Target]; ok {
			return routeResult{Addr: p.Addr().String()}, nil
		}
		p, err := spiceproxy.Start(context.WithoutCancel(ctx), spiceproxy.Config{
			Listen: "127.0.0.1:0", Target: a.Target, Mode: r.mode, Logger: r.log.With("target", a.Target),
		})
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", a.Target, err)
		}
		r.routes[a.Target] = p
		r.order = append(r.order, a.Target)
		return routeResult{Addr: p.Addr().String()}, nil
	case "totals":
		t := ProxyTotals{Routes: len(r.routes)}
		for _, p := range r.routes {
			pt := p.Totals()
			t.Conns += pt.Conns
			t.ToServer += pt.ToServer
			t.ToClient += pt.ToClient
			t.Messages += pt.Messages
		}
		return t, nil
	}
	return nil, fmt.Errorf("unknown op %q (the proxy knows config, route and totals)", op)
}

func (r *proxyRole) close() error {
	var errs []error
	for _, t := range r.order {
		if err := r.routes[t].Close(); err != nil {
			errs = append(errs, fmt.Errorf("close route to %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// strictDecode decodes a command's args, refusing unknown fields (a
// parent and child of different builds must not half-agree).
func strictDecode(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad args: %w", err)
	}
	return nil
}
