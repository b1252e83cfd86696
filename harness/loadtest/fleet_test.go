package loadtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

func TestMemberConfigNamesEachConsole(t *testing.T) {
	cfg := fakeConfig(t, map[string]string{"LATENCY_RUN_ID": "r1"}).cfg
	assert.Equal(t, "r1", MemberConfig(cfg, 0, 1).RunID, "one console keeps the run id")
	assert.Equal(t, "r1-c3", MemberConfig(cfg, 3, 5).RunID)
	assert.Equal(t, "r1", cfg.RunID, "the run's config is not changed")
}

func TestFleetOneConsoleFailsOthersMeasure(t *testing.T) {
	t.Parallel()
	fx := fakeConfig(t, map[string]string{"LATENCY_CONSOLES": "3", "LATENCY_SAMPLES": "3", "LATENCY_RUN_ID": "fleet"})
	cfg := fx.cfg
	opts := fx.opts
	opts.MemberEnv = func(i int) []string {
		if i == 2 {
			return []string{"FAKERYLL_PROTOCOL_VERSION=1.0"}
		}
		return nil
	}
	f := SetupFleet(t.Context(), cfg, opts)
	t.Cleanup(func() {
		ctx, cancel := cloud.CleanupContext(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, f.Teardown(ctx))
	})
	require.Len(t, f.Members, 3)
	for _, m := range f.Members {
		require.NoError(t, m.SetupErr, m.Label)
	}
	assert.Less(t, f.Members[0].StartOffset, f.Members[1].StartOffset, "starts are staggered")
	var wg sync.WaitGroup
	for _, m := range f.Members {
		wg.Go(func() { _, _ = m.Measure(t.Context()) })
	}
	wg.Wait()
	w, err := f.WriteResults(nil)
	require.NoError(t, err)
	require.NotNil(t, w.Summary)
	assert.FileExists(t, w.Summary.Summary)
	assert.Equal(t, []string{"c2"}, w.RunSummary.Failed)
	assert.Equal(t, 6, w.RunSummary.Pooled.Samples)
	require.Len(t, w.Consoles, 3)
	for _, c := range w.Consoles[:2] {
		assert.FileExists(t, filepath.Join(cfg.ResultsDir, results.CSVName("fleet-"+c.Label)))
		assert.Empty(t, c.Sidecar.Errors)
	}
	c2 := w.Consoles[2]
	require.Len(t, c2.Sidecar.Errors, 1, "the handshake error is recorded once")
	assert.Contains(t, c2.Sidecar.Errors[0], "surface_drawn")
	assert.NotContains(t, c2.Sidecar.Files, results.CSVName("fleet-c2"), "no CSV was written, so none is listed")
}

// BenchmarkFleet measures what N consoles cost the harness and what they
// do to the measurement: harness CPU and heap per console during the
// measurement, fakeryll CPU per console, and measured minus modelled
// delay against each console's truth file (fixed delay, no jitter, no
// refresh timer). Run with `make fleet-bench`.
func BenchmarkFleet(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var errs []float64
			var cpu, childCPU time.Duration
			var heap float64
			iters := 0
			// A plain b.N loop: fleetRun stops the timer around setup
			// and teardown, which b.Loop does not allow.
			for range b.N {
				e, c, cc, h := fleetRun(b, n)
				errs = append(errs, e...)
				cpu += c
				childCPU += cc
				heap += h
				iters++
			}
			s := stats.Summarize(errs)
			per := float64(iters * n)
			b.ReportMetric(float64(cpu.Milliseconds())/per, "harness-cpu-ms/console")
			b.ReportMetric(float64(childCPU.Milliseconds())/per, "fakeryll-cpu-ms/console")
			b.ReportMetric(heap/per/1024, "heap-KiB/console")
			b.ReportMetric(s.P50*1e6, "err-p50-us")
			b.ReportMetric(s.P99*1e6, "err-p99-us")
			b.ReportMetric(s.Max*1e6, "err-max-us")
		})
	}
}

func fleetRun(b *testing.B, n int) (errs []float64, cpu, childCPU time.Duration, heapBytes float64) {
	dir := b.TempDir()
	fx := fakeConfig(b, map[string]string{
		"LATENCY_CONSOLES": fmt.Sprint(n), "LATENCY_PARALLEL": "10", "LATENCY_SAMPLES": "10",
		"LATENCY_CADENCE": "500ms", "LATENCY_CADENCE_JITTER": "100ms", "LATENCY_KEY_HOLD": "20ms",
		"LATENCY_RUN_ID": "bench", "LATENCY_READY_TIMEOUT": "60s",
	})
	opts := fx.opts
	opts.MemberEnv = func(i int) []string {
		return []string{"FAKERYLL_DRAW_DELAY=25ms", "FAKERYLL_DRAW_JITTER=0", "FAKERYLL_DISPLAY_REFRESH=0",
			"FAKERYLL_TRUTH_FILE=" + filepath.Join(dir, fmt.Sprintf("truth-%d.csv", i))}
	}
	cpu, childCPU, heapBytes = measureFleet(b, fx.cfg, opts, 2*time.Minute, func(f *Fleet) {
		for i, m := range f.Members {
			mm, err := m.Measured()
			require.NoError(b, err)
			measured, err := results.ReadCSV(mm.CSVPath)
			require.NoError(b, err)
			modelled := modelledFirstDraws(b, filepath.Join(dir, fmt.Sprintf("truth-%d.csv", i)))
			require.Len(b, modelled, len(measured))
			for j := range measured {
				errs = append(errs, measured[j]-modelled[j])
			}
		}
	})
	return errs, cpu, childCPU, heapBytes
}

// measureFleet sets up a fleet, measures every console at once with the
// benchmark timer running, lets collect read what it needs while the
// consoles are still up, and tears the fleet down. It returns the
// harness's CPU and heap growth during the measurement, and the
// children's CPU over their whole life (RUSAGE_CHILDREN counts a child
// once it is waited for, so it is known only after Teardown).
func measureFleet(b *testing.B, cfg *config.Config, opts Options, teardown time.Duration, collect func(*Fleet)) (cpu, childCPU time.Duration, heapBytes float64) {
	b.StopTimer()
	childBase := rusage(syscall.RUSAGE_CHILDREN)
	f := SetupFleet(context.Background(), cfg, opts)
	defer func() {
		ctx, cancel := cloud.CleanupContext(context.Background(), teardown)
		defer cancel()
		require.NoError(b, f.Teardown(ctx))
		childCPU = rusage(syscall.RUSAGE_CHILDREN) - childBase
	}()
	for _, m := range f.Members {
		require.NoError(b, m.SetupErr)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpuBefore := rusage(syscall.RUSAGE_SELF)
	b.StartTimer()
	f.MeasureAll(context.Background())
	b.StopTimer()
	cpu = rusage(syscall.RUSAGE_SELF) - cpuBefore
	runtime.ReadMemStats(&after)
	heapBytes = max(float64(after.HeapAlloc)-float64(before.HeapAlloc), 0)
	collect(f)
	return cpu, childCPU, heapBytes
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRealFleet measures N real consoles at once: N guests in local
// QEMUs, each with fakeryll's real SPICE client, on this one host. It
// reports the harness's CPU and heap per console, the children's (QEMU
// and fakeryll) CPU and resident memory per console, and the spread of
// the first-draw figure. Needs qemu-system-x86_64; run with
// `go test -run '^$' -bench BenchmarkRealFleet -benchtime 1x ./harness/loadtest/`.
func BenchmarkRealFleet(b *testing.B) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("qemu-system-x86_64 not found: apt-get install -y qemu-system-x86")
	}
	for _, n := range []int{1, 10, 25} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var firsts []float64
			var cpu, childCPU time.Duration
			var heap, rss float64
			for range b.N {
				f, c, cc, h, r := realFleetRun(b, n)
				firsts = append(firsts, f...)
				cpu += c
				childCPU += cc
				heap += h
				rss += r
			}
			per := float64(b.N * n)
			s := stats.Summarize(firsts)
			b.ReportMetric(float64(cpu.Milliseconds())/per, "harness-cpu-ms/console")
			b.ReportMetric(float64(childCPU.Milliseconds())/per, "qemu+fakeryll-cpu-ms/console")
			b.ReportMetric(heap/per/1024, "heap-KiB/console")
			b.ReportMetric(rss/per/(1<<20), "qemu+fakeryll-rss-MiB/console")
			b.ReportMetric(s.P50*1e3, "first-draw-p50-ms")
			b.ReportMetric(s.P95*1e3, "first-draw-p95-ms")
			b.ReportMetric(float64(s.Count)/per, "samples/console")
		})
	}
}

func realFleetRun(b *testing.B, n int) (firsts []float64, cpu, childCPU time.Duration, heapBytes, rssBytes float64) {
	fx := fakeConfig(b, map[string]string{
		"LATENCY_PROVIDER": "qemu", "LATENCY_CONSOLES": fmt.Sprint(n), "LATENCY_PARALLEL": "5", "LATENCY_SAMPLES": "10",
		"LATENCY_CADENCE": "500ms", "LATENCY_CADENCE_JITTER": "100ms", "LATENCY_KEY_HOLD": "30ms",
		"LATENCY_RUN_ID": "realbench", "LATENCY_READY_TIMEOUT": "120s", "LATENCY_MAX_DURATION": "5m",
	})
	cpu, childCPU, heapBytes = measureFleet(b, fx.cfg, fx.with("FAKERYLL_SESSION=spice"), 3*time.Minute, func(f *Fleet) {
		for _, m := range f.Members {
			mm, err := m.Measured()
			require.NoError(b, err, m.Label)
			for _, p := range mm.Result.Presses {
				if p.Answered {
					firsts = append(firsts, p.FirstDraw.Seconds())
				}
			}
			// Resident memory while the consoles still run.
			rssBytes += float64(rssOf(m.Session.Ryll.Pid()))
			rssBytes += float64(rssOf(m.Session.Console.Pid()))
		}
	})
	return firsts, cpu, childCPU, heapBytes, rssBytes
}

// rssOf is a process's resident set in bytes (0 when unknown).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil || pid <= 0 {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb * 1024
		}
	}
	return 0
}

// TestADeterministicRefusalStopsTheOtherConsoles: when the cloud refuses
// one console in a way it would refuse all (here a 403 on the server
// create, as for an exhausted quota), the consoles not yet started are
// not provisioned just to be refused.
func TestADeterministicRefusalStopsTheOtherConsoles(t *testing.T) {
	fx := fakeConfig(t, map[string]string{"LATENCY_CONSOLES": "6", "LATENCY_PARALLEL": "1", "LATENCY_SAMPLES": "2"})
	fx.chain.Cloud.FailNext(fakecloud.Failure{Method: "POST", Path: "/compute/v2.1/servers", Status: 403, Count: 100})
	f := SetupFleet(t.Context(), fx.cfg, fx.opts)
	t.Cleanup(func() { assert.NoError(t, f.Teardown(context.Background())) })
	require.Len(t, f.Members, 6)
	for _, m := range f.Members {
		require.Error(t, m.SetupErr, m.Label)
	}
	creates := len(fx.chain.Cloud.CallsTo("POST", "/compute/v2.1/servers"))
	assert.Less(t, creates, 6, "not every console was sent to be refused")
	stopped := 0
	for _, m := range f.Members {
		if strings.Contains(m.SetupErr.Error(), "not started") {
			stopped++
			assert.Contains(t, m.SetupErr.Error(), "refused in a way every console would be")
		}
	}
	assert.Positive(t, stopped)
}

// failingWriter is a stdout whose reader went away.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// TestAClosedStdoutFailsNoRun: the summary cannot be printed (`| head
// -1`), the files are written: WriteResults succeeds and says what was
// not printed. It once failed the run.
func TestAClosedStdoutFailsNoRun(t *testing.T) {
	cfg := fakeConfig(t, map[string]string{"LATENCY_RUN_ID": "closed", "LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "127.0.0.1:5900"}).cfg
	cfg.Consoles = 2 // nothing is set up: two members that never started
	f := &Fleet{Cfg: cfg}
	for i := range 2 {
		f.Members = append(f.Members, &Member{Index: i, Label: fmt.Sprintf("c%d", i),
			SetupErr: fmt.Errorf("console c%d not started", i), Session: &Session{Cfg: MemberConfig(cfg, i, 2), Start: time.Now()}})
	}
	w, err := f.WriteResults(failingWriter{})
	require.NoError(t, err, "nothing the run had to write failed")
	require.ErrorIs(t, w.PrintError, syscall.EPIPE)
	for i := range 2 {
		assert.FileExists(t, filepath.Join(cfg.ResultsDir, results.SidecarName(fmt.Sprintf("closed-c%d", i))))
	}
	assert.FileExists(t, w.Summary.Summary)

	sw := NewSummaryWriter(failingWriter{})
	assert.Same(t, sw, NewSummaryWriter(sw), "wrapped once")
}

// TestTeardownOfManyConsolesIsParallelAndBounded: 500 consoles, each
// taking 1 s to tear down (on a fake clock), LATENCY_PARALLEL=4: they go
// 64 at a time, not 4 (which took 107 s at 500 real consoles), and once
// the teardown's context is done the rest go at once.
func TestTeardownOfManyConsolesIsParallelAndBounded(t *testing.T) {
	const n = 500
	fleetOf := func(teardown func(context.Context, *Member) error) *Fleet {
		f := &Fleet{Cfg: &config.Config{Parallel: 4}, teardownMember: teardown}
		for i := range n {
			f.Members = append(f.Members, &Member{Index: i, Label: fmt.Sprintf("c%d", i), Session: &Session{}})
		}
		return f
	}
	synctest.Test(t, func(t *testing.T) {
		var cur, peak, done atomic.Int32
		f := fleetOf(func(ctx context.Context, m *Member) error {
			c := cur.Add(1)
			for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
			}
			time.Sleep(time.Second)
			cur.Add(-1)
			done.Add(1)
			return nil
		})
		start := time.Now()
		require.NoError(t, f.Teardown(t.Context()))
		assert.Equal(t, int32(n), done.Load())
		assert.Equal(t, int32(MaxTeardownParallel), peak.Load())
		assert.Equal(t, 8*time.Second, time.Since(start), "ceil(500/64) turns of 1 s")
	})
	synctest.Test(t, func(t *testing.T) {
		var called atomic.Int32
		f := fleetOf(func(ctx context.Context, m *Member) error {
			called.Add(1)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		start := time.Now()
		require.NoError(t, f.Teardown(ctx))
		assert.Equal(t, int32(n), called.Load(), "every console was torn down")
		assert.Equal(t, 3*time.Second, time.Since(start), "the rest went at once at the deadline")
	})
	assert.Equal(t, 4, TeardownParallel(4, 3))
	assert.Equal(t, 100, TeardownParallel(100, 500), "LATENCY_PARALLEL above the cap is kept")
	assert.Equal(t, 1, TeardownParallel(0, 0))
}

// TestALargeRunWritesNoPlotPerConsole: above PlotConsolesUpTo consoles
// each keeps its CSV, sidecar and benchmark file, and the pooled plot
// shows them all.
func TestALargeRunWritesNoPlotPerConsole(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, PlotConsolesUpTo + 1} {
		f := syntheticFleet(t, n, 5)
		w, err := f.WriteResults(io.Discard)
		require.NoError(t, err)
		require.Len(t, w.Consoles, n)
		for _, c := range w.Consoles {
			assert.Equal(t, n <= PlotConsolesUpTo, c.Files.Plot != "", "n=%d %s", n, c.Label)
			assert.NotEmpty(t, c.Files.Bench)
			assert.FileExists(t, c.Files.Sidecar)
		}
		require.NotNil(t, w.Summary)
		assert.FileExists(t, w.Summary.Plot)
	}
}
