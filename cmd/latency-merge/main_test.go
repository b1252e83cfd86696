package main

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

const keypress = "keypress_to_screen"

// console describes one console's files for writeConsole.
type console struct {
	run     string
	metric  string
	samples []float64
	// collected overrides the sidecar's samples_collected when >= 0.
	collected int
	errs      []string
	misses    int
	noCSV     bool
	csvFile   string
	provider  string // "openstack" when empty
	stop      string // the sidecar's stop reason; default by errs
	requested int    // samples requested; default len(samples)
}

func ok(run string, samples ...float64) console {
	return console{run: run, metric: keypress, samples: samples, collected: -1}
}

// writeConsole leaves a console's CSV (written by hand, one "%.6f" line
// per sample, as the loadtest writes it) and its sidecar in dir, and
// returns the sidecar's path.
func writeConsole(tb testing.TB, dir string, c console) string {
	tb.Helper()
	require.NoError(tb, os.MkdirAll(dir, 0o755))
	csvFile := c.csvFile
	if csvFile == "" {
		csvFile = results.CSVName(c.run)
	}
	if !c.noCSV {
		var b strings.Builder
		for _, v := range c.samples {
			fmt.Fprintf(&b, "%.6f\n", v)
		}
		require.NoError(tb, os.WriteFile(filepath.Join(dir, csvFile), []byte(b.String()), 0o644))
	}
	collected := len(c.samples)
	if c.collected >= 0 {
		collected = c.collected
	}
	stop := results.StopSamplesReached
	if len(c.errs) > 0 {
		stop = results.StopError
	}
	provider := c.provider
	if provider == "" {
		provider = "openstack"
	}
	if c.stop != "" {
		stop = c.stop
	}
	requested := len(c.samples)
	if c.requested > 0 {
		requested = c.requested
	}
	path := filepath.Join(dir, results.SidecarName(c.run))
	require.NoError(tb, results.WriteSidecar(path, results.Sidecar{
		RunID: c.run, Metric: c.metric, CSVFile: csvFile, Provider: provider,
		SamplesRequested: requested, SamplesCollected: collected, Misses: c.misses, StopReason: stop,
		Summary: stats.Summarize(c.samples), Sanity: results.NewSanity(c.samples, 0.001, 0.5), Errors: c.errs,
	}))
	return path
}

// runCmd runs the command in a fresh current directory (where the
// summary goes by default) and returns that directory too.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr, cwd string) {
	t.Helper()
	cwd = t.TempDir()
	t.Chdir(cwd)
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String(), cwd
}

func readSummary(t *testing.T, path string) results.RunSummary {
	t.Helper()
	rs, err := results.ReadRunSummary(path)
	require.NoError(t, err)
	return rs
}

func labelsOf(rs results.RunSummary) []string {
	var out []string
	for _, c := range rs.Consoles {
		out = append(out, c.Label)
	}
	return out
}

func TestMergeResultsDirectory(t *testing.T) {
	dir := t.TempDir()
	writeConsole(t, dir, ok("r1-p0", 0.020, 0.021))
	writeConsole(t, dir, ok("r1-p1", 0.030))
	writeConsole(t, dir, ok("r1-p2", 0.040, 0.041, 0.042))
	// What else a results directory holds: none of it is a sidecar.
	for name, content := range map[string]string{
		"latency-r1-summary.json":     `{"format_version": 1}`,
		"latency-r1-p0.png":           "png",
		"latency-r1-p0.bench.txt":     "",
		"junit.xml":                   "<testsuites/>",
		"ryll-r1-p0.log":              "",
		".latency-r1-p3.json.tmp-123": "{",
		"other.json":                  "{",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "latency-r1-p9.json"), 0o755), "a directory named like a sidecar is not one")

	code, out, errOut, cwd := runCmd(t, dir)
	require.Equal(t, exitOK, code, errOut)
	assert.Empty(t, errOut)

	path := filepath.Join(cwd, "latency-r1-summary.json")
	assert.Contains(t, out, "summary: latency-r1-summary.json")
	rs := readSummary(t, path)
	assert.Equal(t, "r1", rs.RunID, "the shared prefix names the merged run")
	assert.Equal(t, keypress, rs.Metric)
	assert.Equal(t, []string{"p0", "p1", "p2"}, labelsOf(rs))
	assert.Equal(t, 6, rs.Pooled.Samples)
	assert.Empty(t, rs.Failed)
	assert.Equal(t, "latency-r1-p1.csv", rs.Consoles[1].CSVFile)

	assert.Contains(t, out, "run r1: keypress_to_screen (s), 3 console(s), 0 failed")
	for _, l := range []string{"p0", "p1", "p2", results.PooledRowLabel} {
		assert.Regexp(t, `(?m)^`+l+` +\d+/\d+ `, out, "a table row for %s", l)
	}
}

func TestMergeOrderAndLabels(t *testing.T) {
	dir := t.TempDir()
	for _, run := range []string{"r1-p10-c0", "r1-p2-c1", "r1-p2-c0", "r1-p0-c0"} {
		writeConsole(t, dir, ok(run, 0.02))
	}
	code, _, errOut, cwd := runCmd(t, dir)
	require.Equal(t, exitOK, code, errOut)
	rs := readSummary(t, filepath.Join(cwd, "latency-r1-summary.json"))
	assert.Equal(t, []string{"p0-c0", "p2-c0", "p2-c1", "p10-c0"}, labelsOf(rs), "pods in numeric order, labels without the shared prefix")
}

func TestMergeRunAndOutputFlags(t *testing.T) {
	dir := t.TempDir()
	writeConsole(t, dir, ok("alpha", 0.02))
	writeConsole(t, dir, ok("beta", 0.03))

	t.Run("no shared prefix", func(t *testing.T) {
		code, _, errOut, cwd := runCmd(t, dir)
		require.Equal(t, exitOK, code, errOut)
		rs := readSummary(t, filepath.Join(cwd, "latency-merged-summary.json"))
		assert.Equal(t, "merged", rs.RunID)
		assert.Equal(t, []string{"alpha", "beta"}, labelsOf(rs))
	})
	t.Run("-run and -o", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sub", "all.json")
		code, stdout, errOut, _ := runCmd(t, "-run", "ab-test", "-o", out, dir)
		require.Equal(t, exitOK, code, errOut)
		assert.Contains(t, stdout, "summary: "+out)
		assert.Equal(t, "ab-test", readSummary(t, out).RunID)
	})
	t.Run("single sidecar keeps its run id", func(t *testing.T) {
		code, _, errOut, cwd := runCmd(t, filepath.Join(dir, "latency-alpha.json"))
		require.Equal(t, exitOK, code, errOut)
		rs := readSummary(t, filepath.Join(cwd, "latency-alpha-summary.json"))
		assert.Equal(t, []string{"alpha"}, labelsOf(rs))
	})
	t.Run("a CSV argument means its sidecar", func(t *testing.T) {
		code, _, errOut, cwd := runCmd(t, filepath.Join(dir, "latency-beta.csv"))
		require.Equal(t, exitOK, code, errOut)
		assert.FileExists(t, filepath.Join(cwd, "latency-beta-summary.json"))
	})
}

func TestMergeFailedConsole(t *testing.T) {
	dir := t.TempDir()
	writeConsole(t, dir, ok("r2-p0", 0.020, 0.022))
	writeConsole(t, dir, ok("r2-p1", 0.030, 0.900)) // one sample out of the sanity range
	broken := ok("r2-p2")
	broken.errs = []string{"boot server: no valid host"}
	writeConsole(t, dir, broken)

	code, out, errOut, cwd := runCmd(t, dir)
	require.Equal(t, exitFailed, code, errOut)
	assert.Contains(t, errOut, "2 of 3 consoles failed")
	assert.Contains(t, errOut, "p1 ("+filepath.Join(dir, "latency-r2-p1.json")+"): sanity check failed: 1 of 2 samples outside [0.001 s, 0.5 s]")
	assert.Contains(t, errOut, "p2 ("+filepath.Join(dir, "latency-r2-p2.json")+"): 1 error(s): boot server: no valid host; no samples")
	assert.Contains(t, out, "FAILED p1")

	rs := readSummary(t, filepath.Join(cwd, "latency-r2-summary.json"))
	assert.Equal(t, []string{"p1", "p2"}, rs.Failed)
	assert.Equal(t, 4, rs.Pooled.Samples, "a failed console's samples still count")
}

func TestMergeCSVShorterThanSidecar(t *testing.T) {
	dir := t.TempDir()
	c := ok("r3-p0", 0.02, 0.03)
	c.collected = 5
	writeConsole(t, dir, c)
	writeConsole(t, dir, ok("r3-p1", 0.02))

	code, out, errOut, cwd := runCmd(t, dir)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "note p0 (run r3-p0): sidecar counts 5 samples collected but 2 were read (the CSV is the truth)")
	rs := readSummary(t, filepath.Join(cwd, "latency-r3-summary.json"))
	assert.Equal(t, 2, rs.Consoles[0].SamplesCollected)
	assert.Equal(t, 3, rs.Pooled.Samples)
}

func TestMergePlotAndBench(t *testing.T) {
	dir := t.TempDir()
	writeConsole(t, dir, ok("r4-p0", 0.020, 0.021, 0.022))
	writeConsole(t, dir, ok("r4-p1", 0.030, 0.031))
	out := t.TempDir()
	plotPath, benchPath := filepath.Join(out, "all.png"), filepath.Join(out, "all.bench.txt")

	code, stdout, errOut, _ := runCmd(t, "-plot", plotPath, "-bench", benchPath, dir)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, stdout, "plot: "+plotPath)
	assert.Contains(t, stdout, "bench: "+benchPath)

	f, err := os.Open(plotPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	img, err := png.Decode(f)
	require.NoError(t, err, "the plot is a PNG")
	assert.Positive(t, img.Bounds().Dx())

	bf, err := os.Open(benchPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bf.Close() })
	r, err := results.ReadBench(bf, benchPath)
	require.NoError(t, err)
	assert.Equal(t, "r4", r.Info.RunID)
	assert.Equal(t, keypress, r.Info.Metric)
	assert.Equal(t, "openstack", r.Info.Provider)
	require.Len(t, r.Consoles, 2, "one console per input")
	assert.Equal(t, "p0", r.Consoles[0].Label)
	assert.Equal(t, []float64{0.030, 0.031}, r.Consoles[1].Samples)
}

func TestMergeNoSamplesSkipsPlot(t *testing.T) {
	dir := t.TempDir()
	writeConsole(t, dir, ok("r5-p0"))
	plotPath := filepath.Join(t.TempDir(), "all.png")
	code, _, errOut, _ := runCmd(t, "-plot", plotPath, dir)
	assert.Equal(t, exitFailed, code, "a console without samples failed")
	assert.Contains(t, errOut, "no console has any sample: not writing "+plotPath)
	assert.NoFileExists(t, plotPath)
}

func TestMergePodDirectories(t *testing.T) {
	// A copied Kubernetes results volume: one directory per pod, one pod
	// with two consoles and its own run summary, and lost+found.
	root := t.TempDir()
	writeConsole(t, filepath.Join(root, "k8s-run1-p0"), ok("k8s-run1-p0", 0.02, 0.03))
	writeConsole(t, filepath.Join(root, "k8s-run1-p1"), ok("k8s-run1-p1-c0", 0.04))
	writeConsole(t, filepath.Join(root, "k8s-run1-p1"), ok("k8s-run1-p1-c1", 0.05))
	require.NoError(t, os.WriteFile(filepath.Join(root, "k8s-run1-p1", "latency-k8s-run1-p1-summary.json"), []byte("{}"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "k8s-run1-p1", "junit.xml"), nil, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(root, "lost+found"), 0o755))

	code, out, errOut, cwd := runCmd(t, root)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "latency-merge: note: skipped "+filepath.Join(root, "lost+found")+": no latency-*.json sidecar in it\n", errOut)
	assert.Contains(t, out, "3 console(s), 0 failed")
	rs := readSummary(t, filepath.Join(cwd, "latency-k8s-run1-summary.json"))
	assert.Equal(t, []string{"p0", "p1-c0", "p1-c1"}, labelsOf(rs))
	assert.Equal(t, 4, rs.Pooled.Samples)

	t.Run("a directory with sidecars of its own is not descended", func(t *testing.T) {
		writeConsole(t, root, ok("k8s-run1-p9", 0.02))
		code, _, errOut, cwd := runCmd(t, root)
		require.Equal(t, exitOK, code, errOut)
		assert.Equal(t, []string{"p9"}, labelsOf(readSummary(t, filepath.Join(cwd, "latency-k8s-run1-summary.json"))))
	})
}

func TestMergeGlobs(t *testing.T) {
	root := t.TempDir()
	// One directory per pod, as the Kubernetes Job leaves them.
	for k := range 3 {
		writeConsole(t, filepath.Join(root, fmt.Sprintf("r6-p%d", k)), ok(fmt.Sprintf("r6-p%d", k), 0.02))
	}
	flat := t.TempDir()
	for k := range 3 {
		writeConsole(t, flat, ok(fmt.Sprintf("r7-p%d", k), 0.02))
	}
	writeConsole(t, flat, ok("other-run", 0.02))

	tests := []struct {
		name   string
		args   []string
		labels []string
	}{
		{name: "directories", args: []string{filepath.Join(root, "*") + "/"}, labels: []string{"p0", "p1", "p2"}},
		{name: "sidecar names", args: []string{filepath.Join(root, "*", "latency-*.json")}, labels: []string{"p0", "p1", "p2"}},
		{name: "every file of some pods", args: []string{filepath.Join(flat, "latency-r7-p[01]*")}, labels: []string{"p0", "p1"}},
		{name: "pattern and path mixed", args: []string{filepath.Join(flat, "latency-r7-p0.json"), filepath.Join(flat, "latency-r7-p[12].json")}, labels: []string{"p0", "p1", "p2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "s.json")
			code, _, errOut, _ := runCmd(t, append([]string{"-o", out}, tc.args...)...)
			require.Equal(t, exitOK, code, errOut)
			assert.Equal(t, tc.labels, labelsOf(readSummary(t, out)))
		})
	}
}

func TestMergeBadInput(t *testing.T) {
	dir := t.TempDir()
	a := writeConsole(t, dir, ok("r8-p0", 0.02))
	writeConsole(t, dir, ok("r8-p1", 0.03))

	mixed := t.TempDir()
	writeConsole(t, mixed, ok("m-p0", 0.02))
	ping := ok("m-p1", 0.1, 15)
	ping.metric = "ping_interval"
	writeConsole(t, mixed, ping)

	noCSV := t.TempDir()
	missing := ok("n-p0", 0.02)
	missing.noCSV = true
	writeConsole(t, noCSV, missing)

	garbledCSV := t.TempDir()
	writeConsole(t, garbledCSV, ok("g-p0", 0.02))
	require.NoError(t, os.WriteFile(filepath.Join(garbledCSV, "latency-g-p0.csv"), []byte("0.1\nfast\n"), 0o644))

	escape := t.TempDir()
	esc := ok("e-p0", 0.02)
	esc.csvFile = "../latency-e-p0.csv"
	writeConsole(t, filepath.Join(escape, "sub"), esc)

	copyDir := t.TempDir()
	b, err := os.ReadFile(a)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(copyDir, "latency-r8-p0.json"), b, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(copyDir, "latency-r8-p0.csv"), []byte("0.02\n"), 0o644))

	empty := t.TempDir()
	nested := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(nested, "lost+found"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(nested, "lost+found", "latency-r9-p0.csv"), []byte("0.02\n"), 0o644))

	notJSON := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notJSON, "latency-x.json"), []byte("{"), 0o644))

	tests := []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{name: "no path", wantErr: []string{"no PATH given"}},
		{name: "empty path", args: []string{""}, wantErr: []string{"empty PATH"}},
		{name: "unknown flag", args: []string{"-x", dir}, wantErr: []string{"flag provided but not defined"}},
		{name: "bad run id", args: []string{"-run", "a/b", dir}, wantErr: []string{"-run: invalid run id"}},
		{name: "no such path", args: []string{filepath.Join(dir, "nope")}, wantErr: []string{"nope: no such file or directory"}},
		{name: "empty directory", args: []string{empty}, wantErr: []string{"holds no latency-*.json sidecar"}},
		{name: "nothing one level down either", args: []string{nested}, wantErr: []string{"holds no latency-*.json sidecar, nor do its subdirectories"}},
		{name: "glob matching nothing", args: []string{filepath.Join(dir, "*.nothing")}, wantErr: []string{"matches nothing"}},
		{name: "glob matching no sidecar", args: []string{filepath.Join(dir, "*.csv")}, wantErr: []string{"matches 2 file(s) but no latency-*.json sidecar"}},
		{name: "malformed glob", args: []string{filepath.Join(dir, "[")}, wantErr: []string{"syntax error in pattern"}},
		{name: "a run summary", args: []string{filepath.Join(dir, "latency-r8-summary.json")}, wantErr: []string{"no such file"}},
		{name: "not a sidecar", args: []string{filepath.Join(dir, "latency-r8-p0.png")}, wantErr: []string{"no such file"}},
		{name: "mixed metrics", args: []string{mixed}, wantErr: []string{"different metrics", "keypress_to_screen (" + filepath.Join(mixed, "latency-m-p0.json") + ")", "ping_interval (" + filepath.Join(mixed, "latency-m-p1.json") + ")"}},
		{name: "missing CSV", args: []string{noCSV}, wantErr: []string{"names a CSV that cannot be read", "latency-n-p0.csv", "no such file"}},
		{name: "garbled CSV", args: []string{garbledCSV}, wantErr: []string{"names a CSV that cannot be read", `line 2: "fast"`}},
		{name: "CSV outside the directory", args: []string{filepath.Join(escape, "sub")}, wantErr: []string{`csv_file "../latency-e-p0.csv" is not a file name`}},
		{name: "same directory twice", args: []string{dir, dir}, wantErr: []string{`run id "r8-p0" appears twice`}},
		{name: "same pod in two places", args: []string{dir, copyDir}, wantErr: []string{`run id "r8-p0" appears twice`, a, filepath.Join(copyDir, "latency-r8-p0.json")}},
		{name: "invalid sidecar", args: []string{notJSON}, wantErr: []string{"invalid JSON"}},
		{name: "unwritable output", args: []string{"-o", filepath.Join(a, "x.json"), dir}, wantErr: []string{"write run summary"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut, cwd := runCmd(t, tc.args...)
			assert.Equal(t, exitBadInput, code, "stdout: %s\nstderr: %s", out, errOut)
			for _, want := range tc.wantErr {
				assert.Contains(t, errOut, want)
			}
			entries, err := os.ReadDir(cwd)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing is written on bad input")
		})
	}

	t.Run("explicit run summary file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "latency-r8-summary.json")
		require.NoError(t, os.WriteFile(p, []byte("{}"), 0o644))
		code, _, errOut, _ := runCmd(t, p)
		assert.Equal(t, exitBadInput, code)
		assert.Contains(t, errOut, "is a run summary, not a console's sidecar")
	})
	t.Run("explicit other file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "latency-r8.png")
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		code, _, errOut, _ := runCmd(t, p)
		assert.Equal(t, exitBadInput, code)
		assert.Contains(t, errOut, "is not a latency-<run>.json sidecar")
	})
}

// TestMergeRefusesToMixLanes: a simulated run (provider fake, or a
// sidecar that says so) is not pooled with real SPICE runs unless
// -mix-lanes says to.
func TestMergeRefusesToMixLanes(t *testing.T) {
	dir := t.TempDir()
	writeConsole(t, dir, ok("l-p0", 0.02))
	sim := ok("l-p1", 0.03)
	sim.provider = "fake"
	writeConsole(t, dir, sim)
	code, _, stderr, _ := runCmd(t, dir)
	assert.Equal(t, exitBadInput, code)
	assert.Contains(t, stderr, "mix simulated and real SPICE runs")
	assert.Contains(t, stderr, "-mix-lanes")
	code, _, stderr, _ = runCmd(t, "-mix-lanes", dir)
	assert.Equal(t, exitOK, code, stderr)
}

func TestMergeHelp(t *testing.T) {
	code, _, errOut, _ := runCmd(t, "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, errOut, "usage: latency-merge")
}

func TestSplitRunIDs(t *testing.T) {
	tests := []struct {
		name   string
		ids    []string
		prefix string
		labels []string
	}{
		{name: "pods", ids: []string{"r1-p0", "r1-p1"}, prefix: "r1", labels: []string{"p0", "p1"}},
		{name: "pods and consoles", ids: []string{"r1-p0-c0", "r1-p0-c1", "r1-p1-c0"}, prefix: "r1", labels: []string{"p0-c0", "p0-c1", "p1-c0"}},
		{name: "one pod's consoles", ids: []string{"r1-p3-c0", "r1-p3-c1"}, prefix: "r1-p3", labels: []string{"c0", "c1"}},
		{name: "default run ids", ids: []string{"20260101T120000Z-ab12-p0", "20260101T120000Z-ab12-p1"}, prefix: "20260101T120000Z-ab12", labels: []string{"p0", "p1"}},
		{name: "no label is empty", ids: []string{"r1-p0", "r1-p0-c1"}, prefix: "r1", labels: []string{"p0", "p0-c1"}},
		{name: "prefix is whole parts", ids: []string{"run10-p0", "run11-p0"}, prefix: "", labels: []string{"run10-p0", "run11-p0"}},
		{name: "nothing shared", ids: []string{"a", "b"}, prefix: "", labels: []string{"a", "b"}},
		{name: "one id", ids: []string{"r1-p0"}, prefix: "r1", labels: []string{"p0"}},
		{name: "one plain id", ids: []string{"solo"}, prefix: "solo", labels: []string{"solo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix, labels := splitRunIDs(tc.ids)
			assert.Equal(t, tc.prefix, prefix)
			assert.Equal(t, tc.labels, labels)
		})
	}
}

func TestNaturalCompare(t *testing.T) {
	in := []string{"p10", "p2", "p1-c10", "p1-c2", "p01", "a", "p1", "b2", "b10x", "b10"}
	slices.SortFunc(in, naturalCompare)
	assert.Equal(t, []string{"a", "b2", "b10", "b10x", "p01", "p1", "p1-c2", "p1-c10", "p2", "p10"}, slices.Compact(in))
}

// An A/B leg stopped by a signal during the other leg's block: its
// sidecar, as the A/B now writes it (stop reason interrupted, and the
// error saying it ended short), is counted as failed, never a success.
func TestAnInterruptedLegFails(t *testing.T) {
	dir := t.TempDir()
	writeConsole(t, dir, console{run: "r1-a", metric: keypress, samples: []float64{0.02, 0.021, 0.022, 0.02, 0.021},
		collected: -1, requested: 20, stop: results.StopInterrupted,
		errs: []string{"interrupted the A/B: A leg ended after 5 of 20 samples: context canceled (cause: received terminated)"}})
	writeConsole(t, dir, ok("r1-b", 0.020, 0.021))
	code, _, errOut, cwd := runCmd(t, dir)
	assert.Equal(t, exitFailed, code, errOut)
	rs := readSummary(t, filepath.Join(cwd, "latency-r1-summary.json"))
	assert.Equal(t, []string{"a"}, rs.Failed)
	assert.Equal(t, results.StopInterrupted, rs.Consoles[0].StopReason)
	assert.Contains(t, errOut, "A leg ended after 5 of 20 samples")
}
