package host

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeProc writes a /proc with two cores, the given procs_running, load
// and CPU jiffies, and one process (pid 4242) with the given CPU ticks.
// writeFile replaces path whole, so the sampler never reads half a file.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path+".tmp", []byte(content), 0o644))
	require.NoError(t, os.Rename(path+".tmp", path))
}

func fakeProc(t *testing.T, dir string, running int, load float64, user, idle, steal, procTicks uint64) {
	t.Helper()
	stat := "cpu  " + strconv.FormatUint(user, 10) + " 0 0 " + strconv.FormatUint(idle, 10) + " 0 0 0 " + strconv.FormatUint(steal, 10) + " 0 0\n" +
		"cpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\nintr 1\nprocs_running " + strconv.Itoa(running) + "\nprocs_blocked 0\n"
	writeFile(t, filepath.Join(dir, "stat"), stat)
	writeFile(t, filepath.Join(dir, "loadavg"), strconv.FormatFloat(load, 'f', 2, 64)+" 1.00 1.00 3/100 123\n")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "4242"), 0o755))
	// The command name holds a space and a parenthesis, as names may.
	pstat := "4242 (q emu) x) S 1 1 1 0 -1 0 0 0 0 0 " + strconv.FormatUint(procTicks/2, 10) + " " + strconv.FormatUint(procTicks-procTicks/2, 10) + " 0 0 20 0 1 0 1 1 1\n"
	writeFile(t, filepath.Join(dir, "4242", "stat"), pstat)
}

func TestSamplerReadsProc(t *testing.T) {
	dir := t.TempDir()
	fakeProc(t, dir, 7, 6.5, 1000, 1000, 0, 100)
	s := Start(t.Context(), Options{Proc: dir, Tick: time.Millisecond, Processes: []Process{{Role: "qemu", Pid: 4242}}})
	// The host's figures move while the sampler runs: 1000 jiffies more,
	// 300 of them stolen, 200 idle; QEMU took 150 ticks (1.5 s).
	fakeProc(t, dir, 7, 8.25, 1500, 1200, 300, 250)
	f := s.Stop()
	assert.Equal(t, 2, f.Cores)
	assert.Equal(t, 6.5, f.Load1Start)
	assert.Equal(t, 8.25, f.Load1End)
	assert.Equal(t, 8.25, f.Load1Max)
	assert.Equal(t, 6.0, f.RunnableMean, "every read saw 7 running, the sampler one of them")
	assert.Equal(t, 6, f.RunnableMax)
	assert.InDelta(t, 0.3, f.Steal, 1e-9)
	assert.InDelta(t, 0.8, f.Busy, 1e-9)
	var qemu *ProcessCPU
	for i := range f.CPU {
		if f.CPU[i].Role == "qemu" {
			qemu = &f.CPU[i]
		}
	}
	require.NotNil(t, qemu, "QEMU's CPU time is measured: %+v (errors %v)", f.CPU, f.Errors)
	assert.InDelta(t, 1.5, qemu.CPUS, 1e-9)
	assert.Positive(t, f.Reads)
	// The timer lag is this host's own (it may be busy): only the
	// figures read from the fake /proc are asserted.
	why := strings.Join(f.Judge(), "; ")
	assert.Contains(t, why, "6.0 runnable tasks on average (max 6) on 2 cores")
	assert.Contains(t, why, "stole 30%")
	assert.Equal(t, f, s.Stop(), "Stop is safe to call twice and returns the same figures")
}

func TestSamplerSaysWhatItCannotRead(t *testing.T) {
	s := Start(t.Context(), Options{Proc: t.TempDir(), Tick: time.Millisecond, Processes: []Process{{Role: "ryll", Pid: 4242}}})
	f := s.Stop()
	assert.NotEmpty(t, f.Errors)
	assert.Contains(t, f.String(), "lag p50/p99/max")
	// The lag is real (and this host may be busy); what could not be
	// read judges nothing.
	for _, why := range f.Judge() {
		assert.NotContains(t, why, "runnable")
		assert.NotContains(t, why, "stole")
	}
	assert.Zero(t, f.RunnableMean)
}

// TestSamplerOnThisHost runs on the real /proc: the figures exist and
// are sane in kind, whatever this shared host is doing. No value is
// asserted against a time.
func TestSamplerOnThisHost(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("needs Linux's /proc")
	}
	s := Start(t.Context(), Options{})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		n := len(s.fig.lags)
		reads := s.fig.Reads
		s.mu.Unlock()
		if n >= 3 && reads >= 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	f := s.Stop()
	assert.Empty(t, f.Errors)
	assert.GreaterOrEqual(t, f.Lag.Ticks, 1)
	assert.GreaterOrEqual(t, f.Lag.MaxS, f.Lag.P99S)
	assert.GreaterOrEqual(t, f.Lag.P99S, f.Lag.P50S)
	assert.Positive(t, f.Cores)
	require.NotEmpty(t, f.CPU)
	assert.Equal(t, "harness", f.CPU[0].Role)
	assert.Equal(t, os.Getpid(), f.CPU[0].Pid)
	b, err := json.Marshal(f)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"lag":{"ticks":`)
}

func TestJudge(t *testing.T) {
	quiet := Figures{Cores: 2, RunnableMean: 1.8, RunnableMax: 4, Steal: 0.01, Lag: Lag{Ticks: 1000, P50S: 0.0001, P99S: 0.001, MaxS: 0.004}}
	assert.Empty(t, quiet.Judge())

	lagged := quiet
	lagged.Lag.P99S, lagged.Lag.MaxS = 0.012, 0.040
	why := lagged.Judge()
	require.Len(t, why, 1)
	assert.Contains(t, why[0], "timer lag p99 was 12.0 ms (max 40.0 ms), above 5ms")

	crowded := quiet
	crowded.RunnableMean = 4.1 // 2.05 per core
	assert.Len(t, crowded.Judge(), 1)
	crowded.RunnableMean = 4.0 // 2 per core: at the bound, not above
	assert.Empty(t, crowded.Judge())
}

func TestLateDuringAndMerge(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	a := Figures{StartTime: at(0), EndTime: at(1000), Cores: 2, Load1Start: 1, Load1End: 2, Load1Max: 2,
		CPU:  []ProcessCPU{{Role: "ryll", Pid: 10, CPUS: 0.2}},
		lags: []time.Duration{time.Millisecond, 2 * time.Millisecond}, late: []span{{at(100), at(120)}},
		runSum: 4, runN: 2, cpuTotal: 100, cpuIdle: 50}
	b := Figures{StartTime: at(5000), EndTime: at(6000), Cores: 2, Load1Start: 3, Load1End: 4, Load1Max: 5,
		CPU:  []ProcessCPU{{Role: "ryll", Pid: 11, CPUS: 0.4}},
		lags: []time.Duration{20 * time.Millisecond, 30 * time.Millisecond}, late: []span{{at(5500), at(5530)}},
		runSum: 12, runN: 2, cpuTotal: 100, cpuIdle: 10, cpuSteal: 20}
	a.finish()
	b.finish()

	assert.True(t, a.LateDuring(at(90), at(100)), "a sample that ends as the late stretch starts")
	assert.True(t, a.LateDuring(at(110), at(200)))
	assert.False(t, a.LateDuring(at(121), at(200)))
	assert.False(t, a.LateDuring(at(0), at(99)))

	m := Merge(a, b)
	assert.Equal(t, 4, m.Lag.Ticks)
	assert.Equal(t, 2, m.Lag.Late, "20 and 30 ms ticks are late")
	assert.InDelta(t, 0.030, m.Lag.MaxS, 1e-12)
	assert.InDelta(t, 4.0, m.RunnableMean, 1e-12)
	assert.Equal(t, 1.0, m.Load1Start)
	assert.Equal(t, 4.0, m.Load1End)
	assert.Equal(t, 5.0, m.Load1Max)
	assert.InDelta(t, 0.7, m.Busy, 1e-12)
	assert.InDelta(t, 0.1, m.Steal, 1e-12)
	require.Len(t, m.CPU, 1)
	assert.InDelta(t, 0.6, m.CPU[0].CPUS, 1e-12)
	assert.InDelta(t, 0.3, m.CPU[0].CoreShare, 1e-12, "0.6 s over the 2 s sampled, not over the 6 s from first start to last end")
	assert.True(t, m.LateDuring(at(5510), at(5511)))
}

// TestMergeOfSummariesOnly: figures without their raw ticks (read back
// from a file, or made by hand) still pool to figures that judge the
// same way: a busy part keeps the whole busy.
func TestMergeOfSummariesOnly(t *testing.T) {
	quiet := Figures{Cores: 2, Reads: 10, RunnableMean: 1, Lag: Lag{Ticks: 100, P50S: 0.0001, P99S: 0.001, MaxS: 0.002}}
	busy := Figures{Cores: 2, Reads: 10, RunnableMean: 6, Steal: 0.2, Lag: Lag{Ticks: 100, P50S: 0.001, P99S: 0.020, MaxS: 0.050, Late: 5}}
	m := Merge(quiet, busy)
	assert.Equal(t, 200, m.Lag.Ticks)
	assert.Equal(t, 5, m.Lag.Late)
	assert.InDelta(t, 0.020, m.Lag.P99S, 1e-12)
	assert.InDelta(t, 3.5, m.RunnableMean, 1e-12)
	assert.InDelta(t, 0.2, m.Steal, 1e-12)
	assert.Len(t, m.Judge(), 2, "lag and steal; 3.5 runnable on 2 cores is below 2 per core")
	busy.RunnableMean = 9
	assert.Len(t, Merge(quiet, busy).Judge(), 3)
	assert.Empty(t, Merge(quiet, quiet).Judge())
}
