package loadrig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/loadgen"
)

const roleGenerator = "generator"

// Defaults of SyntheticConfig.
const (
	// DefaultSessionsPerServer is how many sessions share one synthetic
	// SPICE server (one listener, one RSA key, one route through the
	// proxy): a server costs a key generation, tens of milliseconds.
	DefaultSessionsPerServer = 32
	// DefaultSetTimeout bounds a Set when its ctx has no deadline.
	DefaultSetTimeout = 2 * time.Minute
	// flowPoll is how often Set looks for the first draws of new
	// sessions.
	flowPoll = 10 * time.Millisecond
)

// ErrSessionsLost is wrapped by Sample's error when sessions ended by
// themselves (the proxy or the server closed them): the Sample is still
// filled in, and its Sessions counts only those still running.
var ErrSessionsLost = errors.New("synthetic sessions were lost")

// SyntheticConfig says what the synthetic sessions show and where they
// go.
type SyntheticConfig struct {
	ChildConfig
	// Activity is what each session's screen does; the zero value means
	// Typing.
	Activity Activity
	// BitsPerSecond, if set, is each session's display rate instead of
	// the activity's (its draws keep the activity's size).
	BitsPerSecond int64
	// SessionsPerServer is how many sessions share one server; 0 means
	// DefaultSessionsPerServer.
	SessionsPerServer int
	// Parallel is how many sessions link at once; 0 means
	// loadgen.DefaultParallel.
	Parallel int
	// Router gives each server's sessions their way to it through the
	// proxy under test; nil dials the servers directly.
	Router load.Router
	// SetTimeout bounds a Set when its ctx has no sooner deadline; 0
	// means DefaultSetTimeout.
	SetTimeout time.Duration
}

// Synthetic is the synthetic load.Source: a generator process of its own
// running loadgen Servers and, for every session, a loadgen Client that
// dials its server through the Router, reads the display and ACKs. Its
// methods are called from one goroutine (load.Source's contract).
type Synthetic struct {
	p      *proc
	cfg    SyntheticConfig
	routed []string // where the sessions of server i dial
}

var _ load.Source = (*Synthetic)(nil)

// genConfigArgs is the generator child's "config" command.
type genConfigArgs struct {
	BitsPerSecond     int64 `json:"bits_per_second"`
	DrawSize          int   `json:"draw_size"`
	SessionsPerServer int   `json:"sessions_per_server"`
	Parallel          int   `json:"parallel"`
}

type serversArgs struct {
	Count int `json:"count"`
}

type serversResult struct {
	Addrs []string `json:"addrs"`
}

type setArgs struct {
	N         int      `json:"n"`
	Dial      []string `json:"dial"`
	TimeoutMS int64    `json:"timeout_ms"`
}

type setResult struct {
	Sessions int `json:"sessions"`
}

// genSample is the generator's "sample" answer: the clients' counters,
// cumulative over every session ever started, and the servers' ACK wait.
type genSample struct {
	Sessions  int    `json:"sessions"`
	Bytes     uint64 `json:"bytes"`
	Messages  uint64 `json:"messages"`
	Draws     uint64 `json:"draws"`
	AckWaitNS int64  `json:"ack_wait_ns"`
	Lost      int    `json:"lost"`
	FirstLost string `json:"first_lost,omitempty"`
}

// StartSynthetic starts the generator process, with no session yet.
func StartSynthetic(ctx context.Context, cfg SyntheticConfig) (*Synthetic, error) {
	if cfg.Activity == (Activity{}) {
		cfg.Activity = Typing
	}
	if cfg.SessionsPerServer == 0 {
		cfg.SessionsPerServer = DefaultSessionsPerServer
	}
	if cfg.SetTimeout <= 0 {
		cfg.SetTimeout = DefaultSetTimeout
	}
	bps := cfg.BitsPerSecond
	if bps == 0 {
		bps = cfg.Activity.BitsPerSecond()
	}
	switch {
	case bps <= 0:
		return nil, fmt.Errorf("start synthetic sessions: a rate of %d bit/s (activity %q): want above zero", bps, cfg.Activity.Name)
	case cfg.Activity.DrawSize <= 0:
		return nil, fmt.Errorf("start synthetic sessions: draws of %d bytes (activity %q)", cfg.Activity.DrawSize, cfg.Activity.Name)
	case cfg.SessionsPerServer < 0 || cfg.Parallel < 0:
		return nil, fmt.Errorf("start synthetic sessions: negative SessionsPerServer (%d) or Parallel (%d)", cfg.SessionsPerServer, cfg.Parallel)
	}
	var info childInfo
	p, err := startProc(ctx, roleGenerator, cfg.ChildConfig, genConfigArgs{
		BitsPerSecond: bps, DrawSize: cfg.Activity.DrawSize,
		SessionsPerServer: cfg.SessionsPerServer, Parallel: cfg.Parallel,
	}, &info)
	if err != nil {
		return nil, err
	}
	if cfg.GOMAXPROCS > 0 && info.GOMAXPROCS != cfg.GOMAXPROCS {
		_ = p.close(ctx)
		return nil, fmt.Errorf("start synthetic sessions: the generator runs with GOMAXPROCS=%d, not the %d asked for", info.GOMAXPROCS, cfg.GOMAXPROCS)
	}
	return &Synthetic{p: p, cfg: cfg}, nil
}

// Name is "synthetic".
func (s *Synthetic) Name() string { return "synthetic" }

// Pid is the generator process's id.
func (s *Synthetic) Pid() int { return s.p.Pid() }

// Set makes exactly n sessions run and returns once every new one has
// read a draw. Sessions that ended by themselves are replaced (and stay
// counted as lost: see Sample). After an error, some of the sessions may
// run; Set again or Close.
func (s *Synthetic) Set(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("set %d synthetic sessions: negative", n)
	}
	servers := (n + s.cfg.SessionsPerServer - 1) / s.cfg.SessionsPerServer
	if servers > len(s.routed) {
		var res serversResult
		if err := s.p.call(ctx, "servers", serversArgs{Count: servers}, &res); err != nil {
			return fmt.Errorf("set %d synthetic sessions: start %d servers: %w", n, servers, err)
		}
		if len(res.Addrs) < servers {
			return fmt.Errorf("set %d synthetic sessions: the generator has %d servers, not %d", n, len(res.Addrs), servers)
		}
		for _, a := range res.Addrs[len(s.routed):] {
			target, err := netip.ParseAddrPort(a)
			if err != nil {
				return fmt.Errorf("set %d synthetic sessions: a server listens on %q: %w", n, a, err)
			}
			via := target
			if s.cfg.Router != nil {
				if via, err = s.cfg.Router(ctx, target); err != nil {
					return fmt.Errorf("set %d synthetic sessions: route to server %s: %w", n, target, err)
				}
			}
			s.routed = append(s.routed, via.String())
		}
	}
	bound := s.cfg.SetTimeout
	if dl, ok := ctx.Deadline(); ok {
		bound = min(bound, time.Until(dl))
	}
	var res setResult
	// The child bounds itself; the parent waits a little longer for its
	// answer, so a slow Set says why rather than "no answer".
	err := s.p.callFor(ctx, bound+5*time.Second, "set", setArgs{N: n, Dial: s.routed, TimeoutMS: bound.Milliseconds()}, &res)
	if err != nil {
		return fmt.Errorf("set %d synthetic sessions: %w", n, err)
	}
	if res.Sessions != n {
		return fmt.Errorf("set %d synthetic sessions: %d run", n, res.Sessions)
	}
	return nil
}

// Sample reads what the sessions moved, cumulative, and the generator
// process's CPU and RSS. When sessions ended by themselves the error
// wraps ErrSessionsLost and the Sample is still filled in.
func (s *Synthetic) Sample(ctx context.Context) (load.Sample, error) {
	var g genSample
	if err := s.p.call(ctx, "sample", nil, &g); err != nil {
		return load.Sample{}, fmt.Errorf("sample synthetic sessions: %w", err)
	}
	smp := load.Sample{
		At: time.Now(), Sessions: g.Sessions,
		Bytes: int64(g.Bytes), Messages: int64(g.Messages),
		AckWait: time.Duration(g.AckWaitNS),
	}
	proc, err := s.p.usage()
	if err != nil {
		return smp, fmt.Errorf("sample synthetic sessions: %w", err)
	}
	smp.Processes = []load.Process{proc}
	if g.Lost > 0 {
		return smp, fmt.Errorf("%w: %d ended by themselves, the first: %s", ErrSessionsLost, g.Lost, g.FirstLost)
	}
	return smp, nil
}

// Process reads the generator process's CPU time and RSS (role
// "generator").
func (s *Synthetic) Process() (load.Process, error) { return s.p.usage() }

// Close ends every session and the generator process. It is safe to
// call more than once, and after a failed Set.
func (s *Synthetic) Close(ctx context.Context) error { return s.p.close(ctx) }

// genRole is the generator child.
type genRole struct {
	log *slog.Logger
	cfg genConfigArgs
	set bool

	servers []*loadgen.Server
	live    []*loadgen.Client
	// ended sums the sessions no longer live.
	ended     loadgen.SessionStats
	lost      int
	firstLost string
}

func newGeneratorRole(log *slog.Logger) role { return &genRole{log: log} }

func (r *genRole) handle(ctx context.Context, op string, raw json.RawMessage) (any, error) {
	if op != "config" && !r.set {
		return nil, fmt.Errorf("%s before config", op)
	}
	switch op {
	case "config":
		if r.set {
			return nil, errors.New("config: already configured")
		}
		if err := strictDecode(raw, &r.cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if r.cfg.BitsPerSecond <= 0 || r.cfg.DrawSize <= 0 || r.cfg.SessionsPerServer <= 0 || r.cfg.Parallel < 0 {
			return nil, fmt.Errorf("config: %+v: rate, draw size and sessions per server must be above zero", r.cfg)
		}
		r.set = true
		r.log.Info("generator ready", "bits_per_second", r.cfg.BitsPerSecond, "draw_size", r.cfg.DrawSize,
			"sessions_per_server", r.cfg.SessionsPerServer, "gomaxprocs", runtime.GOMAXPROCS(0))
		return childInfo{Pid: os.Getpid(), GOMAXPROCS: runtime.GOMAXPROCS(0)}, nil
	case "servers":
		var a serversArgs
		if err := strictDecode(raw, &a); err != nil {
			return nil, fmt.Errorf("servers: %w", err)
		}
		if a.Count < 0 || a.Count > 1<<16 {
			return nil, fmt.Errorf("servers: count %d out of range", a.Count)
		}
		for len(r.servers) < a.Count {
			srv, err := loadgen.Listen(context.WithoutCancel(ctx), "127.0.0.1:0", loadgen.ServerConfig{
				BitsPerSecond: r.cfg.BitsPerSecond, DrawSize: r.cfg.DrawSize, Logger: r.log,
			})
			if err != nil {
				return nil, fmt.Errorf("servers: start server %d: %w", len(r.servers)+1, err)
			}
			r.servers = append(r.servers, srv)
		}
		res := serversResult{Addrs: make([]string, len(r.servers))}
		for i, s := range r.servers {
			res.Addrs[i] = s.Addr().String()
		}
		return res, nil
	case "set":
		var a setArgs
		if err := strictDecode(raw, &a); err != nil {
			return nil, fmt.Errorf("set: %w", err)
		}
		return r.setSessions(ctx, a)
	case "sample":
		return r.sample(), nil
	}
	return nil, fmt.Errorf("unknown op %q (the generator knows config, servers, set and sample)", op)
}

// retire closes c and adds its final counts to the ended sum.
func (r *genRole) retire(c *loadgen.Client) {
	lostErr := c.Err()
	_ = c.Close()
	st := c.Stats()
	r.ended.Bytes += st.Bytes
	r.ended.Messages += st.Messages
	r.ended.Draws += st.Draws
	if lostErr != nil {
		r.lost++
		if r.firstLost == "" {
			r.firstLost = lostErr.Error()
		}
	}
}

func (r *genRole) setSessions(ctx context.Context, a setArgs) (any, error) {
	if a.N < 0 || a.TimeoutMS <= 0 {
		return nil, fmt.Errorf("set: n %d, timeout %d ms: want n >= 0 and a timeout", a.N, a.TimeoutMS)
	}
	if need := (a.N + r.cfg.SessionsPerServer - 1) / r.cfg.SessionsPerServer; len(a.Dial) < need {
		return nil, fmt.Errorf("set: %d sessions need %d servers' routes, got %d", a.N, need, len(a.Dial))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.TimeoutMS)*time.Millisecond)
	defer cancel()
	// Sessions that ended by themselves are replaced; the newest go first
	// when there are too many.
	kept := r.live[:0]
	for _, c := range r.live {
		if c.Err() != nil {
			r.retire(c)
		} else {
			kept = append(kept, c)
		}
	}
	r.live = kept
	for len(r.live) > a.N {
		last := len(r.live) - 1
		r.retire(r.live[last])
		r.live[last] = nil
		r.live = r.live[:last]
	}
	base, want := len(r.live), a.N-len(r.live)
	if want == 0 {
		return setResult{Sessions: len(r.live)}, nil
	}
	fresh := make([]*loadgen.Client, want)
	errs := make([]error, want)
	parallel := r.cfg.Parallel
	if parallel == 0 {
		parallel = loadgen.DefaultParallel
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = context.Cause(ctx)
				return
			}
			defer func() { <-sem }()
			addr := a.Dial[(base+i)/r.cfg.SessionsPerServer]
			fresh[i], errs[i] = loadgen.Dial(ctx, loadgen.ClientConfig{Addr: addr})
		}()
	}
	wg.Wait()
	var first error
	linked := 0
	for i, c := range fresh {
		if c != nil {
			r.live = append(r.live, c)
			linked++
		} else if first == nil {
			first = errs[i]
		}
	}
	if first != nil {
		return nil, fmt.Errorf("set: %d of %d new sessions linked (%d run): %w", linked, want, len(r.live), first)
	}
	// Flowing: every new session has read a draw.
	tick := time.NewTicker(flowPoll)
	defer tick.Stop()
	for _, c := range fresh {
		for c.Stats().Draws == 0 {
			if err := c.Err(); err != nil {
				return nil, fmt.Errorf("set: a new session ended before its first draw: %w", err)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				waiting := 0
				for _, c := range fresh {
					if c.Stats().Draws == 0 {
						waiting++
					}
				}
				return nil, fmt.Errorf("set: %d of %d new sessions read no draw within %d ms", waiting, want, a.TimeoutMS)
			}
		}
	}
	return setResult{Sessions: len(r.live)}, nil
}

func (r *genRole) sample() genSample {
	g := genSample{Bytes: r.ended.Bytes, Messages: r.ended.Messages, Draws: r.ended.Draws, Lost: r.lost, FirstLost: r.firstLost}
	for _, c := range r.live {
		st := c.Stats()
		g.Bytes += st.Bytes
		g.Messages += st.Messages
		g.Draws += st.Draws
		if err := c.Err(); err != nil {
			g.Lost++
			if g.FirstLost == "" {
				g.FirstLost = err.Error()
			}
		} else {
			g.Sessions++
		}
	}
	for _, s := range r.servers {
		g.AckWaitNS += int64(s.Stats().AckWaitS * float64(time.Second))
	}
	return g
}

func (r *genRole) close() error {
	var wg sync.WaitGroup
	for _, c := range r.live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Close()
		}()
	}
	wg.Wait()
	r.live = nil
	for _, s := range r.servers {
		_ = s.Close()
	}
	r.servers = nil
	return nil
}
