// Command latency-compare compares the latency samples of two loadtest
// runs, typically a console reached directly on the hypervisor (OLD)
// against the same console through Kerbside (NEW).
//
// Usage:
//
//	latency-compare [-alpha 0.05] [-max-added 10ms] [-mix-lanes] OLD NEW
//
// OLD and NEW are each a latency CSV (its JSON sidecar is read when it is
// beside it), a .bench.txt file, a run stem (results/latency-A, or
// results/A) or a results directory holding exactly one run. A stem
// prefers the .bench.txt, which keeps the consoles apart.
//
// It prints benchstat's table (medians with their confidence intervals,
// the change and the Mann-Whitney p-value, per console and pooled) and a
// one-line summary. Without a significant difference, the summary says
// "inconclusive" rather than "no significant difference" when the 95 %
// interval of NEW − OLD reaches above -max-added (default 10 ms, the
// loadtest's LATENCY_AB_MAX_ADDED): the absence of significance is not
// proof of no difference. A simulated run (fakeryll's simulator) is not
// compared with a real one unless -mix-lanes says so. It exits 0 whether or not the runs differ: a
// comparison reports, it does not pass or fail. It exits 1 on input it
// cannot compare and 2 on a usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/compare"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// Exit codes.
const (
	exitOK       = 0
	exitBadInput = 1
	exitUsage    = 2
)

// The result file names are results' (results.FilePrefix and the
// suffixes): one rule for the loadtest that writes them and the tools
// that find them.
const (
	benchSuffix = results.BenchSuffix
	csvSuffix   = results.CSVSuffix
	jsonSuffix  = results.SidecarSuffix
	stemPrefix  = results.FilePrefix
	// csvConsole labels the samples of a CSV, which pools all consoles.
	csvConsole = "all"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code so tests can
// drive it.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("latency-compare", flag.ContinueOnError)
	fl.SetOutput(stderr)
	alpha := fl.Float64("alpha", compare.DefaultAlpha, "significance level: a p-value at or below it is reported as a difference")
	mixLanes := fl.Bool("mix-lanes", false, "compare a simulated run (fakeryll's simulator) with a real SPICE run; refused without it")
	maxAdded := fl.Duration("max-added", time.Duration(compare.DefaultMaxAdded*float64(time.Second)),
		"the most NEW may add to the median and still be called no worse: without a significant difference, a 95% interval of NEW-OLD reaching above it is inconclusive")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: latency-compare [-alpha 0.05] [-max-added 10ms] OLD NEW")
		fmt.Fprintln(stderr, "OLD and NEW: a latency-<run>.csv, a latency-<run>.bench.txt, a run stem (results/latency-<run> or results/<run>),")
		fmt.Fprintln(stderr, "or a results directory holding one run.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fl.NArg() != 2 {
		fmt.Fprintf(stderr, "latency-compare: want two runs, OLD and NEW; got %d argument(s)\n", fl.NArg())
		fl.Usage()
		return exitUsage
	}
	if !(*alpha > 0 && *alpha < 1) {
		fmt.Fprintf(stderr, "latency-compare: -alpha %v: want a number between 0 and 1, e.g. 0.05\n", *alpha)
		return exitUsage
	}
	if *maxAdded <= 0 {
		fmt.Fprintf(stderr, "latency-compare: -max-added %v: want a duration above 0, e.g. 10ms\n", *maxAdded)
		return exitUsage
	}

	var runs [2]results.BenchRun
	for i, which := range []string{"OLD", "NEW"} {
		r, notes, err := load(fl.Arg(i))
		if err != nil {
			fmt.Fprintf(stderr, "latency-compare: %s: %v\n", which, err)
			return exitBadInput
		}
		for _, n := range notes {
			fmt.Fprintf(stderr, "latency-compare: %s: note: %s\n", which, n)
		}
		runs[i] = r
	}
	if a, b := runs[0].Info.Lane(), runs[1].Info.Lane(); a != b && !*mixLanes {
		fmt.Fprintf(stderr, "latency-compare: OLD is a %s run and NEW a %s one: simulated numbers say nothing about a console, so they are not compared with real ones (pass -mix-lanes to compare them anyway)\n", a, b)
		return exitBadInput
	}
	c, err := compare.Runs(runs[0], runs[1], *alpha)
	if err != nil {
		fmt.Fprintf(stderr, "latency-compare: %v\n", err)
		return exitBadInput
	}
	if _, err := c.JudgeWithin(maxAdded.Seconds()); err != nil {
		// Too few samples for an interval: the table still stands.
		fmt.Fprintf(stderr, "latency-compare: note: %v\n", err)
	}
	if err := write(stdout, c); err != nil {
		fmt.Fprintf(stderr, "latency-compare: %v\n", err)
		return exitBadInput
	}
	return exitOK
}

func write(w io.Writer, c *compare.Comparison) error {
	var errs []error
	p := func(format string, a ...any) {
		_, err := fmt.Fprintf(w, format, a...)
		errs = append(errs, err)
	}
	for _, s := range []struct {
		name string
		side compare.Side
	}{{"OLD", c.Old}, {"NEW", c.New}} {
		p("%s: %s\n", s.name, describe(s.side))
	}
	p("\n")
	errs = append(errs, c.WriteTable(w, "OLD", "NEW"))
	p("\n%s\n", c.SummaryLine())
	for _, warn := range c.Warnings {
		p("note: %s\n", warn)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

// describe says in one line what a side is: where it came from and what
// it holds.
func describe(s compare.Side) string {
	info := s.Run.Info
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("run", info.RunID)
	add("provider", info.Provider)
	add("metric", info.Metric)
	consoles := "consoles"
	if len(s.Run.Consoles) == 1 {
		consoles = "console"
	}
	misses := "misses"
	if info.Misses == 1 {
		misses = "miss"
	}
	parts = append(parts, fmt.Sprintf("%d samples in %d %s", s.N, len(s.Run.Consoles), consoles),
		fmt.Sprintf("%d %s", info.Misses, misses))
	return fmt.Sprintf("%s (%s)", s.Run.Source, strings.Join(parts, ", "))
}

// load reads one argument into a run, with notes worth showing the user
// (for example a CSV without its sidecar).
func load(arg string) (results.BenchRun, []string, error) {
	if strings.TrimSpace(arg) == "" {
		return results.BenchRun{}, nil, errors.New("empty path")
	}
	fi, err := os.Stat(arg)
	switch {
	case err == nil && fi.IsDir():
		stem, err := onlyRunIn(arg)
		if err != nil {
			return results.BenchRun{}, nil, err
		}
		return loadStem(stem)
	case err == nil:
		return loadFile(arg)
	case errors.Is(err, fs.ErrNotExist):
		return loadStem(arg)
	default:
		return results.BenchRun{}, nil, fmt.Errorf("open %s: %w", arg, err)
	}
}

func loadFile(path string) (results.BenchRun, []string, error) {
	switch {
	case strings.HasSuffix(path, benchSuffix):
		r, err := loadBench(path)
		return r, nil, err
	case strings.HasSuffix(path, csvSuffix):
		return loadCSV(path)
	case strings.HasSuffix(path, jsonSuffix):
		// A sidecar names its run; compare that run's CSV.
		return loadCSV(strings.TrimSuffix(path, jsonSuffix) + csvSuffix)
	default:
		// Anything else may be plain `go test -bench` output, which is
		// what benchstat itself takes.
		r, err := loadBench(path)
		return r, nil, err
	}
}

// loadStem finds the files of a run from its stem: stem.bench.txt first
// (it keeps the consoles apart), then stem.csv; a stem that does not
// start with "latency-" is also tried as a run id in its directory.
func loadStem(stem string) (results.BenchRun, []string, error) {
	stem = strings.TrimSuffix(stem, ".")
	candidates := []string{stem}
	if base := filepath.Base(stem); !strings.HasPrefix(base, stemPrefix) {
		candidates = append(candidates, filepath.Join(filepath.Dir(stem), stemPrefix+base))
	}
	var tried []string
	for _, c := range candidates {
		for _, suffix := range []string{benchSuffix, csvSuffix} {
			p := c + suffix
			tried = append(tried, p)
			if _, err := os.Stat(p); err == nil {
				return loadFile(p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return results.BenchRun{}, nil, fmt.Errorf("open %s: %w", p, err)
			}
		}
	}
	return results.BenchRun{}, nil, fmt.Errorf("%s is not a file, a directory or a run stem (tried %s)", stem, strings.Join(tried, ", "))
}

// onlyRunIn returns the stem of the one run in dir, or an error listing
// the runs when there are several.
func onlyRunIn(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("list results directory %s: %w", dir, err)
	}
	var stems []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, stemPrefix) {
			continue
		}
		for _, suffix := range []string{benchSuffix, csvSuffix} {
			if strings.HasSuffix(name, suffix) {
				stem := strings.TrimSuffix(name, suffix)
				if !slices.Contains(stems, stem) {
					stems = append(stems, stem)
				}
			}
		}
	}
	slices.Sort(stems)
	switch len(stems) {
	case 0:
		return "", fmt.Errorf("results directory %s holds no %s*%s or %s*%s file", dir, stemPrefix, csvSuffix, stemPrefix, benchSuffix)
	case 1:
		return filepath.Join(dir, stems[0]), nil
	default:
		return "", fmt.Errorf("results directory %s holds %d runs (%s): name one, e.g. %s", dir, len(stems),
			strings.Join(stems, ", "), filepath.Join(dir, stems[0]+csvSuffix))
	}
}

func loadBench(path string) (results.BenchRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return results.BenchRun{}, fmt.Errorf("open benchmark file: %w", err)
	}
	defer f.Close()
	return results.ReadBench(f, path)
}

// loadCSV reads a latency CSV and, when it is there, its sidecar, which
// says what the numbers are. Without a sidecar the metric is unknown and
// the comparison cannot check that both runs measured the same thing, so
// a note says so.
func loadCSV(path string) (results.BenchRun, []string, error) {
	values, err := results.ReadCSV(path)
	if err != nil {
		return results.BenchRun{}, nil, err
	}
	run := results.BenchRun{Source: path, Consoles: []results.BenchConsole{{Label: csvConsole, Samples: values}}}
	var notes []string
	sidecar := strings.TrimSuffix(path, csvSuffix) + jsonSuffix
	sc, err := results.ReadSidecar(sidecar)
	switch {
	case err == nil:
		run.Info = results.BenchInfo{RunID: sc.RunID, Metric: sc.Metric, Provider: sc.Provider, Misses: sc.Misses,
			Extra: map[string]string{results.ConfigLane: results.LaneOf(sc)}}
		if sc.SamplesCollected != len(values) {
			notes = append(notes, fmt.Sprintf("%s says %d samples were collected but %s holds %d", sidecar, sc.SamplesCollected, path, len(values)))
		}
	case errors.Is(err, fs.ErrNotExist):
		run.Info.RunID = strings.TrimPrefix(strings.TrimSuffix(filepath.Base(path), csvSuffix), stemPrefix)
		notes = append(notes, fmt.Sprintf("no sidecar %s: metric and misses unknown", sidecar))
	default:
		return results.BenchRun{}, nil, err
	}
	return run, notes, nil
}
