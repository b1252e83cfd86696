// Command latency-merge combines the results of several loadtest consoles,
// runs or Kubernetes pods into one run summary, the same
// latency-<run>-summary.json a multi-console run writes.
//
// Usage:
//
//	latency-merge [-o OUT.json] [-run ID] [-plot OUT.png] [-bench OUT.bench.txt] [-mix-lanes] PATH...
//
// Each PATH is a results directory, a sidecar file (or its CSV, whose
// sidecar is read), or a glob pattern such as 'results/*/' or
// 'results/latency-r1-p*.json' (quoted, so the shell leaves it alone). A
// directory gives every latency-*.json sidecar in it, but not
// latency-*-summary.json; when it holds none, every sidecar one level
// down, since a Kubernetes Job's copied volume holds one directory per
// pod (subdirectories without sidecars are skipped with a note).
// For every sidecar the CSV it names is read from the same directory: the
// CSV is the truth, and a sidecar counting more samples than the CSV holds
// is noted. Consoles are labelled by their run ids without the prefix they
// all share ("r1-p0-c1" and "r1-p2-c0" become "p0-c1" and "p2-c0"), and
// that shared prefix is the merged run's id unless -run gives one
// ("merged" when there is none).
//
// It writes the summary (by default latency-<run>-summary.json in the
// current directory), prints it as a table, and optionally draws all
// consoles in one plot (-plot) and writes a benchstat file with one
// console per input (-bench), which latency-compare and benchstat read.
//
// Exit status: 0 when every console passed, 1 when any failed (each is
// named with its reasons; its samples still count in the pooled figures),
// 2 on input it cannot merge: no sidecars, mixed metrics, simulated runs
// mixed with real ones (unless -mix-lanes), an unreadable
// sidecar or CSV, the same run id twice (a pod merged twice), a bad flag,
// or an output it could not write.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/results"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitBadInput = 2
)

// defaultRunID names a merge whose inputs share no run id prefix.
const defaultRunID = "merged"

// The result file names are results' (one rule for the loadtest that
// writes them and the tools that find them).
const (
	sidecarPrefix = results.FilePrefix
	jsonSuffix    = results.SidecarSuffix
	csvSuffix     = results.CSVSuffix
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// input is one console found on the command line.
type input struct {
	sidecarPath string
	sidecar     results.Sidecar
	samples     []float64
}

// run is main without the process: it returns the exit code so tests can
// drive it.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("latency-merge", flag.ContinueOnError)
	fl.SetOutput(stderr)
	out := fl.String("o", "", "where to write the run summary (default latency-<run>-summary.json in the current directory)")
	runID := fl.String("run", "", "run id of the merged summary (default: the run id prefix all inputs share, or \"merged\")")
	plotPath := fl.String("plot", "", "also draw every console in one plot at this path (.png or .svg)")
	benchPath := fl.String("bench", "", "also write a benchstat file with one console per input at this path")
	mixLanes := fl.Bool("mix-lanes", false, "pool simulated runs (fakeryll's simulator) with real SPICE runs; refused without it")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: latency-merge [-o OUT.json] [-run ID] [-plot OUT.png] [-bench OUT.bench.txt] PATH...")
		fmt.Fprintln(stderr, "PATH: a results directory, a latency-<run>.json sidecar, or a quoted glob such as 'results/*/'.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "latency-merge: "+format+"\n", a...)
		return exitBadInput
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return bad("no PATH given: name a results directory or sidecar files")
	}
	if *runID != "" {
		if err := results.ValidateRunID(*runID); err != nil {
			return bad("-run: %v", err)
		}
	}

	paths, notes, err := findSidecars(fl.Args())
	if err != nil {
		return bad("%v", err)
	}
	for _, n := range notes {
		fmt.Fprintf(stderr, "latency-merge: note: %s\n", n)
	}
	inputs, err := load(paths)
	if err != nil {
		return bad("%v", err)
	}
	if err := checkInputs(inputs); err != nil {
		return bad("%v", err)
	}
	if err := checkLanes(inputs); err != nil && !*mixLanes {
		return bad("%v (pass -mix-lanes to pool them anyway)", err)
	}
	slices.SortFunc(inputs, func(a, b input) int {
		return cmp.Or(naturalCompare(a.sidecar.RunID, b.sidecar.RunID), strings.Compare(a.sidecar.RunID, b.sidecar.RunID))
	})

	ids := make([]string, len(inputs))
	for i, in := range inputs {
		ids[i] = in.sidecar.RunID
	}
	prefix, labels := splitRunIDs(ids)
	id := *runID
	if id == "" {
		id = prefix
		if results.ValidateRunID(id) != nil {
			id = defaultRunID
		}
	}
	consoles := make([]results.ConsoleRun, len(inputs))
	for i, in := range inputs {
		consoles[i] = results.ConsoleRun{Label: labels[i], Sidecar: in.sidecar, Samples: in.samples}
	}
	rs, err := results.BuildRunSummary(id, consoles)
	if err != nil {
		return bad("%v", err)
	}

	outPath := *out
	if outPath == "" {
		outPath = results.RunSummaryName(id)
	}
	if err := results.WriteRunSummary(outPath, rs); err != nil {
		return bad("%v", err)
	}
	if err := results.WriteRunSummaryTable(stdout, rs); err != nil {
		return bad("%v", err)
	}
	fmt.Fprintf(stdout, "summary: %s\n", outPath)

	if *plotPath != "" || *benchPath != "" {
		if rs.Pooled.Samples == 0 {
			fmt.Fprintf(stderr, "latency-merge: no console has any sample: not writing %s\n", strings.Join(nonEmpty(*plotPath, *benchPath), " or "))
		} else if err := writeExtras(stdout, rs, consoles, *plotPath, *benchPath); err != nil {
			return bad("%v", err)
		}
	}

	if len(rs.Failed) > 0 {
		fmt.Fprintf(stderr, "latency-merge: %d of %d consoles failed:\n", len(rs.Failed), len(rs.Consoles))
		for _, c := range rs.Consoles {
			if c.Failed {
				fmt.Fprintf(stderr, "  %s (%s): %s\n", c.Label, sidecarPathOf(inputs, c.RunID), strings.Join(c.FailReasons, "; "))
			}
		}
		return exitFailed
	}
	return exitOK
}

// writeExtras draws the pooled plot and writes the benchmark file, as
// asked.
func writeExtras(stdout io.Writer, rs results.RunSummary, consoles []results.ConsoleRun, plotPath, benchPath string) error {
	series := make([]results.Series, len(rs.Consoles))
	for i, c := range rs.Consoles {
		// CSVs carry no times: the plot's time axis becomes the sample number.
		series[i] = results.ValuesSeries(c.Label, consoles[i].Samples, c.Misses)
	}
	title := fmt.Sprintf("%s, run %s (%d consoles, %d samples)", rs.Metric, rs.RunID, len(rs.Consoles), rs.Pooled.Samples)
	info := results.BenchInfo{
		RunID:    rs.RunID,
		Metric:   rs.Metric,
		Provider: providers(rs),
		Misses:   rs.Pooled.Misses,
		Extra:    map[string]string{"consoles": fmt.Sprint(len(rs.Consoles))},
	}
	plot, bench, err := results.WritePlotAndBench(plotPath, benchPath, title, info, series...)
	if plot != "" {
		fmt.Fprintf(stdout, "plot: %s\n", plot)
	}
	if bench != "" {
		fmt.Fprintf(stdout, "bench: %s\n", bench)
	}
	return err
}

// providers names the consoles' providers: one name when they agree,
// else every distinct one joined with "+".
func providers(rs results.RunSummary) string {
	var names []string
	for _, c := range rs.Consoles {
		if c.Provider != "" && !slices.Contains(names, c.Provider) {
			names = append(names, c.Provider)
		}
	}
	slices.Sort(names)
	return strings.Join(names, "+")
}

func nonEmpty(s ...string) []string {
	return slices.DeleteFunc(s, func(v string) bool { return v == "" })
}

// sidecarPathOf returns where the sidecar of run id was read, for
// messages.
func sidecarPathOf(inputs []input, runID string) string {
	for _, in := range inputs {
		if in.sidecar.RunID == runID {
			return in.sidecarPath
		}
	}
	return results.SidecarName(runID)
}

// isSidecarName reports whether a base name is a console's sidecar:
// latency-*.json but not a run summary.
func isSidecarName(name string) bool { return results.IsSidecarName(name) }

// findSidecars expands the command line into sidecar paths, in argument
// order. Every argument must yield at least one sidecar: a directory or a
// pattern that holds none is an error, so a pod that left nothing behind
// is not silently left out.
func findSidecars(args []string) (paths, notes []string, err error) {
	for _, arg := range args {
		if strings.TrimSpace(arg) == "" {
			return nil, nil, errors.New("empty PATH")
		}
		var found, more []string
		fi, err := os.Stat(arg)
		switch {
		case err == nil && fi.IsDir():
			found, more, err = scanDir(arg)
		case err == nil:
			var p string
			p, err = sidecarOf(arg)
			found = []string{p}
		case errors.Is(err, fs.ErrNotExist) && hasMeta(arg):
			found, more, err = expandGlob(arg)
		case errors.Is(err, fs.ErrNotExist):
			err = fmt.Errorf("%s: no such file or directory", arg)
		default:
			err = fmt.Errorf("open %s: %w", arg, err)
		}
		if err != nil {
			return nil, nil, err
		}
		paths = append(paths, found...)
		notes = append(notes, more...)
	}
	return paths, notes, nil
}

// sidecarOf maps a file argument to its sidecar: a sidecar is itself, a
// CSV gives the sidecar beside it; anything else is refused.
func sidecarOf(path string) (string, error) {
	base := filepath.Base(path)
	switch {
	case results.IsRunSummaryName(base):
		return "", fmt.Errorf("%s is a run summary, not a console's sidecar: merge the consoles' latency-<run>.json files (or their directory) instead", path)
	case strings.HasSuffix(base, jsonSuffix):
		return path, nil
	case strings.HasSuffix(base, csvSuffix):
		return strings.TrimSuffix(path, csvSuffix) + jsonSuffix, nil
	default:
		return "", fmt.Errorf("%s is not a latency-<run>.json sidecar", path)
	}
}

// scanDir lists the sidecars directly in dir, sorted by name. When there
// are none, it looks one level down, which is how the Kubernetes Job
// leaves a copied results volume (one directory per pod); a subdirectory
// without sidecars (lost+found, a pod that wrote nothing) is then skipped
// with a note, so it is neither fatal nor silent.
func scanDir(dir string) (found, notes []string, err error) {
	found, subdirs, err := listSidecars(dir)
	if err != nil {
		return nil, nil, err
	}
	if len(found) > 0 {
		return found, nil, nil
	}
	for _, sub := range subdirs {
		inner, _, err := listSidecars(sub)
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("skipped %s: %v", sub, err))
		case len(inner) == 0:
			notes = append(notes, fmt.Sprintf("skipped %s: no latency-*.json sidecar in it", sub))
		default:
			found = append(found, inner...)
		}
	}
	if len(found) == 0 {
		return nil, nil, fmt.Errorf("results directory %s holds no latency-*.json sidecar, nor do its subdirectories (latency-*-summary.json files are not sidecars)", dir)
	}
	return found, notes, nil
}

// listSidecars returns the sidecars and the subdirectories directly in
// dir, each sorted by name.
func listSidecars(dir string) (sidecars, subdirs []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list results directory %s: %w", dir, err)
	}
	for _, e := range entries {
		switch {
		case e.IsDir():
			subdirs = append(subdirs, filepath.Join(dir, e.Name()))
		case e.Type().IsRegular() && isSidecarName(e.Name()):
			sidecars = append(sidecars, filepath.Join(dir, e.Name()))
		}
	}
	return sidecars, subdirs, nil
}

// expandGlob expands a pattern the shell did not (it was quoted, or
// matched nothing there). Matching directories are scanned; matching
// files other than sidecars (CSVs, plots, benchmark files, summaries) are
// skipped, so 'results/latency-r1-p*' works.
func expandGlob(pattern string) (paths, notes []string, err error) {
	// A trailing separator ('results/*/', to say "directories") would make
	// Glob match names against an empty pattern: drop it.
	matches, err := filepath.Glob(filepath.Clean(pattern))
	if err != nil {
		return nil, nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	if len(matches) == 0 {
		return nil, nil, fmt.Errorf("pattern %q matches nothing", pattern)
	}
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", m, err)
		}
		if fi.IsDir() {
			found, more, err := scanDir(m)
			if err != nil {
				return nil, nil, err
			}
			paths = append(paths, found...)
			notes = append(notes, more...)
			continue
		}
		if isSidecarName(filepath.Base(m)) {
			paths = append(paths, m)
		}
	}
	if len(paths) == 0 {
		return nil, nil, fmt.Errorf("pattern %q matches %d file(s) but no latency-*.json sidecar", pattern, len(matches))
	}
	return paths, notes, nil
}

// hasMeta reports whether path holds a glob metacharacter.
func hasMeta(path string) bool { return strings.ContainsAny(path, `*?[\`) }

// load reads every sidecar and the CSV it names.
func load(paths []string) ([]input, error) {
	inputs := make([]input, 0, len(paths))
	for _, p := range paths {
		sc, err := results.ReadSidecar(p)
		if err != nil {
			return nil, err
		}
		if err := results.ValidateRunID(sc.RunID); err != nil {
			return nil, fmt.Errorf("sidecar %s: %w", p, err)
		}
		csvName := sc.CSVFile
		if csvName == "" {
			csvName = results.CSVName(sc.RunID)
		}
		// The name comes from a file: it must not lead out of the sidecar's
		// directory.
		if csvName != filepath.Base(csvName) || csvName == "." || csvName == ".." || strings.ContainsAny(csvName, `/\`) {
			return nil, fmt.Errorf("sidecar %s: csv_file %q is not a file name in the sidecar's directory", p, csvName)
		}
		csvPath := filepath.Join(filepath.Dir(p), csvName)
		samples, err := results.ReadCSV(csvPath)
		if err != nil {
			return nil, fmt.Errorf("sidecar %s names a CSV that cannot be read: %w", p, err)
		}
		inputs = append(inputs, input{sidecarPath: p, sidecar: sc, samples: samples})
	}
	return inputs, nil
}

// checkInputs refuses what cannot be merged, naming the files involved:
// the same run id twice (a pod or directory given twice) and mixed
// metrics.
func checkInputs(inputs []input) error {
	seen := map[string]string{}
	for _, in := range inputs {
		if other, dup := seen[in.sidecar.RunID]; dup {
			return fmt.Errorf("run id %q appears twice (%s and %s): the same console would be merged twice", in.sidecar.RunID, other, in.sidecarPath)
		}
		seen[in.sidecar.RunID] = in.sidecarPath
	}
	byMetric := map[string][]string{}
	for _, in := range inputs {
		m := strings.TrimSpace(in.sidecar.Metric)
		if m == "" {
			return fmt.Errorf("sidecar %s names no metric: cannot tell what its samples measure", in.sidecarPath)
		}
		byMetric[m] = append(byMetric[m], in.sidecarPath)
	}
	if len(byMetric) > 1 {
		var parts []string
		for _, m := range slices.Sorted(maps.Keys(byMetric)) {
			parts = append(parts, fmt.Sprintf("%s (%s)", m, strings.Join(byMetric[m], ", ")))
		}
		return fmt.Errorf("inputs measure different metrics, which cannot be pooled: %s", strings.Join(parts, "; "))
	}
	return nil
}

// checkLanes refuses to pool simulated numbers with real ones: a
// simulator's samples say nothing about a console.
func checkLanes(inputs []input) error {
	byLane := map[string][]string{}
	for _, in := range inputs {
		lane := results.LaneOf(in.sidecar)
		byLane[lane] = append(byLane[lane], in.sidecarPath)
	}
	if len(byLane) < 2 {
		return nil
	}
	var parts []string
	for _, l := range slices.Sorted(maps.Keys(byLane)) {
		parts = append(parts, fmt.Sprintf("%s (%s)", l, strings.Join(byLane[l], ", ")))
	}
	return fmt.Errorf("inputs mix simulated and real SPICE runs: %s", strings.Join(parts, "; "))
}

// splitRunIDs finds the '-'-separated prefix every run id shares and
// returns it with each id's remainder as its label. The prefix stops
// short of any id's last part, so no label is empty: "r1-p0" and
// "r1-p0-c1" give "r1" with "p0" and "p0-c1".
func splitRunIDs(ids []string) (prefix string, labels []string) {
	parts := make([][]string, len(ids))
	n := -1
	for i, id := range ids {
		parts[i] = strings.Split(id, "-")
		if n < 0 || len(parts[i])-1 < n {
			n = len(parts[i]) - 1
		}
	}
	common := 0
	for common < n && allEqual(parts, common) {
		common++
	}
	labels = make([]string, len(ids))
	for i := range ids {
		labels[i] = strings.Join(parts[i][common:], "-")
	}
	if len(ids) > 0 && common > 0 {
		prefix = strings.Join(parts[0][:common], "-")
	}
	if prefix == "" && len(ids) == 1 {
		prefix = ids[0]
	}
	return prefix, labels
}

func allEqual(parts [][]string, i int) bool {
	for _, p := range parts[1:] {
		if p[i] != parts[0][i] {
			return false
		}
	}
	return true
}

// naturalCompare orders strings with runs of digits compared as numbers,
// so that p2 sorts before p10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		ca, ra := chunk(a)
		cb, rb := chunk(b)
		if isDigit(ca[0]) && isDigit(cb[0]) {
			ta, tb := strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
			if c := cmp.Compare(len(ta), len(tb)); c != 0 {
				return c
			}
			if c := strings.Compare(ta, tb); c != 0 {
				return c
			}
		} else if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
		a, b = ra, rb
	}
	return cmp.Compare(len(a), len(b))
}

// chunk splits off the leading run of digits or of non-digits.
func chunk(s string) (head, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
