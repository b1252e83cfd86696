// Package suite is the loadtest as a program: what a run does from the
// configuration to the results, in the shape of a go test suite.
//
// latency_test.go is only a door onto it: its TestMain calls Main, which
// loads the configuration, asks the composition root to wire whatever
// stands in for the far side, provisions the consoles, starts ryll and
// runs the tests; its TestLatency calls TestLatency, whose subtests
// measure and judge. Whatever happens (failure, panic, timeout, SIGINT,
// SIGTERM, a launcher that dies), Main's one exit path then writes the
// results, stops ryll and deletes the servers before the process exits.
//
// This package never decides what is fake: the composition root hands it
// a Wire function, and the product code below it meets whatever that
// function put in place.
package suite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/interrupt"
	"github.com/shakenfist/kerbside-latency/harness/lifeline"
	"github.com/shakenfist/kerbside-latency/harness/loadrig"
	"github.com/shakenfist/kerbside-latency/harness/loadtest"
)

// M is the part of *testing.M that Main needs.
type M interface{ Run() int }

// Wiring is what the composition root put in place for one run.
type Wiring struct {
	// Config is the configuration the product runs: cfg, or a copy that
	// points at a stand-in (a fake cloud, fakeryll).
	Config *config.Config
	// Lane says what speaks SPICE in ryll's place and whether its
	// numbers come from a real SPICE session (the records say it).
	Lane loadtest.Lane
	// Close stops the stand-ins once the run has cleaned up; nil when
	// there are none.
	Close func() error
}

// Wire lets the composition root stand things in for the far side of a
// run. It is called once, after the configuration is valid and before
// anything is provisioned; it may add to opts (ryll's environment,
// credentials, cloud options) and returns the wiring. An error means
// nothing was set up and nothing is left running.
type Wire func(ctx context.Context, cfg *config.Config, opts *loadtest.Options) (Wiring, error)

// setupSlack is what a run may spend outside the configured timeouts:
// authenticating, uploading an image, starting ryll, writing results.
const setupSlack = 5 * time.Minute

// state is what Main set up for TestLatency: go test runs both in one
// process, and the consoles and ryll are provisioned once per run.
type state struct {
	cfg      *config.Config
	lane     loadtest.Lane
	stop     *interrupt.Run // the run's phase and interrupt
	fleet    *loadtest.Fleet
	ab       *loadtest.AB   // set instead of fleet for an A/B run
	ramp     *loadtest.Ramp // set instead of fleet for a load ramp
	setupErr error          // nothing was set up: the test says why, once
	// ctx ends on SIGINT, SIGTERM, or shortly before go test's own
	// -timeout (which would kill the binary without any cleanup).
	ctx context.Context
}

var run state

// Main is TestMain's body: it sets the run up, runs the tests with
// m.Run, and on its one exit path writes the results and cleans up. It
// returns the process's exit code. rules are the composition root's
// checks of the environment (the fakes' FAKERYLL_* knobs), judged with
// the configuration, in its one message, before anything is set up.
func Main(m M, wire Wire, rules ...config.Rule) int {
	loadrig.Child() // a proxy or load generator re-executed from this binary runs its role and exits
	if !flag.Parsed() {
		flag.Parse()
	}
	// -list, or a -run/-skip that leaves TestLatency out: nothing to
	// provision.
	if !selected() {
		return m.Run()
	}
	return runMain(m, wire, rules...)
}

// runMain is Main once TestLatency is selected.
func runMain(m M, wire Wire, rules ...config.Rule) (code int) {
	// A CI runner that cancels kills the reader of our output (gotestsum,
	// go test) too: a write to the dead pipe must fail, not kill the run
	// before it has written its results and deleted its server.
	signal.Ignore(syscall.SIGPIPE)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	run = state{}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if d := testTimeout(); d > 0 {
		margin := min(max(d/5, 30*time.Second), 5*time.Minute)
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, d-margin,
			fmt.Errorf("stopping %s before go test's -timeout=%s so that cleanup can run; raise TIMEOUT (make) or -timeout", margin, d))
		defer cancelT()
	}
	// The run's phase, so that an interrupt says when it came; the
	// interrupt is the run context's cause.
	stop := interrupt.New("reading the configuration")
	run.stop = stop
	st := &stopper{stop: stop, cancel: cancel, logger: logger}
	defer watchSignals(st)()
	// Tell latency-run our pid, and stop as on SIGTERM when it is gone,
	// however it died (a SIGKILL to the whole group included).
	lifeline.Attach(logger, os.Getenv, func() { st.interrupt("latency-run, which started the run, is gone") })
	run.ctx = ctx

	cfg, err := config.Load(os.Environ(), rules...)
	if err != nil {
		run.setupErr = fmt.Errorf("invalid configuration; nothing was set up:\n%w", err)
		return m.Run()
	}
	run.cfg = cfg
	if testTimeout() == 0 {
		// A compiled binary run without -test.timeout has no bound at all;
		// give it one from its own settings, so a wedged step cannot hang
		// a CI job for ever.
		bound := cfg.Cloud.BootTimeout + cfg.ReadyTimeout + cfg.Measure.MaxDuration + setupSlack
		var cancelB context.CancelFunc
		ctx, cancelB = context.WithTimeoutCause(ctx, bound, fmt.Errorf(
			"the run exceeded its bound of %s (LATENCY_BOOT_TIMEOUT + LATENCY_READY_TIMEOUT + LATENCY_MAX_DURATION + %s); pass -test.timeout to set another", bound, setupSlack))
		defer cancelB()
		run.ctx = ctx
	}
	if cfg.AutoReason != "" {
		logger.Info(cfg.AutoReason)
	}

	// The exit path is in place before the stand-ins start, so that a run
	// stopped while they start still leaves its sidecar.
	var w Wiring
	defer func() {
		tctx, tcancel := cloud.CleanupContext(context.Background(), cloud.DefaultCleanupTimeout+time.Minute)
		defer tcancel()
		p := recover()
		if p != nil {
			logger.Error("panic: writing results and cleaning up before re-panicking", "panic", p)
		}
		stop.Enter("writing results and cleaning up")
		// The one exit path for results: every console's files are
		// written here, once, whatever the tests reached. A closed stdout
		// loses the printed summary, never the run.
		stdout := loadtest.NewSummaryWriter(os.Stdout)
		if _, err := run.fleet.WriteResults(stdout); err != nil {
			logger.Error("writing results failed", "err", err)
			code = max(code, 1)
		}
		if _, err := run.ab.WriteResults(stdout); err != nil {
			logger.Error("writing results failed", "err", err)
			code = max(code, 1)
		}
		if _, err := run.ramp.WriteResults(stdout); err != nil {
			logger.Error("writing results failed", "err", err)
			code = max(code, 1)
		}
		if err := stdout.Err(); err != nil {
			logger.Warn("the summary could not be printed; the results directory holds it all", "err", err)
		}
		if err := errors.Join(run.fleet.Teardown(tctx), run.ab.Teardown(tctx), run.ramp.Teardown(tctx)); err != nil {
			logger.Error("cleanup failed", "run", cfg.RunID, "err", err)
			code = max(code, 1)
		}
		if w.Close != nil {
			if err := w.Close(); err != nil {
				logger.Error("stand-ins", "err", err)
				code = max(code, 1)
			}
		}
		if p != nil {
			panic(p)
		}
		if in := stop.Err(); in != nil {
			logger.Error("run interrupted", "cause", in.Cause, "while", in.Phase, "after", in.After.Round(time.Millisecond))
			code = max(code, 1)
		}
	}()

	stop.Enter("starting the stand-ins")
	opts := loadtest.Options{Logger: logger}
	w, err = wire(ctx, cfg, &opts)
	if err != nil {
		err = stop.Explain(err)
		run.setupErr = fmt.Errorf("the stand-ins did not start; nothing was set up:\n%w", err)
		run.fleet = loadtest.NotStarted(cfg, err) // its sidecar says why nothing ran
		return m.Run()
	}
	cfg, run.cfg, run.lane = w.Config, w.Config, w.Lane
	opts.Lane = w.Lane
	logger.Info("loadtest starting", "run", cfg.RunID, "lane", w.Lane.Name(), "provider", cfg.Requested,
		"client", w.Lane.Client, "metric", cfg.Measure.Metric, "samples", cfg.Measure.Samples, "cadence", cfg.Measure.Cadence,
		"results", absPath(cfg.ResultsDir))

	stop.Enter("setting up the console and ryll")
	if cfg.AB != nil {
		run.ab = loadtest.SetupAB(ctx, cfg, opts)
		return m.Run()
	}
	if cfg.Ramp != nil {
		run.ramp = loadtest.SetupRamp(ctx, cfg, opts)
		return m.Run()
	}
	run.fleet = loadtest.SetupFleet(ctx, cfg, opts)
	return m.Run()
}

// stopper stops the run once, on the first of a signal or the loss of
// the launcher, and says that cleanup is still running on the next ones.
type stopper struct {
	stop   *interrupt.Run
	cancel context.CancelCauseFunc
	logger *slog.Logger

	mu      sync.Mutex
	stopped bool
}

func (s *stopper) interrupt(cause string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		s.logger.Warn("signal received again: cleanup is still running (a SIGKILL abandons it; make sweep then deletes any cloud server it left)", "cause", cause)
		return
	}
	s.stopped = true
	in := s.stop.Interrupt(cause)
	s.logger.Warn("stopping the run, writing what was collected and cleaning up", "cause", cause, "while", in.Phase)
	s.cancel(in)
}

// watchSignals hands SIGINT and SIGTERM to st until the returned func
// is called.
func watchSignals(st *stopper) func() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		for sig := range signals {
			st.interrupt("received " + sig.String())
		}
	}()
	// After Stop the signal package sends no more, so closing ends the
	// goroutine.
	return func() { signal.Stop(signals); close(signals) }
}

// absPath is dir as a path a user can cd to from anywhere.
func absPath(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
