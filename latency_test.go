//go:build loadtest

// The Kerbside console latency loadtest.
//
// This file is the composition root: the one place that decides what is
// real and what is fake. With LATENCY_PROVIDER=fake it stands the fake
// cloud and fakeryll in (fixtures/fakechain) and hands the product an
// ordinary openstack configuration; otherwise the product meets the real
// thing.
//
// TestMain validates the configuration, provisions the console and starts
// ryll; TestLatency's subtests check the handshake, drive the key cadence
// while writing every sample to the CSV and assert the samples' sanity.
// Whatever happens (failure, panic, timeout, SIGINT, SIGTERM), TestMain's
// one exit path then writes the sidecar, plot, benchmark file and
// summary, stops ryll and deletes the server before the process exits.
//
// Run it with `make loadtest`, or `go test -tags loadtest -run TestLatency .`;
// configure it with LATENCY_* variables (README.md, Configuration).
package latency

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakechain"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/loadtest"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// The state TestMain sets up for TestLatency. Tests in one package share
// it because the consoles and ryll are provisioned once per run.
var (
	cfg      *config.Config
	fleet    *loadtest.Fleet
	abRun    *loadtest.AB // set instead of fleet for an A/B run
	setupErr error        // configuration: nothing was set up
	// runCtx ends on SIGINT, SIGTERM, or shortly before go test's own
	// -timeout (which would kill the binary without any cleanup).
	runCtx context.Context
)

// setupSlack is what a run may spend outside the configured timeouts:
// authenticating, uploading an image, starting ryll, writing results.
const setupSlack = 5 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) (code int) {
	flag.Parse()
	// A CI runner that cancels kills the reader of our output (gotestsum,
	// go test) too: a write to the dead pipe must fail, not kill the run
	// before it has written its results and deleted its server.
	signal.Ignore(syscall.SIGPIPE)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if !selected() {
		// -list, or a -run/-skip that leaves TestLatency out: nothing to
		// provision.
		return m.Run()
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if d := testTimeout(); d > 0 {
		margin := min(max(d/5, 30*time.Second), 5*time.Minute)
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, d-margin,
			fmt.Errorf("stopping %s before go test's -timeout=%s so that cleanup can run; raise TIMEOUT (make) or -timeout", margin, d))
		defer cancelT()
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	interrupted := make(chan os.Signal, 1)
	go func() {
		first := true
		for sig := range signals {
			if first {
				first = false
				interrupted <- sig
				logger.Warn("signal received: stopping the run, writing what was collected and cleaning up", "signal", sig.String())
				cancel(fmt.Errorf("received %s", sig))
				continue
			}
			logger.Warn("signal received again: cleanup is still running (SIGKILL abandons it; then run make sweep)", "signal", sig.String())
		}
	}()
	defer announcePID(logger)()
	runCtx = ctx

	var err error
	cfg, err = config.Load(os.Getenv)
	if err != nil {
		setupErr = err
		logger.Error("configuration", "err", err)
		return m.Run()
	}
	if testTimeout() == 0 {
		// A compiled binary run without -test.timeout has no bound at all;
		// give it one from its own settings, so a wedged step cannot hang
		// a CI job for ever.
		bound := cfg.Cloud.BootTimeout + cfg.ReadyTimeout + cfg.MaxDuration + setupSlack
		var cancelB context.CancelFunc
		ctx, cancelB = context.WithTimeoutCause(ctx, bound, fmt.Errorf(
			"the run exceeded its bound of %s (LATENCY_BOOT_TIMEOUT + LATENCY_READY_TIMEOUT + LATENCY_MAX_DURATION + %s); pass -test.timeout to set another", bound, setupSlack))
		defer cancelB()
		runCtx = ctx
	}
	logger.Info("loadtest starting", "run", cfg.RunID, "provider", cfg.Provider, "metric", cfg.Metric,
		"samples", cfg.Samples, "cadence", cfg.Cadence, "results", cfg.ResultsDir)

	// The fakes are wired here and nowhere else. FAKERYLL_* knobs reach
	// ryll whatever the provider: fakeryll reads them, ryll ignores them.
	environ := os.Environ()
	opts := loadtest.Options{Logger: logger, RyllEnv: fakechain.Knobs(environ), MemberEnv: fakechain.PerConsoleKnobs(environ),
		LegEnv: fakechain.PerLegKnobs(environ)}
	if cfg.AutoReason != "" {
		logger.Info(cfg.AutoReason)
	}
	var chain *fakechain.Chain
	if fakechain.Needed(cfg) {
		chain, err = fakechain.Start(ctx, cfg, fakechain.Options{Logger: logger})
		if err != nil {
			setupErr = err
			logger.Error("stand-ins", "err", err)
			return m.Run()
		}
		cfg = chain.Apply(cfg)
		opts.RyllEnv = append(chain.RyllEnv(), opts.RyllEnv...)
		opts.Getenv = chain.Getenv()
		opts.Console.CloudOptions = chain.CloudOptions()
		opts.Secrets = chain.Secrets()
	}

	defer func() {
		tctx, tcancel := cloud.CleanupContext(context.Background(), cloud.DefaultCleanupTimeout+time.Minute)
		defer tcancel()
		p := recover()
		if p != nil {
			logger.Error("panic: writing results and cleaning up before re-panicking", "panic", p)
		}
		// The one exit path for results: every console's files are
		// written here, once, whatever the tests reached.
		if _, err := fleet.WriteResults(os.Stdout); err != nil {
			logger.Error("writing results failed", "err", err)
			code = max(code, 1)
		}
		if _, err := abRun.WriteResults(os.Stdout); err != nil {
			logger.Error("writing results failed", "err", err)
			code = max(code, 1)
		}
		if err := errors.Join(fleet.Teardown(tctx), abRun.Teardown(tctx)); err != nil {
			logger.Error("cleanup failed: run `make sweep` to delete what this run left", "run", cfg.RunID, "err", err)
			code = max(code, 1)
		}
		if chain != nil {
			if err := chain.Close(); err != nil {
				logger.Error("fake provider", "err", err)
				code = max(code, 1)
			}
		}
		if p != nil {
			panic(p)
		}
		select {
		case sig := <-interrupted:
			logger.Error("run interrupted", "signal", sig.String())
			code = max(code, 1)
		default:
		}
	}()

	if cfg.AB != nil {
		abRun = loadtest.SetupAB(ctx, cfg, opts)
		if abRun.SetupErr != nil {
			logger.Error("A/B setup failed", "err", abRun.SetupErr)
		}
		return m.Run()
	}
	fleet = loadtest.SetupFleet(ctx, cfg, opts)
	for _, mb := range fleet.Members {
		if mb.SetupErr != nil {
			logger.Error("setup failed", "console", mb.Label, "err", mb.SetupErr)
		}
	}
	return m.Run()
}

// selected reports whether this invocation runs TestLatency: not for
// -test.list, nor when -test.run or -test.skip leave it out. go test
// matches the first slash-separated element of the pattern against the
// top-level test name.
func selected() bool {
	if v := flagValue("test.list"); v != "" {
		return false
	}
	top := func(pattern string) string {
		first, _, _ := strings.Cut(pattern, "/")
		return first
	}
	if run := flagValue("test.run"); run != "" {
		if ok, err := regexp.MatchString(top(run), "TestLatency"); err == nil && !ok {
			return false
		}
	}
	if skip := flagValue("test.skip"); skip != "" && !strings.Contains(skip, "/") {
		if ok, err := regexp.MatchString(skip, "TestLatency"); err == nil && ok {
			return false
		}
	}
	return true
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// testTimeout is go test's -timeout for this binary (0 when none).
func testTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if d, ok := g.Get().(time.Duration); ok {
			return d
		}
	}
	return 0
}

func TestLatency(t *testing.T) {
	require.NoError(t, setupErr, "invalid configuration; nothing was set up")
	if abRun != nil {
		testAB(t, abRun)
		return
	}
	require.NotNil(t, fleet)
	// Every console is measured at once, here, whatever go test's
	// -parallel is; the subtests then judge what each one found.
	fleet.MeasureAll(runCtx)
	if len(fleet.Members) == 1 {
		testConsole(t, fleet.Members[0])
		return
	}
	t.Run("Consoles", func(t *testing.T) {
		for _, mb := range fleet.Members {
			t.Run(mb.Label, func(t *testing.T) { testConsole(t, mb) })
		}
	})
	// The pooled figures, from what the consoles measured (the run
	// summary file is written by TestMain's exit path).
	var pooled []float64
	var misses, dropped, failed int
	for _, mb := range fleet.Members {
		mm, errs := mb.Outcome()
		if mm != nil {
			v := mm.Result.Values()
			pooled = append(pooled, v...)
			misses += len(mm.Result.Misses)
			dropped += mm.Result.Dropped
			if results.NewSanity(v, cfg.SanityMin, cfg.SanityMax).Verdict != results.VerdictPass {
				errs = append(errs, errors.New("sanity"))
			}
		}
		if mm == nil || len(errs) > 0 {
			failed++
		}
	}
	t.Attr("metric", string(fleet.Members[0].Session.Metric()))
	t.Attr("consoles", fmt.Sprint(len(fleet.Members)))
	t.Attr("failed_consoles", fmt.Sprint(failed))
	attrFigures(t, len(pooled), misses, dropped, stats.Summarize(pooled))
}

// attrFigures records the key figures as JUnit properties.
func attrFigures(t *testing.T, samples, misses, dropped int, s stats.Summary) {
	t.Attr("samples", fmt.Sprint(samples))
	t.Attr("misses", fmt.Sprint(misses))
	t.Attr("dropped", fmt.Sprint(dropped))
	if s.Count > 0 {
		t.Attr("p50_s", fmt.Sprintf("%.6f", s.P50))
		t.Attr("p95_s", fmt.Sprintf("%.6f", s.P95))
		t.Attr("p99_s", fmt.Sprintf("%.6f", s.P99))
	}
}

// testConsole judges one console from what it measured. Its results are
// written by TestMain's exit path.
func testConsole(t *testing.T, mb *loadtest.Member) {
	require.NoError(t, mb.SetupErr, "setup (console, ryll) failed; nothing was measured")
	sess := mb.Session

	t.Run("Handshake", func(t *testing.T) {
		h := sess.Hello
		t.Logf("server %q speaks protocol %s; methods %v; events %v", h.ServerName, h.ProtocolVersion, h.SupportedMethods, h.SupportedEvents)
		require.NoError(t, sess.HandshakeErr)
	})
	if sess.HandshakeErr != nil {
		t.Fatalf("not measuring: %v", sess.HandshakeErr)
	}

	m, err := mb.Measured()
	t.Run("Measure", func(t *testing.T) {
		if m != nil {
			res := m.Result
			t.Logf("%d samples, %d misses, %d unpaired draws, %d dropped events, stop: %s; CSV %s",
				len(res.Samples), len(res.Misses), res.UnpairedDraws, res.Dropped, res.StopReason, m.CSVPath)
		}
		require.NoError(t, err, "the run ended early; what was collected is kept")
		assert.Len(t, m.Result.Samples, cfg.Samples,
			"collected %d of %d samples before LATENCY_MAX_DURATION=%s (%d misses): raise LATENCY_MAX_DURATION, or look at the misses",
			len(m.Result.Samples), cfg.Samples, cfg.MaxDuration, len(m.Result.Misses))
	})

	var values []float64
	if m != nil {
		values = m.Result.Values()
	}
	var sanity results.Sanity
	t.Run("Sanity", func(t *testing.T) {
		require.NotEmpty(t, values, "no samples were collected")
		sanity = results.NewSanity(values, cfg.SanityMin, cfg.SanityMax)
		for _, o := range sanity.OutOfRange {
			t.Errorf("sample %d (CSV line %d) = %.6f s is outside [%g, %g] s (LATENCY_SANITY_MIN/MAX)",
				o.Index, o.Index+1, o.Value, cfg.SanityMin, cfg.SanityMax)
		}
		if cfg.ExpectP50Set {
			p50 := stats.Summarize(values).P50
			assert.True(t, p50 >= cfg.ExpectP50Min && p50 <= cfg.ExpectP50Max,
				"median %.6f s is outside LATENCY_EXPECT_P50=[%g, %g] s", p50, cfg.ExpectP50Min, cfg.ExpectP50Max)
		}
	})

	t.Attr("metric", string(sess.Metric()))
	t.Attr("run", sess.Cfg.RunID)
	t.Attr("provider", string(sess.Cfg.Requested))
	if m != nil {
		res := m.Result
		attrFigures(t, len(res.Samples), len(res.Misses), res.Dropped, stats.Summarize(values))
		if sess.Metric().Keypress() {
			// Both keypress figures, whichever one the CSV holds.
			for name, sum := range map[string]stats.Summary{"first_draw": res.FirstDraw, "repaint": res.Repaint} {
				if sum.Count > 0 {
					t.Attr(name+"_p50_s", fmt.Sprintf("%.6f", sum.P50))
					t.Attr(name+"_p95_s", fmt.Sprintf("%.6f", sum.P95))
				}
			}
			t.Attr("late", fmt.Sprint(res.Count(measure.VerdictLate)))
			t.Attr("suspects", fmt.Sprint(res.Suspects))
			t.Attr("background_rate_per_s", fmt.Sprintf("%.3f", res.Background.Rate))
			t.Attr("contamination", fmt.Sprintf("%.4f", res.Background.Contamination))
		}
	}
	if sanity.Verdict != "" {
		t.Attr("sanity", sanity.Verdict)
	}
}

// testAB runs the A/B: both legs in alternating blocks on one guest, then
// judges each leg like a console and B against A.
func testAB(t *testing.T, ab *loadtest.AB) {
	require.NoError(t, ab.SetupErr, "A/B setup failed; nothing was measured")
	runErr := ab.Run(runCtx)
	for _, l := range ab.Legs {
		t.Run(l.Name, func(t *testing.T) {
			m := l.Measurement
			require.NotNil(t, m, "the %s leg measured nothing", l.Name)
			res := m.Result
			t.Logf("%s: %s; %d samples in %d blocks, %d misses, %d suspect", l.Name, l.Console.Describe(), len(res.Samples), len(l.Blocks), len(res.Misses), res.Suspects)
			require.NoError(t, l.Err)
			assert.GreaterOrEqual(t, len(res.Samples), ab.Cfg.Samples, "samples of the %s leg", l.Name)
			s := results.NewSanity(res.Values(), ab.Cfg.SanityMin, ab.Cfg.SanityMax)
			for _, o := range s.OutOfRange {
				t.Errorf("%s leg sample %d = %.6f s is outside [%g, %g] s", l.Name, o.Index, o.Value, ab.Cfg.SanityMin, ab.Cfg.SanityMax)
			}
			attrFigures(t, len(res.Samples), len(res.Misses), res.Dropped, stats.Summarize(res.Values()))
		})
	}
	t.Run("Compare", func(t *testing.T) {
		require.NoError(t, runErr, "the A/B ended early")
		c := ab.Compare()
		for _, m := range c.Metrics {
			t.Logf("%s: A %.2f ms, B %.2f ms, B-A %+.2f ms [%+.2f, %+.2f], p=%.3g: %s", m.Metric, m.AMedianS*1000, m.BMedianS*1000,
				m.DifferenceS*1000, m.DifferenceCIS[0]*1000, m.DifferenceCIS[1]*1000, m.P, m.Verdict)
			short := measure.Metric(m.Metric).Short()
			t.Attr("ab_"+short+"_a_p50_s", fmt.Sprintf("%.6f", m.AMedianS))
			t.Attr("ab_"+short+"_b_p50_s", fmt.Sprintf("%.6f", m.BMedianS))
			t.Attr("ab_"+short+"_added_s", fmt.Sprintf("%.6f", m.DifferenceS))
			t.Attr("ab_"+short+"_p", fmt.Sprintf("%.4g", m.P))
			t.Attr("ab_"+short+"_verdict", m.Verdict)
			// VERDICT: the interval and what it proves.
			t.Attr("ab_"+short+"_ci_lo_s", fmt.Sprintf("%.6f", m.DifferenceCIS[0]))
			t.Attr("ab_"+short+"_ci_hi_s", fmt.Sprintf("%.6f", m.DifferenceCIS[1]))
			t.Attr("ab_"+short+"_outcome", m.Outcome)
			if m.SamplesNeeded != 0 {
				t.Attr("ab_"+short+"_samples_needed", fmt.Sprint(m.SamplesNeeded))
			}
		}
		// VERDICT: the host figures of each leg, and whether it was too busy.
		for name, l := range map[string]results.ABLeg{"a": c.A, "b": c.B} {
			if h := l.Host; h != nil {
				t.Logf("host during %s: %s", strings.ToUpper(name), h.Figures.String())
				t.Attr("ab_host_"+name+"_lag_p99_s", fmt.Sprintf("%.6f", h.Lag.P99S))
				t.Attr("ab_host_"+name+"_runnable_mean", fmt.Sprintf("%.2f", h.RunnableMean))
				t.Attr("ab_host_"+name+"_late_samples", fmt.Sprint(h.LateSamples))
			}
		}
		if len(c.HostBusy) > 0 {
			t.Attr("ab_host_busy", strings.Join(c.HostBusy, "; "))
		}
		t.Attr("ab_verdict", c.Verdict)
		// VERDICT: pass only when proven; the message starts with the verdict (inconclusive, fail, incomplete).
		assert.Equal(t, "pass", c.Verdict, "%s: %s", c.Verdict, strings.Join(c.Reasons, "; "))
	})
}

// announcePID writes this process's pid to LATENCY_PID_FILE when it is
// set (cmd/latency-run sets it), now that SIGINT and SIGTERM are handled,
// so that latency-run can stop the loadtest itself rather than its whole
// command line (which would take gotestsum, and junit.xml, with it). The
// returned func removes the file.
func announcePID(logger *slog.Logger) func() {
	path := os.Getenv("LATENCY_PID_FILE")
	if path == "" {
		return func() {}
	}
	// Written whole and renamed, so a reader never sees half a pid.
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		logger.Warn("could not write LATENCY_PID_FILE: a stop through latency-run will signal the whole command instead", "path", path, "err", err)
		return func() {}
	}
	return func() { _ = os.Remove(path) }
}
