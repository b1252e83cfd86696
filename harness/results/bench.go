package results

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// BenchUnit is the unit of every benchmark line: seconds per key press.
// benchfmt's base unit for time is sec/op (it rewrites ns/op into it), so
// writing sec/op keeps the CSV's value exactly and makes benchstat print
// readable times such as "20.03m" (milliseconds).
const BenchUnit = "sec/op"

// BenchName is the base name of every benchmark line. The metric and the
// console follow as sub-benchmark keys, so benchstat can split or filter
// on them (-row /console, -filter /metric:keypress_to_screen).
const BenchName = "Latency"

// Keys of a benchmark file's header.
//
// Only ConfigMetric is a real benchmark configuration line ("metric: x").
// benchstat puts results whose configuration lines differ in different
// tables (its default -table is .config) and then compares nothing; the
// run id, provider and counts always differ between the two runs being
// compared, so they are written as "# key: value" lines, which benchstat
// ignores and ReadBench reads.
const (
	ConfigMetric   = "metric"
	ConfigRun      = "run"
	ConfigProvider = "provider"
	ConfigSamples  = "samples"
	ConfigMisses   = "misses"
	// ConfigLane is an Extra line: "simulated" or "real" (LaneOf).
	ConfigLane = "lane"
)

// Lane is the run's lane: its "lane" line, or for files written before
// it was recorded, simulated when the provider was fake.
func (i BenchInfo) Lane() string {
	if l := i.Extra[ConfigLane]; l != "" {
		return l
	}
	return LaneOf(Sidecar{Provider: i.Provider})
}

// maxBenchFile bounds what ReadBench reads into memory. A run has one
// line (under 100 bytes) per key press; this allows millions.
const maxBenchFile = 256 << 20

// BenchInfo describes a run for the header of a benchmark file. None of
// it may hold a secret: the file is meant to be shared.
type BenchInfo struct {
	// RunID is the <run> of latency-<run>.*.
	RunID string
	// Metric says what the samples measure (e.g. "keypress_to_screen").
	// It is part of every benchmark name, so that benchstat never puts
	// two different metrics in one row.
	Metric string
	// Provider says where the console came from (e.g. "direct",
	// "openstack"): the usual thing two runs differ in.
	Provider string
	// Misses counts key presses with no draw. They are not in the
	// samples; the count is kept so that a comparison can show them.
	Misses int
	// Extra holds further descriptive lines (e.g. "cloud", "flavor"),
	// written like the run id. Keys must start with a lower-case letter
	// and hold only a-z, 0-9, '_', '-' and '.'; values must be one line.
	Extra map[string]string
}

// Console is the samples of one console, in seconds.
type BenchConsole struct {
	// Label names the console (e.g. "c0"); see BenchLabel for how it
	// is made safe for a benchmark name.
	Label string
	// Samples in seconds, in the order they were taken.
	Samples []float64
}

// Run is one run's samples with its description: what WriteBench writes
// and ReadBench reads back, and what Compare compares.
type BenchRun struct {
	// Source says where the run was read from, for messages.
	Source string
	// Info describes the run.
	Info BenchInfo
	// Consoles holds the samples per console, in file order.
	Consoles []BenchConsole
}

// Pooled returns every sample of the run, console after console.
func (r BenchRun) Pooled() []float64 {
	var out []float64
	for _, c := range r.Consoles {
		out = append(out, c.Samples...)
	}
	return out
}

// Consoles converts plot series into the per-console samples WriteBench
// takes, so one set of data feeds both outputs.
func BenchConsoles(series ...Series) []BenchConsole {
	out := make([]BenchConsole, len(series))
	for i, s := range withLabels(series) {
		out[i] = BenchConsole{Label: s.Label, Samples: s.Values()}
	}
	return out
}

var (
	configKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)
	headerLine       = regexp.MustCompile(`^# ([a-z][a-z0-9_.-]*):(?:[ \t]+(.*))?$`)
	unsafeNameChars  = regexp.MustCompile(`[^A-Za-z0-9_.+:]+`)
)

// BenchLabel makes s safe as a value in a benchmark name. A space ends
// the name, '/' and '=' would split it into other keys, and a trailing
// "-<digits>" would be read as GOMAXPROCS; so every run of characters
// other than letters, digits, '_', '.', '+' and ':' becomes one '_'.
// An empty result becomes "_".
func BenchLabel(s string) string {
	s = unsafeNameChars.ReplaceAllString(strings.TrimSpace(s), "_")
	if s == "" {
		return "_"
	}
	return s
}

// BenchFullName is the benchmark name (without the "Benchmark" prefix)
// of one console's samples: Latency/metric=<metric>/console=<label>.
func BenchFullName(metric, console string) string {
	return BenchName + "/metric=" + BenchLabel(metric) + "/console=" + BenchLabel(console)
}

// WriteBench writes the samples of a run to path in the Go benchmark
// format: a header describing the run, then one line per sample with one
// iteration and the latency in sec/op. Each sample is its own line so that
// benchstat sees every key press as one measurement and computes its
// median, confidence interval and test over all of them. The file is
// replaced atomically.
func WriteBench(path string, info BenchInfo, consoles ...BenchConsole) error {
	var buf bytes.Buffer
	if err := EncodeBench(&buf, info, consoles...); err != nil {
		return fmt.Errorf("write benchmark file %s: %w", path, err)
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	})
}

// EncodeBench writes what WriteBench stores to w.
func EncodeBench(w io.Writer, info BenchInfo, consoles ...BenchConsole) error {
	info.Metric = strings.TrimSpace(info.Metric)
	header, err := benchHeader(info, consoles)
	if err != nil {
		return err
	}
	if len(consoles) == 0 {
		return errors.New("encode benchmark file: no consoles given")
	}
	if _, err := io.WriteString(w, header); err != nil {
		return fmt.Errorf("encode benchmark file: %w", err)
	}
	config := []benchfmt.Config{{Key: ConfigMetric, Value: []byte(info.Metric), File: true}}
	bw := benchfmt.NewWriter(w)
	seen := map[string]string{}
	for i, c := range consoles {
		label := c.Label
		if strings.TrimSpace(label) == "" {
			label = fmt.Sprintf("console %d", i)
		}
		name := BenchFullName(info.Metric, label)
		if other, dup := seen[name]; dup {
			return fmt.Errorf("encode benchmark file: consoles %q and %q both become %s", other, label, name)
		}
		seen[name] = label
		for j, v := range c.Samples {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("encode benchmark file: console %q sample %d: %v is not a finite number of seconds", label, j, v)
			}
			res := &benchfmt.Result{
				Config: config,
				Name:   benchfmt.Name(name),
				Iters:  1,
				Values: []benchfmt.Value{{Value: v, Unit: BenchUnit}},
			}
			if err := bw.Write(res); err != nil {
				return fmt.Errorf("encode benchmark file: %w", err)
			}
		}
	}
	return nil
}

// benchHeader validates info and returns the "# key: value" lines that
// describe the run.
func benchHeader(info BenchInfo, consoles []BenchConsole) (string, error) {
	if info.Misses < 0 {
		return "", fmt.Errorf("encode benchmark file: negative miss count %d", info.Misses)
	}
	info.Metric = strings.TrimSpace(info.Metric)
	if info.Metric == "" {
		return "", errors.New("encode benchmark file: metric is empty: say what the samples measure")
	}
	n := 0
	for _, c := range consoles {
		n += len(c.Samples)
	}
	pairs := [][2]string{
		{ConfigMetric, info.Metric}, // checked here, written as a real configuration line
		{ConfigRun, info.RunID},
		{ConfigProvider, info.Provider},
		{ConfigSamples, strconv.Itoa(n)},
		{ConfigMisses, strconv.Itoa(info.Misses)},
	}
	extra := make([]string, 0, len(info.Extra))
	for k := range info.Extra {
		extra = append(extra, k)
	}
	slices.Sort(extra)
	for _, k := range extra {
		if !configKeyPattern.MatchString(k) {
			return "", fmt.Errorf("encode benchmark file: key %q: want a lower-case letter, then a-z, 0-9, '_', '-' or '.'", k)
		}
		switch k {
		case ConfigRun, ConfigProvider, ConfigMetric, ConfigSamples, ConfigMisses:
			return "", fmt.Errorf("encode benchmark file: key %q is set from BenchInfo's own field", k)
		}
		pairs = append(pairs, [2]string{k, info.Extra[k]})
	}
	var b strings.Builder
	b.WriteString("# Latency samples, one benchmark line per key press. Compare two runs with\n")
	b.WriteString("# benchstat OLD NEW. Lines starting with '#' describe the run; benchstat\n")
	b.WriteString("# ignores them, so runs of different providers share one table.\n")
	for _, kv := range pairs {
		v := strings.TrimSpace(kv[1])
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("encode benchmark file: %q: value must be one line", kv[0])
		}
		if kv[0] == ConfigMetric || v == "" {
			continue
		}
		fmt.Fprintf(&b, "# %s: %s\n", kv[0], v)
	}
	return b.String(), nil
}

// ReadBench reads a benchmark file back into a Run. It accepts what
// EncodeBench writes and, more loosely, any Go benchmark output with time
// per operation (ns/op or sec/op): lines named Latency/metric=M/console=C
// give console C, any other benchmark becomes a console named after its
// full name. A malformed benchmark line, more than one metric, or no time
// measurement at all is an error naming the file.
func ReadBench(r io.Reader, fileName string) (BenchRun, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxBenchFile+1))
	if err != nil {
		return BenchRun{}, fmt.Errorf("read benchmark file %s: %w", fileName, err)
	}
	if len(raw) > maxBenchFile {
		return BenchRun{}, fmt.Errorf("read benchmark file %s: larger than %d MiB", fileName, maxBenchFile>>20)
	}
	run := BenchRun{Source: fileName}
	if err := readHeader(&run.Info, raw); err != nil {
		return BenchRun{}, fmt.Errorf("read benchmark file %s: %w", fileName, err)
	}

	br := benchfmt.NewReader(bytes.NewReader(raw), fileName)
	index := map[string]int{}
	metrics := map[string]bool{}
	for br.Scan() {
		var res *benchfmt.Result
		switch rec := br.Result().(type) {
		case *benchfmt.SyntaxError:
			return BenchRun{}, fmt.Errorf("read benchmark file: %w", rec)
		case *benchfmt.Result:
			res = rec
		default:
			continue
		}
		v, ok := res.Value(BenchUnit)
		if !ok {
			continue
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			_, line := res.Pos()
			return BenchRun{}, fmt.Errorf("read benchmark file %s:%d: %v is not a finite time", fileName, line, v)
		}
		for _, c := range res.Config {
			if c.File && c.Key != ConfigMetric {
				if run.Info.Extra == nil {
					run.Info.Extra = map[string]string{}
				}
				run.Info.Extra[c.Key] = string(c.Value)
			}
		}
		metric, console := splitBenchName(res.Name)
		if metric == "" {
			metric = res.GetConfig(ConfigMetric)
		}
		metrics[metric] = true
		i, ok := index[console]
		if !ok {
			i = len(run.Consoles)
			index[console] = i
			run.Consoles = append(run.Consoles, BenchConsole{Label: console})
		}
		run.Consoles[i].Samples = append(run.Consoles[i].Samples, v)
	}
	if err := br.Err(); err != nil {
		return BenchRun{}, fmt.Errorf("read benchmark file: %w", err)
	}
	if len(run.Consoles) == 0 {
		return BenchRun{}, fmt.Errorf("read benchmark file %s: %w: no benchmark line with a time per operation (ns/op or sec/op)", fileName, ErrNoSamples)
	}
	if len(metrics) > 1 {
		names := make([]string, 0, len(metrics))
		for m := range metrics {
			names = append(names, strconv.Quote(m))
		}
		slices.Sort(names)
		return BenchRun{}, fmt.Errorf("read benchmark file %s: it holds several metrics (%s); compare one metric at a time", fileName, strings.Join(names, ", "))
	}
	for m := range metrics {
		run.Info.Metric = m
	}
	return run, nil
}

// readHeader takes the run's description from the "# key: value" lines.
// The last value of a key wins.
func readHeader(info *BenchInfo, raw []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		m := headerLine.FindSubmatch(sc.Bytes())
		if m == nil {
			continue
		}
		k, v := string(m[1]), strings.TrimSpace(string(m[2]))
		switch k {
		case ConfigRun:
			info.RunID = v
		case ConfigProvider:
			info.Provider = v
		case ConfigSamples, ConfigMetric:
			// The count is what the file holds; the metric is in the
			// benchmark names.
		case ConfigMisses:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("line %d: %s: %q is not a count", line, ConfigMisses, v)
			}
			info.Misses = n
		default:
			if info.Extra == nil {
				info.Extra = map[string]string{}
			}
			info.Extra[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("after line %d: %w", line, err)
	}
	return nil
}

// splitBenchName returns the metric and console of a benchmark name
// written by EncodeBench. For any other name the metric is "" and the
// console is the full name.
func splitBenchName(name benchfmt.Name) (metric, console string) {
	base, parts := name.Parts()
	if string(base) != BenchName {
		return "", name.String()
	}
	for _, p := range parts {
		k, v, ok := strings.Cut(strings.TrimPrefix(string(p), "/"), "=")
		if !ok {
			continue
		}
		switch k {
		case "metric":
			metric = v
		case "console":
			console = v
		}
	}
	if console == "" {
		console = name.String()
	}
	return metric, console
}

// WritePlotAndBench writes the two readable files of a run from the same
// series: the plot to plotPath and the benchmark file to benchPath (an
// empty path skips that file). One failing does not stop the other; it
// returns the paths actually written ("" for a file skipped or failed)
// and every error joined.
func WritePlotAndBench(plotPath, benchPath, title string, info BenchInfo, series ...Series) (plot, bench string, err error) {
	var errs []error
	if plotPath != "" {
		if err := Plot(plotPath, title, series...); err != nil {
			errs = append(errs, fmt.Errorf("plot: %w", err))
		} else {
			plot = plotPath
		}
	}
	if benchPath != "" {
		if err := WriteBench(benchPath, info, BenchConsoles(series...)...); err != nil {
			errs = append(errs, fmt.Errorf("benchmark file: %w", err))
		} else {
			bench = benchPath
		}
	}
	return plot, bench, errors.Join(errs...)
}
