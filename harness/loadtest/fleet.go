package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/interrupt"
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
	Session     *Session
	SetupErr    error

	// What Measure returned, kept for WriteResults.
	mu          sync.Mutex
	measurement *Measurement
	measureErr  error
}

// Fleet is every console of one run.
type Fleet struct {
	Cfg     *config.Config
	Members []*Member

	// teardownMember replaces a member's Session.Teardown in tests.
	teardownMember func(context.Context, *Member) error
}

// MaxTeardownParallel bounds how many consoles are torn down at once
// (stopping ryll, QEMU, deleting a server). Teardown runs at least
// LATENCY_PARALLEL at a time, and up to this many: a run of 500 consoles
// torn down 4 at a time took 107 s, longer than a stopped run may take
// (latency-run's grace) before it is killed.
const MaxTeardownParallel = 64

// PlotConsolesUpTo is the largest run whose consoles each get a plot of
// their own. A larger run has its pooled plot (every console in one
// figure); a plot per console cost 40-90 ms each, so 500 consoles spent
// 44 s writing results.
const PlotConsolesUpTo = 10

// resultWriters is how many consoles' files are written at once, at
// least.
const resultWriters = 16

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
// measurement. opts.MemberEnv, when set, adds ryll environment per member.
func SetupFleet(ctx context.Context, cfg *config.Config, opts Options) *Fleet {
	n := cfg.Consoles
	f := &Fleet{Cfg: cfg, Members: make([]*Member, n)}
	// One check for all consoles, before any is provisioned: what would
	// fail for one fails for all.
	var pf Checked
	var pfErr error
	if cfg.RyllSocket == "" { // an attached ryll needs no binary of ours
		pf, pfErr = Preflight(ctx, cfg, opts.RyllEnv...)
	}
	if pfErr == nil && cfg.RyllSocket == "" {
		opts.preflight = &pf
		if opts.Logger != nil {
			opts.Logger.Info("ryll", "binary", pf.RyllBinary, "version", pf.RyllVersion)
		}
	}
	sem := make(chan struct{}, max(cfg.Parallel, 1))
	// A refusal every console would meet (the cloud's 4xx: microversion,
	// flavor, quota, credentials) stops the consoles not yet started:
	// they need not be provisioned just to be refused.
	var refusedMu sync.Mutex
	var refused error
	var wg sync.WaitGroup
	for i := range n {
		m := &Member{Index: i, Label: fmt.Sprintf("c%d", i), StartOffset: time.Duration(i) * cfg.Measure.Cadence / time.Duration(n)}
		f.Members[i] = m
		if pfErr != nil {
			m.SetupErr = pfErr
			m.Session = &Session{Cfg: MemberConfig(cfg, i, n), Start: time.Now()}
			continue
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				m.SetupErr = interrupt.Wrap(ctx, fmt.Errorf("console %s not started: %w", m.Label, context.Cause(ctx)))
				m.Session = &Session{Cfg: MemberConfig(cfg, i, n), Start: time.Now()}
				return
			}
			defer func() { <-sem }()
			refusedMu.Lock()
			stop := refused
			refusedMu.Unlock()
			if stop != nil {
				m.SetupErr = fmt.Errorf("console %s not started: %w", m.Label, stop)
				m.Session = &Session{Cfg: MemberConfig(cfg, i, n), Start: time.Now()}
				return
			}
			mo := opts
			if mo.Logger != nil && n > 1 {
				mo.Logger = mo.Logger.With("console", m.Label)
			}
			if opts.MemberEnv != nil {
				mo.RyllEnv = append(append([]string(nil), opts.RyllEnv...), opts.MemberEnv(i)...)
			}
			m.Session, m.SetupErr = Setup(ctx, MemberConfig(cfg, i, n), mo)
			// A setup the run's interrupt cut short says so first.
			m.SetupErr = interrupt.Wrap(ctx, m.SetupErr)
			if m.SetupErr != nil && cloud.IsDeterministic(m.SetupErr) {
				refusedMu.Lock()
				if refused == nil {
					refused = fmt.Errorf("console %s was refused in a way every console would be: %w", m.Label, m.SetupErr)
				}
				refusedMu.Unlock()
			}
		})
	}
	wg.Wait()
	return f
}

// NotStarted is the fleet of a run stopped before any console was set
// up (an interrupt while the stand-ins were built, say): each member
// holds err, so that WriteResults still leaves a sidecar per console
// saying why nothing was measured.
func NotStarted(cfg *config.Config, err error) *Fleet {
	n := max(cfg.Consoles, 1)
	f := &Fleet{Cfg: cfg, Members: make([]*Member, n)}
	for i := range n {
		f.Members[i] = &Member{Index: i, Label: fmt.Sprintf("c%d", i), SetupErr: err,
			Session: &Session{Cfg: MemberConfig(cfg, i, n), Start: time.Now()}}
	}
	return f
}

// Teardown tears every member down, MaxTeardownParallel at a time (at
// least cfg.Parallel), and joins their errors. Once ctx is done, the
// members still waiting for a turn are torn down at once: each step of a
// teardown is bounded by ctx, and nothing may be left running. Safe to
// call more than once, and on a nil Fleet.
func (f *Fleet) Teardown(ctx context.Context) error {
	if f == nil {
		return nil
	}
	teardown := f.teardownMember
	if teardown == nil {
		teardown = func(ctx context.Context, m *Member) error { return m.Session.Teardown(ctx) }
	}
	sem := make(chan struct{}, TeardownParallel(f.Cfg.Parallel, len(f.Members)))
	errs := make([]error, len(f.Members))
	var wg sync.WaitGroup
	for i, m := range f.Members {
		if m == nil || m.Session == nil {
			continue
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
			}
			if err := teardown(ctx, m); err != nil {
				errs[i] = fmt.Errorf("console %s: %w", m.Label, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TeardownParallel is how many of n consoles are torn down at once.
func TeardownParallel(parallel, n int) int {
	return max(parallel, min(n, MaxTeardownParallel), 1)
}

// Measure waits for the member's start offset, then measures (see
// Session.Measure). The outcome is kept for WriteResults.
func (m *Member) Measure(ctx context.Context) (*Measurement, error) {
	mm, err := m.measure(ctx)
	m.mu.Lock()
	m.measurement, m.measureErr = mm, err
	m.mu.Unlock()
	return mm, err
}

func (m *Member) measure(ctx context.Context) (*Measurement, error) {
	if m.SetupErr != nil {
		return nil, m.SetupErr
	}
	if m.Session.HandshakeErr != nil {
		return nil, m.Session.HandshakeErr
	}
	if m.StartOffset > 0 {
		t := time.NewTimer(m.StartOffset)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("console %s: interrupted before its first key press: %w", m.Label, context.Cause(ctx))
		}
	}
	return m.Session.Measure(ctx)
}

// MeasureAll measures every member at once (each after its start
// offset) and returns when all have finished. The consoles of a run are
// measured concurrently whatever go test's -parallel says: N consoles
// take as long as one, not N/parallel times as long.
func (f *Fleet) MeasureAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range f.Members {
		wg.Go(func() { _, _ = m.Measure(ctx) })
	}
	wg.Wait()
}

// Measured is what the member's Measure returned (nil, nil before it ran).
func (m *Member) Measured() (*Measurement, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.measurement, m.measureErr
}

// Outcome is what a member's run came to: its measurement (nil when it
// never measured) and every error that ended it early, in order, each
// once.
func (m *Member) Outcome() (*Measurement, []error) {
	m.mu.Lock()
	mm, merr := m.measurement, m.measureErr
	m.mu.Unlock()
	var errs []error
	seen := map[string]bool{}
	for _, err := range []error{m.SetupErr, m.handshakeErr(), merr} {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	return mm, errs
}

func (m *Member) handshakeErr() error {
	if m.Session == nil || m.SetupErr != nil {
		return nil
	}
	return m.Session.HandshakeErr
}

// ConsoleResults is what WriteResults wrote for one member.
type ConsoleResults struct {
	Label   string
	Sidecar results.Sidecar
	Files   Files
	// Measurement is nil when the member never measured.
	Measurement *Measurement
	// Err joins every file that could not be written.
	Err error
}

// Written is everything WriteResults wrote.
type Written struct {
	Consoles []ConsoleResults
	// Summary is set for runs of more than one console.
	Summary      *SummaryFiles
	RunSummary   results.RunSummary
	SummaryError error
	// PrintError is why the summary could not be printed in full (the
	// files hold it all): not a failure of the run.
	PrintError error
}

// SummaryWriter passes a printed summary on to w until w fails, then
// drops the rest and reports success: a reader of the terminal output
// that went away (`| head -1`, a cancelled runner's log) must not fail a
// run whose files were all written. Err says what failed. Safe for
// concurrent use.
type SummaryWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// NewSummaryWriter wraps w; a w that is a SummaryWriter already is
// returned as it is.
func NewSummaryWriter(w io.Writer) *SummaryWriter {
	if sw, ok := w.(*SummaryWriter); ok {
		return sw
	}
	return &SummaryWriter{w: w}
}

func (s *SummaryWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		if _, err := s.w.Write(p); err != nil {
			s.err = fmt.Errorf("print the summary: %w", err)
		}
	}
	return len(p), nil
}

// Err is the first write error, nil when everything was printed.
func (s *SummaryWriter) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// WriteResults writes every member's sidecar, plot and benchmark file
// (their CSVs were written sample by sample), prints each summary and,
// with more than one console, writes the run summary, the pooled plot
// and benchmark file. It is the run's one exit path for results: call it
// once, after measuring (or failing to), whatever happened. It writes as
// much as it can and returns what it wrote with every failure joined.
//
// The summary printed to w is for a person watching, not a result: a w
// that fails (stdout closed, as by `| head -1`) loses the rest of the
// summary, never the run; Written.PrintError says so.
func (f *Fleet) WriteResults(w io.Writer) (Written, error) {
	var out Written
	if f == nil {
		return out, nil
	}
	var sw *SummaryWriter
	if w != nil {
		sw = NewSummaryWriter(w)
		w = sw
	}
	var errs []error
	// Each console's files are written by one of several workers (more
	// than the cores: each file is synced to disk, so the writing waits
	// on the disk more than it computes); what each prints is kept and
	// printed in console order.
	plots := len(f.Members) <= PlotConsolesUpTo
	type written struct {
		ok    bool
		cr    ConsoleResults
		print bytes.Buffer
	}
	each := make([]written, len(f.Members))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(max(runtime.GOMAXPROCS(0), resultWriters), len(f.Members)) {
		wg.Go(func() {
			for i := range work {
				m := f.Members[i]
				mm, runErrs := m.Outcome()
				cr := ConsoleResults{Label: m.Label, Measurement: mm}
				cr.Sidecar = m.Session.Sidecar(mm, time.Now(), runErrs...)
				var pw io.Writer
				if w != nil {
					pw = &each[i].print
				}
				cr.Files, cr.Sidecar, cr.Err = m.Session.writeResults(pw, mm, cr.Sidecar, plots)
				each[i].ok, each[i].cr = true, cr
			}
		})
	}
	for i, m := range f.Members {
		if m == nil || m.Session == nil || m.Session.Cfg == nil {
			continue
		}
		work <- i
	}
	close(work)
	wg.Wait()
	for i := range each {
		if !each[i].ok {
			continue
		}
		cr := each[i].cr
		if w != nil {
			_, _ = each[i].print.WriteTo(w)
		}
		if cr.Err != nil {
			errs = append(errs, fmt.Errorf("console %s: %w", cr.Label, cr.Err))
		}
		out.Consoles = append(out.Consoles, cr)
	}
	if len(f.Members) > 1 {
		files, sum, err := f.writeSummary(w, out.Consoles)
		out.Summary, out.RunSummary, out.SummaryError = &files, sum, err
		if err != nil {
			errs = append(errs, fmt.Errorf("run summary: %w", err))
		}
	}
	if sw != nil {
		out.PrintError = sw.Err()
	}
	return out, errors.Join(errs...)
}

// SummaryFiles names what the run summary wrote.
type SummaryFiles struct {
	Summary, Plot, Bench string
}

func (f *Fleet) writeSummary(w io.Writer, consoles []ConsoleResults) (SummaryFiles, results.RunSummary, error) {
	dir, run := f.Cfg.ResultsDir, f.Cfg.RunID
	var runs []results.ConsoleRun
	var series []results.Series
	var origin time.Time
	for _, c := range consoles {
		if c.Measurement != nil && !c.Measurement.Result.Start.IsZero() &&
			(origin.IsZero() || c.Measurement.Result.Start.Before(origin)) {
			origin = c.Measurement.Result.Start
		}
	}
	for _, c := range consoles {
		cr := results.ConsoleRun{Label: c.Label, Sidecar: c.Sidecar}
		if c.Measurement != nil {
			cr.Samples = c.Measurement.Result.Values()
			if len(cr.Samples) > 0 {
				s := seriesFrom(c.Measurement, origin)
				s.Label = c.Label
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
		lane := ""
		for _, mb := range f.Members {
			if mb.Session != nil {
				lane = mb.Session.Lane.Name()
				break
			}
		}
		title := results.TitleFor(lane, fmt.Sprintf("%s, run %s, %d consoles", sum.Metric, run, len(f.Members)))
		info := results.BenchInfo{RunID: run, Metric: sum.Metric, Provider: string(f.Cfg.Requested), Misses: sum.Pooled.Misses}
		if lane != "" {
			info.Extra = map[string]string{results.ConfigLane: lane}
		}
		var err error
		files.Plot, files.Bench, err = results.WritePlotAndBench(filepath.Join(dir, results.PlotName(run)),
			filepath.Join(dir, results.BenchFileName(run)), title, info, series...)
		if err != nil {
			errs = append(errs, fmt.Errorf("pooled: %w", err))
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
