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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/loadtest"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// The state TestMain sets up for TestLatency. Tests in one package share
// it because the console and ryll are provisioned once per run.
var (
	cfg      *config.Config
	run      *loadtest.Run
	setupErr error
	// runCtx ends on SIGINT, SIGTERM, or shortly before go test's own
	// -timeout (which would kill the binary without any cleanup).
	runCtx context.Context

	measurement *loadtest.Measurement
	resultsOnce sync.Once
	sidecar     results.Sidecar
	files       loadtest.Files
	resultsErr  error
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
			_ = run.Teardown(tctx)
			panic(p)
		}
		writeResults(nil)
		if err := run.Teardown(tctx); err != nil {
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

	run, setupErr = loadtest.Setup(ctx, cfg, loadtest.Options{Logger: logger})
	if setupErr != nil {
		logger.Error("setup failed", "err", setupErr)
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

// writeResults writes the sidecar, plot, benchmark file and summary once,
// from the Results subtest or, if the run never got there, from TestMain.
func writeResults(errs []error) {
	resultsOnce.Do(func() {
		if cfg == nil || run == nil {
			return
		}
		if setupErr != nil {
			errs = append(errs, setupErr)
		}
		if measurement != nil && measurement.Err != nil {
			errs = append(errs, measurement.Err)
		}
		sidecar = run.Sidecar(measurement, time.Now(), errs...)
		files, resultsErr = run.WriteResults(os.Stdout, measurement, sidecar)
	})
}

func TestLatency(t *testing.T) {
	require.NoError(t, setupErr, "setup (configuration, console, ryll) failed; nothing was measured")
	require.NotNil(t, run)

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
		writeResults([]error{handshakeErr})
		t.Fatalf("not measuring: %v", handshakeErr)
	}

	t.Run("Measure", func(t *testing.T) {
		m, err := run.Measure(runCtx)
		require.NoError(t, err)
		measurement = m
		res := m.Result
		t.Logf("%d samples, %d misses, %d unpaired draws, %d dropped events, stop: %s",
			len(res.Samples), len(res.Misses), res.UnpairedDraws, res.Dropped, res.StopReason)
		require.NoError(t, m.Err, "the run ended early; %d samples were written to %s", len(res.Samples), m.CSVPath)
		assert.Len(t, res.Samples, cfg.Samples,
			"collected %d of %d samples before LATENCY_MAX_DURATION=%s (%d misses): raise LATENCY_MAX_DURATION, or look at the misses",
			len(res.Samples), cfg.Samples, cfg.MaxDuration, len(res.Misses))
	})

	t.Run("Sanity", func(t *testing.T) {
		require.NotNil(t, measurement, "no measurement to check")
		values := measurement.Result.Values()
		require.NotEmpty(t, values, "no samples were collected")
		ok, out := results.CheckSanity(values, cfg.SanityMin, cfg.SanityMax)
		for _, o := range out {
			t.Errorf("sample %d (CSV line %d) = %.6f s is outside [%g, %g] s (LATENCY_SANITY_MIN/MAX)",
				o.Index, o.Index+1, o.Value, cfg.SanityMin, cfg.SanityMax)
		}
		assert.True(t, ok, "%d of %d samples out of range", len(out), len(values))
	})

	t.Run("Results", func(t *testing.T) {
		writeResults(nil)
		require.NoError(t, resultsErr)
		for _, p := range []string{files.CSV, files.Sidecar} {
			assert.FileExists(t, p)
		}
		back, err := results.ReadSidecar(files.Sidecar)
		require.NoError(t, err)
		assert.Equal(t, cfg.RunID, back.RunID)
		if measurement != nil {
			csv, err := results.ReadCSV(files.CSV)
			require.NoError(t, err)
			assert.Equal(t, asWritten(measurement.Result.Values()), csv, "the CSV holds every sample, in order")
		}
		t.Logf("results in %s", filepath.Clean(cfg.ResultsDir))
	})

	s := sidecar
	t.Attr("metric", s.Metric)
	t.Attr("run", s.RunID)
	t.Attr("provider", s.Provider)
	t.Attr("samples", fmt.Sprint(s.SamplesCollected))
	t.Attr("misses", fmt.Sprint(s.Misses))
	t.Attr("dropped", fmt.Sprint(s.DroppedEvents))
	if s.Summary.Count > 0 {
		t.Attr("p50_s", fmt.Sprintf("%.6f", s.Summary.P50))
		t.Attr("p95_s", fmt.Sprintf("%.6f", s.Summary.P95))
		t.Attr("p99_s", fmt.Sprintf("%.6f", s.Summary.P99))
	}
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
