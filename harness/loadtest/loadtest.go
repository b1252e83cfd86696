// Package loadtest ties the pieces of one latency run together: the
// console (harness/console), the ryll process (harness/ryll), the control
// connection (harness/control), the measurement (harness/measure) and the
// result files (harness/results).
//
// A Session is one console measured through one ryll; a Fleet is every
// console of a run, each a Member. latency_test.go drives it: TestMain
// calls SetupFleet and, on its one exit path whatever happened,
// Fleet.WriteResults and Fleet.Teardown; the subtests check the
// handshake, measure and check sanity. Keeping the orchestration here,
// rather than in the test file, lets it be tested like any library.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/console"
	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/ryll"
)

// ClientName is what the loadtest calls itself in hello.
const ClientName = "kerbside-latency-loadtest"

// Options carry what Setup needs besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Getenv reads the OS_* variables of the openstack provider
	// (os.Getenv when nil).
	Getenv func(string) string
	// RyllEnv is added to every ryll's environment (NAME=VALUE), on top
	// of the few variables ryll inherits (harness/ryll).
	RyllEnv []string
	// MemberEnv, when set, adds environment to console i's ryll only,
	// after RyllEnv.
	MemberEnv func(i int) []string
	// LegEnv, when set, adds environment to an A/B leg's ryll ("A" or
	// "B"), after RyllEnv.
	LegEnv func(leg string) []string
	// Secrets are further values no output may contain (for example the
	// credentials of a cloud the caller stood up).
	Secrets []string

	// AppendRyllLog appends to ryll-<run>.log instead of starting it
	// afresh (an A/B leg starts ryll once per block).
	AppendRyllLog bool

	// preflight, set by SetupFleet, is the check it made once for all
	// consoles.
	preflight *Checked
	// Console tunes the console providers (fake cloud options, cloud
	// client options).
	Console console.Options
	// RyllGrace tunes the stop ladder (defaults when zero).
	RyllGrace ryll.Grace
	// Lane says what runs in ryll's place, for the records (ryll when
	// empty).
	Lane Lane
	// RampRig makes a load ramp's proxy under test and source of busy
	// sessions (LATENCY_LOAD); nil is the one this build has.
	RampRig NewRampRig
}

// Session is one console measured through one ryll: what Setup made.
type Session struct {
	Cfg     *config.Config
	Console *console.Console
	Ryll    *ryll.Process
	Client  *control.Client
	Hello   control.HelloResult
	// HandshakeErr is the verdict on Hello, judged once by Setup: nil
	// when the server can serve the configured metric.
	HandshakeErr error
	// Subscribed is what the server accepted.
	Subscribed []string

	RyllBinary  string
	RyllVersion string
	RyllLog     string
	Start       time.Time
	// Lane says where the numbers come from (Options.Lane).
	Lane Lane

	logger      *slog.Logger
	ownsConsole bool
	teardown    sync.Once
	tdErr       error

	transcript *transcriptFile // LATENCY_TRANSCRIPT (transcript.go)
}

// Setup resolves the ryll binary, provisions the console, starts ryll,
// waits until its control socket answers hello and shows a surface, and
// judges the handshake (HandshakeErr). It returns the Session even on
// error (with whatever it made), so the caller can always call Teardown.
func Setup(ctx context.Context, cfg *config.Config, opts Options) (*Session, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	r := &Session{Cfg: cfg, logger: logger, Start: time.Now(), Lane: opts.Lane.orDefault()}
	if cfg.RyllSocket != "" {
		return r, r.attachSocket(ctx)
	}

	// Everything that can fail without a console fails first: a missing
	// ryll or an unwritable results directory must not cost a server boot.
	pf := opts.preflight
	if pf == nil {
		p, err := Preflight(ctx, cfg, opts.RyllEnv...)
		if err != nil {
			return r, err
		}
		pf = &p
		logger.Info("ryll", "binary", p.RyllBinary, "version", p.RyllVersion)
	}
	r.RyllBinary, r.RyllVersion = pf.RyllBinary, pf.RyllVersion

	copts := opts.Console
	copts.Logger = logger
	copts.Getenv = getenv
	con, err := console.Open(ctx, cfg, copts)
	if err != nil {
		return r, err
	}
	con.Secrets = append(con.Secrets, opts.Secrets...)
	r.Console, r.ownsConsole = con, true
	return r, r.attach(ctx, opts)
}

// Attach starts ryll on a console the caller opened and owns (an A/B
// leg reconnects to the same console for every block): the Session's
// Teardown stops ryll and leaves the console open. pf is what Preflight
// found. Like Setup, it returns the Session even on error.
func Attach(ctx context.Context, cfg *config.Config, con *console.Console, pf Checked, opts Options) (*Session, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Session{Cfg: cfg, logger: logger, Start: time.Now(), Console: con,
		RyllBinary: pf.RyllBinary, RyllVersion: pf.RyllVersion, Lane: opts.Lane.orDefault()}
	return r, r.attach(ctx, opts)
}

// attach starts ryll on r.Console, waits until it is ready and judges
// the handshake.
func (r *Session) attach(ctx context.Context, opts Options) error {
	cfg, con, logger := r.Cfg, r.Console, r.logger
	r.RyllLog = filepath.Join(cfg.ResultsDir, results.RyllLogName(cfg.RunID))
	u, file, direct := con.RyllSource()
	proc, err := ryll.New(ryll.Spec{
		Binary: r.RyllBinary, URL: u, File: file, Direct: direct,
		Verbose: cfg.RyllVerbose, ExtraEnv: opts.RyllEnv, LogPath: r.RyllLog,
		AppendLog: opts.AppendRyllLog,
		Secrets:   con.Secrets, Logger: logger, Grace: opts.RyllGrace,
	})
	if err != nil {
		return fmt.Errorf("prepare ryll: %w", err)
	}
	r.Ryll = proc
	if err := proc.Start(ctx); err != nil {
		return err
	}

	// LATENCY_TRANSCRIPT: every control-socket line, redacted (transcript.go).
	if r.transcript, err = openTranscript(cfg, opts.AppendRyllLog); err != nil {
		return err
	}
	probe, client := r.readyProbe(proc.SocketPath())
	if err := proc.WaitReady(ctx, probe, cfg.ReadyTimeout); err != nil {
		if *client != nil {
			(*client).Close()
		}
		return fmt.Errorf("wait for ryll to be ready (LATENCY_READY_TIMEOUT=%s): %w", cfg.ReadyTimeout, err)
	}
	r.connected(*client)
	return nil
}

// connected records the ready control connection and judges the
// handshake.
func (r *Session) connected(client *control.Client) {
	r.Client = client
	r.Hello, _ = client.Server()
	r.HandshakeErr = r.checkHandshake()
	r.logger.Info("control socket ready", "console", r.Console.Describe(), "server", r.Hello.ServerName, "protocol", r.Hello.ProtocolVersion)
}

// attachSocket connects to a ryll that is already running
// (LATENCY_RYLL_SOCKET): no console is provisioned and no ryll is
// started or stopped; the run measures whatever that ryll shows. It waits
// for readiness like a started ryll, bounded by LATENCY_READY_TIMEOUT.
func (r *Session) attachSocket(ctx context.Context) error {
	if err := checkWritable(r.Cfg.ResultsDir); err != nil {
		return fmt.Errorf("LATENCY_RESULTS_DIR=%s is not a directory this run can write: %w", r.Cfg.ResultsDir, err)
	}
	r.Console = &console.Console{Provider: r.Cfg.Provider}
	r.RyllBinary, r.RyllVersion = "(attached: "+r.Cfg.RyllSocket+")", "unknown (not started by the loadtest)"
	var err error
	if r.transcript, err = openTranscript(r.Cfg, false); err != nil {
		return err
	}
	probe, client := r.readyProbe(r.Cfg.RyllSocket)
	ctx, cancel := context.WithTimeout(ctx, r.Cfg.ReadyTimeout)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		err := probe(ctx)
		if err == nil {
			r.connected(*client)
			return nil
		}
		if ryll.IsPermanent(err) || ctx.Err() != nil {
			if *client != nil {
				(*client).Close()
			}
			return fmt.Errorf("attach to the ryll at LATENCY_RYLL_SOCKET=%s (LATENCY_READY_TIMEOUT=%s): %w", r.Cfg.RyllSocket, r.Cfg.ReadyTimeout, err)
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		case <-ctx.Done():
		}
	}
}

// readyProbe is the readiness check of a control socket: it dials (once
// the previous connection is gone), says hello and wants a surface. The
// connection it made is in *client.
func (r *Session) readyProbe(socket string) (probe func(context.Context) error, client **control.Client) {
	var c *control.Client
	client = &c
	logger := r.logger
	probe = func(ctx context.Context) error {
		if c != nil && c.Err() != nil {
			c.Close()
			c = nil
		}
		if c == nil {
			dialed, err := control.Dial(ctx, socket, control.Options{ClientName: ClientName, Logger: logger,
				Transcript: r.transcript.writer(), Secrets: r.Console.Secrets, MaxLineBytes: maxControlLine})
			if err != nil {
				var vm *control.VersionMismatchError
				if errors.As(err, &vm) {
					// Waiting will not change the version ryll speaks.
					return ryll.Permanent(err)
				}
				return err
			}
			c = dialed
		}
		st, err := c.Status(ctx)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if len(st.Surfaces) == 0 {
			return errors.New("connected, but status.surfaces is still empty: the guest display is not up")
		}
		return nil
	}
	return probe, client
}

// Checked is what Preflight found.
type Checked struct {
	RyllBinary  string
	RyllVersion string
}

// Preflight checks, before anything is provisioned, what a run needs
// that no console can give it: a results directory it can write, and a
// ryll that runs and says its version. The error names the setting to
// fix.
func Preflight(ctx context.Context, cfg *config.Config, ryllEnv ...string) (Checked, error) {
	if err := checkWritable(cfg.ResultsDir); err != nil {
		return Checked{}, fmt.Errorf("LATENCY_RESULTS_DIR=%s is not a directory this run can write: %w", cfg.ResultsDir, err)
	}
	bin, err := resolveRyll(cfg.Ryll)
	if err != nil {
		return Checked{}, err
	}
	v, err := ryll.Version(ctx, bin, ryllEnv...)
	if err != nil {
		return Checked{}, fmt.Errorf("ryll %s does not run (LATENCY_RYLL): %w", bin, err)
	}
	return Checked{RyllBinary: bin, RyllVersion: v}, nil
}

// checkWritable creates dir if needed and writes and removes a file in
// it.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".latency-write-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok\n"))
	cerr := f.Close()
	_ = os.Remove(name)
	return errors.Join(werr, cerr)
}

// resolveRyll finds the ryll binary.
func resolveRyll(name string) (string, error) {
	if name == "" {
		name = "ryll"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("ryll binary %q not found: install ryll (cargo build --release --no-default-features -p ryll) and put it on PATH, set LATENCY_RYLL=/path/to/ryll, or use LATENCY_PROVIDER=fake: %w", name, err)
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	return bin, nil
}

// Metric is what the session measures.
func (r *Session) Metric() measure.Metric { return r.Cfg.Measure.Metric }

// requiredEvents are the events the metric cannot do without.
func (r *Session) requiredEvents() []string {
	if !r.Cfg.Measure.Metric.Keypress() {
		return []string{control.EventLatency}
	}
	return []string{control.EventSurfaceDrawn}
}

// checkHandshake says whether the server can serve the configured metric:
// a 1.0 server has no surface_drawn, so keypress-to-screen cannot be
// measured and the error names the alternative.
func (r *Session) checkHandshake() error {
	if r.Client == nil {
		return errors.New("no control connection")
	}
	v := r.Hello.Version
	if v.Major != 1 {
		return fmt.Errorf("server speaks protocol %s; this loadtest speaks %s", r.Hello.ProtocolVersion, control.ProtocolVersion)
	}
	if r.Cfg.Measure.Metric.Keypress() && !r.Hello.SupportsMethod("send_key") {
		return fmt.Errorf("ryll (protocol %s) does not offer send_key, which LATENCY_METRIC=%s needs to press keys", r.Hello.ProtocolVersion, r.Cfg.Measure.Metric.Short())
	}
	for _, ev := range r.requiredEvents() {
		if !r.Hello.SupportsEvent(ev) {
			if ev == control.EventSurfaceDrawn {
				return fmt.Errorf("ryll speaks control protocol %s, which has no %s event (added in 1.1), so keypress-to-screen latency cannot be measured: upgrade ryll, or set LATENCY_METRIC=ping to measure the PING interval instead", r.Hello.ProtocolVersion, ev)
			}
			return fmt.Errorf("ryll (protocol %s) does not offer the %s event that LATENCY_METRIC=%s needs", r.Hello.ProtocolVersion, ev, r.Cfg.Measure.Metric.Short())
		}
	}
	if r.Cfg.Scancode > 0xff && !v.AtLeast(1, 2) {
		return fmt.Errorf("LATENCY_SCANCODE=0x%04X is an extended key, which ryll before protocol 1.2 sends wrongly (server speaks %s): use a plain key such as 0x39", r.Cfg.Scancode, r.Hello.ProtocolVersion)
	}
	return nil
}

// Teardown stops ryll, closes the control connection and deletes the
// server, each step bounded, whatever state the run is in. It is safe to
// call more than once; later calls return the first call's error. Pass a
// context that is not the (possibly cancelled) run context: see
// cloud.CleanupContext.
func (r *Session) Teardown(ctx context.Context) error {
	r.teardown.Do(func() {
		var errs []error
		if r.Client != nil {
			r.Client.Close()
		}
		if err := r.transcript.close(); err != nil {
			errs = append(errs, err)
		}
		if r.Ryll != nil {
			if err := r.Ryll.Stop(ctx); err != nil {
				var ee *ryll.ExitError
				if !errors.As(err, &ee) {
					errs = append(errs, fmt.Errorf("stop ryll: %w", err))
				}
			}
		}
		if r.Console != nil && r.ownsConsole {
			if err := r.Console.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		r.tdErr = errors.Join(errs...)
	})
	return r.tdErr
}

// Secrets lists the values no output may contain.
func (r *Session) Secrets() []string {
	if r.Console == nil {
		return nil
	}
	return r.Console.Secrets
}
