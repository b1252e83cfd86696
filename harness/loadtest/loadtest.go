// Package loadtest ties the pieces of one latency run together: the
// console (harness/console), the ryll process (harness/ryll), the control
// connection (harness/control), the measurement (harness/measure) and the
// result files (harness/results, harness/report).
//
// latency_test.go drives it: TestMain calls Setup and, whatever happens,
// Teardown; the subtests check the handshake, call Measure, check sanity
// and call WriteResults. Keeping the orchestration here, rather than in
// the test file, lets it be tested against fakeryll like any library.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/console"
	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/ryll"
)

// ClientName is what the loadtest calls itself in hello.
const ClientName = "kerbside-latency-loadtest"

// FakeryllPackage is built when the fake provider has no LATENCY_RYLL.
const FakeryllPackage = "github.com/shakenfist/kerbside-latency/fakeryll"

// Options carry what Setup needs besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Getenv reads OS_* and FAKERYLL_* variables (os.Getenv when nil).
	Getenv func(string) string
	// Environ lists the environment to pick FAKERYLL_* knobs from
	// (os.Environ when nil). The knobs are passed to ryll's environment:
	// real ryll ignores them, fakeryll reads them.
	Environ func() []string
	// RyllEnv is added to ryll's environment after the knobs above.
	RyllEnv []string
	// Console tunes the console providers (fake cloud options, cloud
	// client options).
	Console console.Options
	// RyllGrace tunes the stop ladder (defaults when zero).
	RyllGrace ryll.Grace
}

// Run is one loadtest run: what Setup made and what Measure found.
type Run struct {
	Cfg     *config.Config
	Console *console.Console
	Ryll    *ryll.Process
	Client  *control.Client
	Hello   control.HelloResult
	// Subscribed is what the server accepted.
	Subscribed []string

	RyllBinary  string
	RyllVersion string
	RyllLog     string
	Start       time.Time

	logger   *slog.Logger
	workDir  string
	teardown sync.Once
	tdErr    error
}

// Setup resolves the ryll binary, provisions the console, starts ryll and
// waits until its control socket answers hello and shows a surface. It
// returns the Run even on error (with whatever it made), so the caller
// can always call Teardown.
func Setup(ctx context.Context, cfg *config.Config, opts Options) (*Run, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ
	}
	r := &Run{Cfg: cfg, logger: logger, Start: time.Now()}
	if err := os.MkdirAll(cfg.ResultsDir, 0o755); err != nil {
		return r, fmt.Errorf("create the results directory LATENCY_RESULTS_DIR=%s: %w", cfg.ResultsDir, err)
	}

	// The binary first: a missing ryll must not cost a server boot.
	bin, err := r.resolveRyll(ctx)
	if err != nil {
		return r, err
	}
	r.RyllBinary = bin
	if v, err := ryll.Version(ctx, bin); err != nil {
		logger.Warn("ryll --version failed; the sidecar will say unknown", "binary", bin, "err", err)
		r.RyllVersion = "unknown"
	} else {
		r.RyllVersion = v
	}
	logger.Info("ryll", "binary", bin, "version", r.RyllVersion)

	copts := opts.Console
	copts.Logger = logger
	copts.Getenv = getenv
	if cfg.Provider == config.ProviderFake && len(copts.CloudOptions) == 0 {
		copts.CloudOptions = []cloud.Option{cloud.WithPollInterval(50 * time.Millisecond)}
	}
	con, err := console.Open(ctx, cfg, copts)
	if err != nil {
		return r, err
	}
	r.Console = con

	r.RyllLog = filepath.Join(cfg.ResultsDir, "ryll-"+cfg.RunID+".log")
	var extra []string
	for _, kv := range environ() {
		if strings.HasPrefix(kv, "FAKERYLL_") {
			extra = append(extra, kv)
		}
	}
	extra = append(extra, opts.RyllEnv...)
	proc, err := ryll.New(ryll.Spec{
		Binary: bin, URL: con.URL, File: con.File, Direct: con.Direct,
		Verbose: cfg.RyllVerbose, ExtraEnv: extra, LogPath: r.RyllLog,
		Secrets: con.Secrets, Logger: logger, Grace: opts.RyllGrace,
	})
	if err != nil {
		return r, fmt.Errorf("prepare ryll: %w", err)
	}
	r.Ryll = proc
	if err := proc.Start(ctx); err != nil {
		return r, fmt.Errorf("start ryll: %w", err)
	}

	var client *control.Client
	probe := func(ctx context.Context) error {
		if client != nil && client.Err() != nil {
			client.Close()
			client = nil
		}
		if client == nil {
			c, err := control.Dial(ctx, proc.SocketPath(), control.Options{ClientName: ClientName, Logger: logger})
			if err != nil {
				return err
			}
			client = c
		}
		st, err := client.Status(ctx)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if len(st.Surfaces) == 0 {
			return errors.New("connected, but status.surfaces is still empty: the guest display is not up")
		}
		return nil
	}
	if err := proc.WaitReady(ctx, probe, cfg.ReadyTimeout); err != nil {
		if client != nil {
			client.Close()
		}
		return r, fmt.Errorf("wait for ryll to be ready (LATENCY_READY_TIMEOUT=%s): %w", cfg.ReadyTimeout, err)
	}
	r.Client = client
	r.Hello, _ = client.Server()
	logger.Info("control socket ready", "console", con.Describe(), "server", r.Hello.ServerName, "protocol", r.Hello.ProtocolVersion)
	return r, nil
}

// resolveRyll finds the ryll binary, or builds fakeryll for the fake
// provider when LATENCY_RYLL is not set.
func (r *Run) resolveRyll(ctx context.Context) (string, error) {
	cfg := r.Cfg
	if cfg.Ryll == "" && cfg.Provider == config.ProviderFake {
		dir, err := os.MkdirTemp("", "latency-fakeryll-")
		if err != nil {
			return "", fmt.Errorf("build fakeryll: %w", err)
		}
		r.workDir = dir
		bin := filepath.Join(dir, "fakeryll")
		r.logger.Info("building fakeryll for the fake provider (set LATENCY_RYLL to skip)")
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(bctx, "go", "build", "-o", bin, FakeryllPackage)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build fakeryll with go build (needs the Go toolchain; or set LATENCY_RYLL to a fakeryll binary): %w: %s", err, strings.TrimSpace(string(out)))
		}
		return bin, nil
	}
	name := cfg.Ryll
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

// Metric maps the configured metric to the measurement's.
func (r *Run) Metric() measure.Metric {
	if r.Cfg.Metric == config.MetricPing {
		return measure.PingInterval
	}
	return measure.KeypressToScreen
}

// requiredEvents are the events the metric cannot do without.
func (r *Run) requiredEvents() []string {
	if r.Cfg.Metric == config.MetricPing {
		return []string{control.EventLatency}
	}
	return []string{control.EventSurfaceDrawn}
}

// CheckHandshake says whether the server can serve the configured metric:
// a 1.0 server has no surface_drawn, so keypress-to-screen cannot be
// measured and the error names the alternative.
func (r *Run) CheckHandshake() error {
	if r.Client == nil {
		return errors.New("no control connection")
	}
	v := r.Hello.Version
	if v.Major != 1 {
		return fmt.Errorf("server speaks protocol %s; this loadtest speaks %s", r.Hello.ProtocolVersion, control.ProtocolVersion)
	}
	for _, ev := range r.requiredEvents() {
		if !r.Hello.SupportsEvent(ev) {
			if ev == control.EventSurfaceDrawn {
				return fmt.Errorf("ryll speaks control protocol %s, which has no %s event (added in 1.1), so keypress-to-screen latency cannot be measured: upgrade ryll, or set LATENCY_METRIC=ping to measure the PING interval instead", r.Hello.ProtocolVersion, ev)
			}
			return fmt.Errorf("ryll (protocol %s) does not offer the %s event that LATENCY_METRIC=%s needs", r.Hello.ProtocolVersion, ev, r.Cfg.Metric)
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
func (r *Run) Teardown(ctx context.Context) error {
	r.teardown.Do(func() {
		var errs []error
		if r.Client != nil {
			r.Client.Close()
		}
		if r.Ryll != nil {
			if err := r.Ryll.Stop(ctx); err != nil {
				var ee *ryll.ExitError
				if !errors.As(err, &ee) {
					errs = append(errs, fmt.Errorf("stop ryll: %w", err))
				}
			}
		}
		if r.Console != nil {
			if err := r.Console.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if r.workDir != "" {
			_ = os.RemoveAll(r.workDir)
		}
		r.tdErr = errors.Join(errs...)
	})
	return r.tdErr
}

// Secrets lists the values no output may contain.
func (r *Run) Secrets() []string {
	if r.Console == nil {
		return nil
	}
	return r.Console.Secrets
}
