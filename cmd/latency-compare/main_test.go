package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/results"
)

// modelled returns n samples (seconds) around centreMs with 1 ms of
// seeded normal noise.
func modelled(seed uint64, centreMs float64, n int) []float64 {
	r := rand.New(rand.NewPCG(seed, 42))
	out := make([]float64, n)
	for i := range out {
		out[i] = (centreMs + r.NormFloat64()) / 1000
	}
	return out
}

// writeCSVRun writes latency-<run>.csv and, when metric is not empty, its
// sidecar into dir, through the results package as the loadtest does. It
// returns the CSV's path.
func writeCSVRun(tb testing.TB, dir, run, provider, metric string, samples []float64, misses int) string {
	tb.Helper()
	w, err := results.CreateCSV(dir, run)
	require.NoError(tb, err)
	for _, v := range samples {
		require.NoError(tb, w.Write(v))
	}
	require.NoError(tb, w.Close())
	if metric != "" {
		require.NoError(tb, results.WriteSidecar(filepath.Join(dir, results.SidecarName(run)), results.Sidecar{
			RunID: run, Metric: metric, Provider: provider, Misses: misses, SamplesCollected: len(samples),
		}))
	}
	return w.Path()
}

func writeBenchRun(tb testing.TB, dir, run, provider string, consoles ...results.BenchConsole) string {
	tb.Helper()
	path := filepath.Join(dir, "latency-"+run+".bench.txt")
	require.NoError(tb, results.WriteBench(path, results.BenchInfo{RunID: run, Metric: "keypress_to_screen", Provider: provider}, consoles...))
	return path
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCompareCSVRuns(t *testing.T) {
	dir := t.TempDir()
	direct := writeCSVRun(t, dir, "direct1", "direct", "keypress_to_screen", modelled(1, 20, 30), 0)
	through := writeCSVRun(t, dir, "kerbside1", "openstack", "keypress_to_screen", modelled(2, 35, 30), 2)
	same := writeCSVRun(t, dir, "direct2", "direct", "keypress_to_screen", modelled(1, 20, 30), 0)

	t.Run("different delays", func(t *testing.T) {
		code, out, errOut := runCmd(t, direct, through)
		require.Equal(t, exitOK, code, errOut)
		assert.Empty(t, errOut)
		assert.Contains(t, out, "OLD: "+direct+" (run direct1, provider direct, metric keypress_to_screen, 30 samples in 1 console, 0 misses)")
		assert.Contains(t, out, "2 misses")
		assert.Contains(t, out, "sec/op")
		assert.Contains(t, out, "significant difference (alpha 0.05), NEW is slower")
		assert.Contains(t, out, "p<0.001 n=30+30")
	})
	t.Run("identical runs", func(t *testing.T) {
		code, out, errOut := runCmd(t, direct, same)
		require.Equal(t, exitOK, code, errOut)
		assert.Contains(t, out, "no significant difference (alpha 0.05)")
		assert.Contains(t, out, "difference +0.00 ms")
	})
	t.Run("stricter alpha still exits 0", func(t *testing.T) {
		code, out, _ := runCmd(t, "-alpha", "0.01", same, direct)
		require.Equal(t, exitOK, code)
		assert.Contains(t, out, "(alpha 0.01)")
	})
}

func TestInputForms(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one")
	require.NoError(t, os.Mkdir(one, 0o755))
	csv := writeCSVRun(t, one, "A", "direct", "keypress_to_screen", modelled(1, 20, 10), 0)
	bench := writeBenchRun(t, dir, "B", "openstack",
		results.BenchConsole{Label: "c0", Samples: modelled(3, 35, 10)},
		results.BenchConsole{Label: "c1", Samples: modelled(4, 36, 10)})

	tests := []struct {
		name       string
		arg        string
		wantSource string
	}{
		{"csv", csv, csv},
		{"sidecar", filepath.Join(one, "latency-A.json"), csv},
		{"stem", filepath.Join(one, "latency-A"), csv},
		{"run id", filepath.Join(one, "A"), csv},
		{"directory with one run", one, csv},
		{"bench file", bench, bench},
		{"stem prefers the bench file", filepath.Join(dir, "latency-B"), bench},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.arg, bench)
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "OLD: "+tc.wantSource+" (")
		})
	}
}

func TestBenchRowsPerConsole(t *testing.T) {
	dir := t.TempDir()
	old := writeBenchRun(t, dir, "A", "direct",
		results.BenchConsole{Label: "c0", Samples: modelled(1, 20, 10)},
		results.BenchConsole{Label: "c1", Samples: modelled(2, 21, 10)})
	new := writeBenchRun(t, dir, "B", "openstack",
		results.BenchConsole{Label: "c0", Samples: modelled(3, 35, 10)},
		results.BenchConsole{Label: "c1", Samples: modelled(4, 36, 10)})
	code, out, errOut := runCmd(t, old, new)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "20 samples in 2 consoles")
	assert.Regexp(t, `(?m)^c0 .*\(p=0\.000 n=10\)$`, out)
	assert.Regexp(t, `(?m)^c1 .*\(p=0\.000 n=10\)$`, out)
	assert.Regexp(t, `(?m)^pooled \(all consoles\) .*\(p=0\.000 n=20\)$`, out)
}

func TestNotesGoToStderr(t *testing.T) {
	dir := t.TempDir()
	bare := writeCSVRun(t, dir, "bare", "", "", modelled(1, 20, 10), 0)
	code, out, errOut := runCmd(t, bare, bare)
	require.Equal(t, exitOK, code)
	assert.Contains(t, errOut, "no sidecar")
	assert.Contains(t, out, "run bare")
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeCSVRun(t, dir, "good", "direct", "keypress_to_screen", modelled(1, 20, 10), 0)
	empty := writeCSVRun(t, dir, "empty", "direct", "keypress_to_screen", nil, 0)
	ping := writeCSVRun(t, dir, "ping", "direct", "ping_interval", modelled(1, 20, 10), 0)

	garbage := filepath.Join(dir, "latency-garbage.csv")
	require.NoError(t, os.WriteFile(garbage, []byte("0.020\nfast\n"), 0o644))
	badSidecar := filepath.Join(dir, "latency-badside.csv")
	require.NoError(t, os.WriteFile(badSidecar, []byte("0.020\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "latency-badside.json"), []byte("{"), 0o644))
	badBench := filepath.Join(dir, "x.bench.txt")
	require.NoError(t, os.WriteFile(badBench, []byte("BenchmarkLatency 1 slow sec/op\n"), 0o644))
	emptyDir := t.TempDir()

	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"missing", []string{filepath.Join(dir, "nope"), good}, "is not a file, a directory or a run stem"},
		{"several runs in a directory", []string{dir, good}, "name one"},
		{"no run in a directory", []string{emptyDir, good}, "holds no"},
		{"empty CSV", []string{empty, good}, "no samples"},
		{"garbage CSV", []string{good, garbage}, "line 2"},
		{"broken sidecar", []string{badSidecar, good}, "invalid JSON"},
		{"broken bench file", []string{badBench, good}, "parsing measurement"},
		{"different metrics", []string{good, ping}, "different metrics"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.args...)
			assert.Equal(t, exitBadInput, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tc.msg)
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no arguments", nil, exitUsage, "got 0 argument(s)"},
		{"one argument", []string{"a"}, exitUsage, "got 1 argument(s)"},
		{"three arguments", []string{"a", "b", "c"}, exitUsage, "got 3 argument(s)"},
		{"alpha out of range", []string{"-alpha", "1.5", "a", "b"}, exitUsage, "between 0 and 1"},
		{"unknown flag", []string{"-x", "a", "b"}, exitUsage, "flag provided but not defined"},
		{"help", []string{"-h"}, exitOK, "usage: latency-compare"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, errOut, tc.msg)
		})
	}
}

// noisy is like modelled with a spread of sdMs milliseconds.
func noisy(seed uint64, centreMs, sdMs float64, n int) []float64 {
	r := rand.New(rand.NewPCG(seed, 43))
	out := make([]float64, n)
	for i := range out {
		out[i] = max(1, centreMs+sdMs*r.NormFloat64()) / 1000
	}
	return out
}

// TestNoisyRunsAreInconclusive: two runs of a busy host, their medians
// not significantly different but the interval of the difference wider
// than the threshold, are inconclusive, not "no significant difference"
// (which reads as "no difference").
func TestNoisyRunsAreInconclusive(t *testing.T) {
	dir := t.TempDir()
	old := writeCSVRun(t, dir, "busy1", "direct", "keypress_to_screen", noisy(1, 80, 60, 30), 0)
	new := writeCSVRun(t, dir, "busy2", "openstack", "keypress_to_screen", noisy(2, 80, 60, 30), 0)

	code, out, errOut := runCmd(t, old, new)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "inconclusive (alpha 0.05)")
	assert.NotContains(t, out, "no significant difference (alpha")
	assert.Contains(t, out, "against -max-added 10.0 ms: inconclusive")

	code, out, _ = runCmd(t, "-max-added", "200ms", old, new)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "no significant difference (alpha 0.05)")
	assert.Contains(t, out, "NEW adds less than 200.0 ms")

	code, _, errOut = runCmd(t, "-max-added", "0s", old, new)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "-max-added")
}

// TestRefusesToMixLanes: a simulated run (provider fake, or a file that
// says lane: simulated) is not compared with a real one unless
// -mix-lanes says so; two simulated runs compare as before.
func TestRefusesToMixLanes(t *testing.T) {
	dir := t.TempDir()
	sim := writeCSVRun(t, dir, "sim", "fake", "keypress_to_screen", modelled(1, 20, 30), 0)
	real := writeCSVRun(t, dir, "real", "qemu", "keypress_to_screen", modelled(2, 20, 30), 0)
	code, _, stderr := runCmd(t, sim, real)
	assert.Equal(t, exitBadInput, code)
	assert.Contains(t, stderr, "OLD is a simulated run and NEW a real one")
	assert.Contains(t, stderr, "-mix-lanes")
	code, _, stderr = runCmd(t, "-mix-lanes", sim, real)
	assert.Equal(t, exitOK, code, stderr)

	bench := filepath.Join(dir, "latency-b.bench.txt")
	require.NoError(t, results.WriteBench(bench, results.BenchInfo{RunID: "b", Metric: "keypress_to_screen", Provider: "direct",
		Extra: map[string]string{results.ConfigLane: results.LaneSimulated}}, results.BenchConsole{Label: "c0", Samples: modelled(3, 20, 30)}))
	code, _, stderr = runCmd(t, bench, real)
	assert.Equal(t, exitBadInput, code, "the lane line wins over the provider")
	assert.Contains(t, stderr, "OLD is a simulated run")
	code, _, stderr = runCmd(t, bench, sim)
	assert.Equal(t, exitOK, code, stderr)
}
