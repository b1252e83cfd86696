package results

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchproc"
)

func sampleInfo() BenchInfo {
	return BenchInfo{
		RunID:    "20260101T120000Z-direct",
		Metric:   "keypress_to_screen",
		Provider: "direct",
		Misses:   2,
		Extra:    map[string]string{"cloud": "lab", "guest": "uefi-latency-guest"},
	}
}

func sampleConsoles() []BenchConsole {
	return []BenchConsole{
		{Label: "c0", Samples: []float64{0.0234, 0.019876, 0.1, 1e-6}},
		{Label: "c1", Samples: []float64{0.031, 0.000001234567}},
	}
}

func TestEncodeBenchGolden(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, EncodeBench(&buf, sampleInfo(), sampleConsoles()...))
	golden := filepath.Join("testdata", "bench.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -update to create the golden file")
	assert.Equal(t, string(want), buf.String())
}

// TestBenchParsesWithBenchfmt reads the file with benchstat's own parser
// and checks every name, iteration count, unit and value, and the
// configuration lines.
func TestBenchParsesWithBenchfmt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latency-run.bench.txt")
	consoles := sampleConsoles()
	require.NoError(t, WriteBench(path, sampleInfo(), consoles...))
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })

	type line struct {
		name  string
		value float64
	}
	var want []line
	for _, c := range consoles {
		for _, v := range c.Samples {
			want = append(want, line{"Latency/metric=keypress_to_screen/console=" + c.Label, v})
		}
	}
	var got []line
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			t.Fatalf("benchfmt rejects the file: %v", rec)
		case *benchfmt.Result:
			assert.Equal(t, 1, rec.Iters)
			require.Len(t, rec.Values, 1)
			assert.Equal(t, "sec/op", rec.Values[0].Unit)
			assert.Empty(t, rec.Values[0].OrigUnit, "sec/op is benchfmt's own unit: nothing to convert")
			got = append(got, line{rec.Name.String(), rec.Values[0].Value})

			base, parts := rec.Name.Parts()
			assert.Equal(t, "Latency", string(base))
			require.Len(t, parts, 2, "metric and console are the only sub-name keys")
			// The metric is the only configuration benchstat sees; what
			// differs from run to run is in '#' lines it ignores.
			var keys []string
			for _, c := range rec.Config {
				keys = append(keys, c.Key)
			}
			assert.Equal(t, []string{"metric"}, keys)
			assert.Equal(t, "keypress_to_screen", rec.GetConfig("metric"))
		}
	}
	require.NoError(t, r.Err())
	assert.Equal(t, want, got, "values must survive exactly")
}

// TestBenchstatGroupsTwoRunsInOneTable groups two runs' files the way
// benchstat does by default (-table .config -row .fullname -col .file,
// with its own benchproc library) and checks that they land in one table
// with one row per console and one column per file: otherwise
// `benchstat OLD NEW` would print two tables and compare nothing.
func TestBenchstatGroupsTwoRunsInOneTable(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "latency-A.bench.txt")
	new := filepath.Join(dir, "latency-B.bench.txt")
	require.NoError(t, WriteBench(old, BenchInfo{RunID: "A", Metric: "keypress_to_screen", Provider: "direct"}, sampleConsoles()...))
	require.NoError(t, WriteBench(new, BenchInfo{RunID: "B", Metric: "keypress_to_screen", Provider: "openstack", Misses: 3,
		Extra: map[string]string{"cloud": "lab"}}, sampleConsoles()...))

	filter, err := benchproc.NewFilter("*")
	require.NoError(t, err)
	var parser benchproc.ProjectionParser
	tableBy, _, err := parser.ParseWithUnit(".config", filter)
	require.NoError(t, err)
	rowBy, err := parser.Parse(".fullname", filter)
	require.NoError(t, err)
	colBy, err := parser.Parse(".file", filter)
	require.NoError(t, err)

	tables, rows, cols := map[benchproc.Key]bool{}, map[string]bool{}, map[string]bool{}
	files := benchfmt.Files{Paths: []string{old, new}}
	for files.Scan() {
		res, ok := files.Result().(*benchfmt.Result)
		require.True(t, ok, "unexpected record %v", files.Result())
		for _, k := range tableBy.ProjectValues(res) {
			tables[k] = true
		}
		rows[rowBy.Project(res).StringValues()] = true
		cols[colBy.Project(res).StringValues()] = true
	}
	require.NoError(t, files.Err())
	assert.Len(t, tables, 1, "one table (per unit): %v", tables)
	assert.Len(t, cols, 2)
	assert.Equal(t, map[string]bool{
		"Latency/metric=keypress_to_screen/console=c0": true,
		"Latency/metric=keypress_to_screen/console=c1": true,
	}, rows)
}

func TestReadBenchRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, EncodeBench(&buf, sampleInfo(), sampleConsoles()...))
	run, err := ReadBench(&buf, "x.bench.txt")
	require.NoError(t, err)
	assert.Equal(t, BenchRun{Source: "x.bench.txt", Info: sampleInfo(), Consoles: sampleConsoles()}, run)
}

func TestReadBenchAcceptsGoTestOutput(t *testing.T) {
	in := strings.Join([]string{
		"goos: linux",
		"pkg: example.com/x",
		"BenchmarkPress-2   \t 1\t 23400000 ns/op\t 12 B/op",
		"BenchmarkPress-2   \t 1\t 20000000 ns/op\t 12 B/op",
		"BenchmarkAlloc-2 1 5 B/op", // no time: skipped
		"PASS",
	}, "\n")
	run, err := ReadBench(strings.NewReader(in), "go-test.txt")
	require.NoError(t, err)
	require.Len(t, run.Consoles, 1)
	assert.Equal(t, "Press-2", run.Consoles[0].Label)
	assert.InDeltaSlice(t, []float64{0.0234, 0.020}, run.Consoles[0].Samples, 1e-15)
	assert.Equal(t, "", run.Info.Metric)
	assert.Equal(t, "linux", run.Info.Extra["goos"])
}

func TestReadBenchRefusesBadInput(t *testing.T) {
	tests := []struct {
		name, in, msg string
	}{
		{"empty", "", "no benchmark line"},
		{"no time unit", "BenchmarkLatency/metric=k/console=c0 1 5 B/op\n", "no benchmark line"},
		{"syntax error", "BenchmarkLatency/metric=k/console=c0 1 fast sec/op\n", "parsing measurement"},
		{"missing iterations", "BenchmarkLatency/metric=k/console=c0 x\n", "iteration count"},
		{"two metrics", "BenchmarkLatency/metric=a/console=c0 1 0.1 sec/op\nBenchmarkLatency/metric=b/console=c0 1 0.1 sec/op\n", "several metrics"},
		{"bad miss count", "# misses: many\nBenchmarkLatency/metric=a/console=c0 1 0.1 sec/op\n", "not a count"},
		{"infinite", "BenchmarkLatency/metric=a/console=c0 1 +Inf sec/op\n", "not a finite time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadBench(strings.NewReader(tc.in), "bad.bench.txt")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Contains(t, err.Error(), "bad.bench.txt")
		})
	}
}

func TestEncodeBenchRefusesBadInput(t *testing.T) {
	ok := sampleInfo()
	tests := []struct {
		name     string
		info     func(BenchInfo) BenchInfo
		consoles []BenchConsole
		msg      string
	}{
		{"no metric", func(i BenchInfo) BenchInfo { i.Metric = " "; return i }, sampleConsoles(), "metric is empty"},
		{"negative misses", func(i BenchInfo) BenchInfo { i.Misses = -1; return i }, sampleConsoles(), "negative miss count"},
		{"upper-case key", func(i BenchInfo) BenchInfo { i.Extra = map[string]string{"Cloud": "x"}; return i }, sampleConsoles(), "want a lower-case letter"},
		{"key with space", func(i BenchInfo) BenchInfo { i.Extra = map[string]string{"a b": "x"}; return i }, sampleConsoles(), "want a lower-case letter"},
		{"reserved key", func(i BenchInfo) BenchInfo { i.Extra = map[string]string{"run": "x"}; return i }, sampleConsoles(), "BenchInfo's own field"},
		{"two-line value", func(i BenchInfo) BenchInfo { i.Provider = "a\nBenchmarkFake 1 1 sec/op"; return i }, sampleConsoles(), "one line"},
		{"no consoles", func(i BenchInfo) BenchInfo { return i }, nil, "no consoles"},
		{"NaN", func(i BenchInfo) BenchInfo { return i }, []BenchConsole{{Label: "c0", Samples: []float64{math.NaN()}}}, "not a finite"},
		{"labels collide", func(i BenchInfo) BenchInfo { return i }, []BenchConsole{{Label: "vm 1"}, {Label: "vm/1"}}, "both become"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := EncodeBench(&buf, tc.info(ok), tc.consoles...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestBenchLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"c0", "c0"},
		{"kerbside 0", "kerbside_0"},
		{"a/b=c", "a_b_c"},
		{"vm-12", "vm_12"}, // a trailing -12 would read as GOMAXPROCS
		{"  ", "_"},
		{"p99.9+x:y", "p99.9+x:y"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := BenchLabel(tc.in)
			assert.Equal(t, tc.want, got)
			// Whatever the label, benchfmt must read it back as the
			// console key of a two-key name.
			name := benchfmt.Name(BenchFullName("m", tc.in))
			_, parts := name.Parts()
			require.Len(t, parts, 2)
			assert.Equal(t, "/console="+tc.want, string(parts[1]))
		})
	}
}

func TestConsolesFromSeries(t *testing.T) {
	got := BenchConsoles(msSeries(t, "c0", 10, 20), ValuesSeries("", []float64{0.5}, 0))
	assert.Equal(t, []BenchConsole{
		{Label: "c0", Samples: []float64{0.010, 0.020}},
		{Label: "console 1", Samples: []float64{0.5}},
	}, got)
}

func TestWritePlotAndBenchWritesWhatItCan(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	series := msSeries(t, "c0", 10, 20, 30)
	// The plot's directory is a file, so only the benchmark file can be written.
	plot, bench, err := WritePlotAndBench(filepath.Join(blocker, "p.png"), filepath.Join(dir, "b.bench.txt"), "t", sampleInfo(), series)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plot")
	assert.Empty(t, plot)
	assert.FileExists(t, bench)

	plot, bench, err = WritePlotAndBench(filepath.Join(dir, "p.png"), "", "t", sampleInfo(), series)
	require.NoError(t, err)
	assert.FileExists(t, plot)
	assert.Empty(t, bench, "an empty path skips the file")
}
