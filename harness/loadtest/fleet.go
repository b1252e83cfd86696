package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/report"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// Member is one console of a run. A run with LATENCY_CONSOLES=1 has one
// member whose files carry the run id unchanged; with N > 1, member i
// uses the run id <run>-c<i>, so each console leaves an ordinary CSV and
// sidecar of its own and one console's failure never touches another's
// files.
type Member struct {
	Index int
	// Label is "c<i>" (also for a single console).
	Label string
	// StartOffset staggers the members' first key presses across one
	// cadence, so presses of different consoles do not line up.
	StartOffset time.Duration
	Run         *Run
	SetupErr    error

	Measurement *Measurement
	Sidecar     results.Sidecar
	Files       Files
	ResultsErr  error

	resultsOnce sync.Once
}

// Fleet is every console of one run.
type Fleet struct {
	Cfg     *config.Config
	Members []*Member

	summaryOnce  sync.Once
	summaryFiles SummaryFiles
	summary      results.RunSummary
	summaryErr   error
}

// MemberConfig is cfg for console i of n: the same settings, its own run
// id (and so its own server name and files) when n > 1.
func MemberConfig(cfg *config.Config, i, n int) *config.Config {
	c := *cfg
	if n > 1 {
		c.RunID = fmt.Sprintf("%s-c%d", cfg.RunID, i)
	}
	return &c
}

// SetupFleet sets up cfg.Consoles consoles, at most cfg.Parallel at a
// time. It never fails as a whole: each member records its own SetupErr,
// so that one console that cannot start does not cost the others their
// measurement. memberEnv, when not nil, adds ryll environment per member
// (fakeryll knobs such as a per-console truth file).
func SetupFleet(ctx context.Context, cfg *config.Config, opts Options, memberEnv func(i int) []string) *Fleet {
	n := cfg.Consoles
	f := &Fleet{Cfg: cfg, Members: make([]*Member, n)}
	sem := make(chan struct{}, max(cfg.Parallel, 1))
	var wg sync.WaitGroup
	for i := range n {
		m := &Member{Index: i, Label: fmt.Sprintf("c%d", i), StartOffset: time.Duration(i) * cfg.Cadence / time.Duration(n)}
		f.Members[i] = m
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				m.SetupErr = fmt.Errorf("console %s not started: %w", m.Label, context.Cause(ctx))
				m.Run = &Run{Cfg: MemberConfig(cfg, i, n), Start: time.Now()}
				return
			}
			defer func() { <-sem }()
			mo := opts
			if mo.Logger != nil && n > 1 {
				mo.Logger = mo.Logger.With("console", m.Label)
			}
			if memberEnv != nil {
				mo.RyllEnv = append(append([]string(nil), opts.RyllEnv...), memberEnv(i)...)
			}
			m.Run, m.SetupErr = Setup(ctx, MemberConfig(cfg, i, n), mo)
		})
	}
	wg.Wait()
	return f
}

// Teardown tears every member down, at most cfg.Parallel at a time, and
// joins their errors. Safe to call more than once.
func (f *Fleet) Teardown(ctx context.Context) error {
	sem := make(chan struct{}, max(f.Cfg.Parallel, 1))
	errs := make([]error, len(f.Members))
	var wg sync.WaitGroup
	for i, m := range f.Members {
		if m == nil || m.Run == nil {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := m.Run.Teardown(ctx); err != nil {
				errs[i] = fmt.Errorf("console %s: %w", m.Label, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Measure waits for the member's start offset, then measures.
func (m *Member) Measure(ctx context.Context) (*Measurement, error) {
	if m.StartOffset > 0 {
		t := time.NewTimer(m.StartOffset)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("console %s: interrupted before its first key press: %w", m.Label, context.Cause(ctx))
		}
	}
	mm, err := m.Run.Measure(ctx)
	if mm != nil {
		m.Measurement = mm
	}
	return mm, err
}

// WriteResults writes the member's sidecar, plot, benchmark file and
// summary once; later calls do nothing. errs are further errors of the
// run to record in the sidecar.
func (m *Member) WriteResults(w io.Writer, errs ...error) {
	m.resultsOnce.Do(func() {
		if m.Run == nil || m.Run.Cfg == nil {
			return
		}
		if m.SetupErr != nil {
			errs = append(errs, m.SetupErr)
		}
		if m.Measurement != nil && m.Measurement.Err != nil {
			errs = append(errs, m.Measurement.Err)
		}
		m.Sidecar = m.Run.Sidecar(m.Measurement, time.Now(), errs...)
		m.Files, m.ResultsErr = m.Run.WriteResults(w, m.Measurement, m.Sidecar)
	})
}

// SummaryFiles names what WriteSummary writes.
type SummaryFiles struct {
	Summary, Plot, Bench string
}

// WriteSummary writes latency-<run>-summary.json (per console and pooled
// figures), the pooled plot and benchmark file, and prints the table. It
// is for runs with more than one console; every member's results must
// have been written first. Only the first call writes; later calls return
// its outcome.
func (f *Fleet) WriteSummary(w io.Writer) (SummaryFiles, results.RunSummary, error) {
	f.summaryOnce.Do(func() {
		f.summaryFiles, f.summary, f.summaryErr = f.writeSummary(w)
	})
	return f.summaryFiles, f.summary, f.summaryErr
}

func (f *Fleet) writeSummary(w io.Writer) (SummaryFiles, results.RunSummary, error) {
	dir, run := f.Cfg.ResultsDir, f.Cfg.RunID
	var runs []results.ConsoleRun
	var series []report.Series
	var origin time.Time
	for _, m := range f.Members {
		if m.Measurement != nil && !m.Measurement.Result.Start.IsZero() &&
			(origin.IsZero() || m.Measurement.Result.Start.Before(origin)) {
			origin = m.Measurement.Result.Start
		}
	}
	for _, m := range f.Members {
		if m.Run == nil || m.Sidecar.RunID == "" {
			continue
		}
		cr := results.ConsoleRun{Label: m.Label, Sidecar: m.Sidecar}
		if m.Measurement != nil {
			cr.Samples = m.Measurement.Result.Values()
			if len(cr.Samples) > 0 {
				s := seriesFrom(m.Measurement, origin)
				s.Label = m.Label
				series = append(series, s)
			}
		}
		runs = append(runs, cr)
	}
	files := SummaryFiles{Summary: filepath.Join(dir, results.RunSummaryName(run))}
	sum, err := results.BuildRunSummary(run, runs)
	if err != nil {
		return files, sum, fmt.Errorf("build the run summary: %w", err)
	}
	var errs []error
	if err := results.WriteRunSummary(files.Summary, sum); err != nil {
		errs = append(errs, err)
	}
	if len(series) > 0 {
		files.Plot = filepath.Join(dir, report.PlotName(run))
		if err := report.Plot(files.Plot, fmt.Sprintf("%s, run %s, %d consoles", sum.Metric, run, len(f.Members)), series...); err != nil {
			errs = append(errs, fmt.Errorf("pooled plot: %w", err))
			files.Plot = ""
		}
		files.Bench = filepath.Join(dir, report.BenchFileName(run))
		info := report.BenchInfo{RunID: run, Metric: sum.Metric, Provider: string(f.Cfg.Provider), Misses: sum.Pooled.Misses}
		if err := report.WriteBench(files.Bench, info, report.Consoles(series...)...); err != nil {
			errs = append(errs, fmt.Errorf("pooled benchmark file: %w", err))
			files.Bench = ""
		}
	}
	if w != nil {
		if err := results.WriteRunSummaryTable(w, sum); err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(w, "files           %s", filepath.Base(files.Summary))
		for _, p := range []string{files.Plot, files.Bench} {
			if p != "" {
				fmt.Fprintf(w, ", %s", filepath.Base(p))
			}
		}
		fmt.Fprintln(w)
	}
	return files, sum, errors.Join(errs...)
}

// PerConsoleKnobs returns the member environment for SetupFleet from
// variables FAKERYLL_C<i>_<KNOB>=value: console i gets FAKERYLL_<KNOB>,
// overriding the knob every console gets. It lets a fake run make one
// console slow or crash while the others stay healthy.
func PerConsoleKnobs(environ []string) func(i int) []string {
	return func(i int) []string {
		prefix := fmt.Sprintf("FAKERYLL_C%d_", i)
		var out []string
		for _, kv := range environ {
			if rest, ok := strings.CutPrefix(kv, prefix); ok && rest != "" && !strings.HasPrefix(rest, "=") {
				out = append(out, "FAKERYLL_"+rest)
			}
		}
		return out
	}
}
