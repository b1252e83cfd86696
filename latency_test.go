//go:build loadtest

// The Kerbside console latency loadtest.
//
// TestMain validates the configuration, provisions the console and starts
// ryll; TestLatency's subtests check the handshake, drive the key cadence
// while writing every sample to the CSV, assert the samples' sanity and
// write the sidecar, plot, benchmark file and summary. Whatever happens
// (failure, panic, timeout, SIGINT, SIGTERM), ryll is stopped and the
// server deleted before the process exits.
//
// Run it with `make loadtest`, or `go test -tags loadtest -run TestLatency .`;
// configure it with LATENCY_* variables (README.md, Configuration).
package latency

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/loadtest"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// The state TestMain sets up for TestLatency. Tests in one package share
// it because the consoles and ryll are provisioned once per run.
var (
	cfg      *config.Config
	fleet    *loadtest.Fleet
	setupErr error // configuration: nothing was set up
	// runCtx ends on SIGINT, SIGTERM, or shortly before go test's own
	// -timeout (which would kill the binary without any cleanup).
	runCtx context.Context
)

func TestMain(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) (code int) {
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

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
	runCtx = ctx

	var err error
	cfg, err = config.Load(os.Getenv)
	if err != nil {
		setupErr = err
		logger.Error("configuration", "err", err)
		return m.Run()
	}
	logger.Info("loadtest starting", "run", cfg.RunID, "provider", cfg.Provider, "metric", cfg.Metric,
		"samples", cfg.Samples, "cadence", cfg.Cadence, "results", cfg.ResultsDir)

	defer func() {
		tctx, tcancel := cloud.CleanupContext(context.Background(), cloud.DefaultCleanupTimeout+time.Minute)
		defer tcancel()
		if p := recover(); p != nil {
			logger.Error("panic: cleaning up before re-panicking", "panic", p)
			_ = fleet.Teardown(tctx)
			panic(p)
		}
		writeAllResults()
		if err := fleet.Teardown(tctx); err != nil {
			logger.Error("cleanup failed: run `make sweep` to delete what this run left", "run", cfg.RunID, "err", err)
			code = max(code, 1)
		}
		select {
		case sig := <-interrupted:
			logger.Error("run interrupted", "signal", sig.String())
			code = max(code, 1)
		default:
		}
	}()

	fleet = loadtest.SetupFleet(ctx, cfg, loadtest.Options{Logger: logger}, loadtest.PerConsoleKnobs(os.Environ()))
	for _, mb := range fleet.Members {
		if mb.SetupErr != nil {
			logger.Error("setup failed", "console", mb.Label, "err", mb.SetupErr)
		}
	}
	return m.Run()
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

// writeAllResults writes every console's results that the tests did not
// (a run that never reached its Results subtest still leaves a sidecar
// saying why), and the run summary when there are several consoles.
func writeAllResults() {
	if fleet == nil {
		return
	}
	for _, mb := range fleet.Members {
		mb.WriteResults(os.Stdout)
	}
	if len(fleet.Members) > 1 {
		if _, _, err := fleet.WriteSummary(os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "run summary: %v\n", err)
		}
	}
}

func TestLatency(t *testing.T) {
	require.NoError(t, setupErr, "invalid configuration; nothing was set up")
	require.NotNil(t, fleet)
	if len(fleet.Members) == 1 {
		testConsole(t, fleet.Members[0])
		return
	}
	t.Run("Consoles", func(t *testing.T) {
		for _, mb := range fleet.Members {
			t.Run(mb.Label, func(t *testing.T) {
				t.Parallel()
				testConsole(t, mb)
			})
		}
	})
	files, sum, err := fleet.WriteSummary(os.Stdout)
	require.NoError(t, err)
	t.Attr("metric", sum.Metric)
	t.Attr("consoles", fmt.Sprint(len(sum.Consoles)))
	t.Attr("failed_consoles", fmt.Sprint(len(sum.Failed)))
	attrFigures(t, sum.Pooled.Samples, sum.Pooled.Misses, sum.Pooled.DroppedEvents, sum.Pooled.Summary)
	assert.FileExists(t, files.Summary)
	assert.Empty(t, sum.Failed, "consoles that failed")
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

// testConsole checks, measures and records one console.
func testConsole(t *testing.T, mb *loadtest.Member) {
	require.NoError(t, mb.SetupErr, "setup (console, ryll) failed; nothing was measured")
	run := mb.Run

	var handshakeErr error
	t.Run("Handshake", func(t *testing.T) {
		h := run.Hello
		t.Logf("server %q speaks protocol %s; methods %v; events %v", h.ServerName, h.ProtocolVersion, h.SupportedMethods, h.SupportedEvents)
		assert.Equal(t, 1, h.Version.Major, "protocol major version")
		assert.True(t, h.SupportsMethod("send_key") || cfg.Metric == config.MetricPing, "server must offer send_key")
		handshakeErr = run.CheckHandshake()
		require.NoError(t, handshakeErr)
	})
	if handshakeErr != nil {
		mb.WriteResults(os.Stdout, handshakeErr)
		t.Fatalf("not measuring: %v", handshakeErr)
	}

	t.Run("Measure", func(t *testing.T) {
		m, err := mb.Measure(runCtx)
		require.NoError(t, err)
		res := m.Result
		t.Logf("%d samples, %d misses, %d unpaired draws, %d dropped events, stop: %s",
			len(res.Samples), len(res.Misses), res.UnpairedDraws, res.Dropped, res.StopReason)
		require.NoError(t, m.Err, "the run ended early; %d samples were written to %s", len(res.Samples), m.CSVPath)
		assert.Len(t, res.Samples, cfg.Samples,
			"collected %d of %d samples before LATENCY_MAX_DURATION=%s (%d misses): raise LATENCY_MAX_DURATION, or look at the misses",
			len(res.Samples), cfg.Samples, cfg.MaxDuration, len(res.Misses))
	})

	t.Run("Sanity", func(t *testing.T) {
		require.NotNil(t, mb.Measurement, "no measurement to check")
		values := mb.Measurement.Result.Values()
		require.NotEmpty(t, values, "no samples were collected")
		ok, out := results.CheckSanity(values, cfg.SanityMin, cfg.SanityMax)
		for _, o := range out {
			t.Errorf("sample %d (CSV line %d) = %.6f s is outside [%g, %g] s (LATENCY_SANITY_MIN/MAX)",
				o.Index, o.Index+1, o.Value, cfg.SanityMin, cfg.SanityMax)
		}
		assert.True(t, ok, "%d of %d samples out of range", len(out), len(values))
	})

	t.Run("Results", func(t *testing.T) {
		mb.WriteResults(os.Stdout)
		require.NoError(t, mb.ResultsErr)
		files := mb.Files
		for _, p := range []string{files.CSV, files.Sidecar} {
			assert.FileExists(t, p)
		}
		back, err := results.ReadSidecar(files.Sidecar)
		require.NoError(t, err)
		assert.Equal(t, run.Cfg.RunID, back.RunID)
		if mb.Measurement != nil {
			csv, err := results.ReadCSV(files.CSV)
			require.NoError(t, err)
			assert.Equal(t, asWritten(mb.Measurement.Result.Values()), csv, "the CSV holds every sample, in order")
		}
		t.Logf("results in %s", filepath.Clean(cfg.ResultsDir))
	})

	s := mb.Sidecar
	t.Attr("metric", s.Metric)
	t.Attr("run", s.RunID)
	t.Attr("provider", s.Provider)
	attrFigures(t, s.SamplesCollected, s.Misses, s.DroppedEvents, s.Summary)
	t.Attr("sanity", s.Sanity.Verdict)
}

// asWritten rounds samples the way the CSV's %.6f does, so that samples
// and the file compare exactly.
func asWritten(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i], _ = strconv.ParseFloat(strconv.FormatFloat(x, 'f', 6, 64), 64)
	}
	return out
}
