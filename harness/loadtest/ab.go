package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/compare"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/console"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/ryll"
)

// An A/B run measures one guest through two console sources in one run:
// A (say direct to the hypervisor) and B (the same guest through
// Kerbside, or through a proxy of our own). A SPICE server serves one
// client at a time, so the legs take turns in blocks, ABAB..., each block
// with its own ryll, until each leg has its samples. Alternating blocks
// spreads drift in time, host load and the guest over both legs alike,
// which two runs at different times cannot do.

// Leg is one side of an A/B run.
type Leg struct {
	Name    string // "A" or "B"
	Cfg     *config.Config
	Console *console.Console
	// Blocks are the measurements taken, in order.
	Blocks []measure.Result
	// Measurement is every block merged (set by Run).
	Measurement *Measurement
	// Err is why the leg ended early.
	Err error
	// Hosts are what the host did during each block, in order (a block
	// whose ryll never became ready has none).
	Hosts []results.HostBlock

	sink        *Sink
	last        *Session // the latest block's session, for its records
	ownsConsole bool
}

// AB is an A/B run.
type AB struct {
	Cfg  *config.Config
	Legs [2]*Leg
	// SetupErr is why the run could not start (nothing was measured).
	SetupErr error

	pf     Checked
	opts   Options
	logger *slog.Logger
}

// SetupAB checks what it can, opens A's console and B's (B through our
// own SPICE proxy when LATENCY_B_PROXY says so) and creates both legs'
// files. It returns the AB even on error, for Teardown.
func SetupAB(ctx context.Context, cfg *config.Config, opts Options) *AB {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ab := &AB{Cfg: cfg, opts: opts, logger: logger}
	for i, name := range []string{"A", "B"} {
		ab.Legs[i] = &Leg{Name: name, Cfg: cfg.Leg(i == 1)}
	}
	pf, err := Preflight(ctx, cfg, opts.RyllEnv...)
	if err != nil {
		ab.SetupErr = err
		return ab
	}
	ab.pf = pf
	logger.Info("ryll", "binary", pf.RyllBinary, "version", pf.RyllVersion)
	copts := opts.Console
	copts.Logger = logger.With("leg", "A")
	copts.Getenv = opts.Getenv
	a, b := ab.Legs[0], ab.Legs[1]
	if a.Console, err = console.Open(ctx, a.Cfg, copts); err != nil {
		ab.SetupErr = fmt.Errorf("leg A: %w", err)
		return ab
	}
	a.ownsConsole = true
	a.Console.Secrets = append(a.Console.Secrets, opts.Secrets...)
	copts.Logger = logger.With("leg", "B")
	opened := false // console.Open puts the leg's link in itself
	switch {
	case cfg.AB.Proxied():
		b.Console, err = console.Proxied(ctx, a.Console, cfg.AB.BProxy, copts.Logger)
	case cfg.AB.SameServer:
		b.Console, err = console.SameServer(ctx, a.Console, copts)
	case cfg.AB.SameGuest:
		b.Console, err = console.SameGuest(a.Console, copts.Logger)
	default:
		b.Console, err = console.Open(ctx, b.Cfg, copts)
		opened = true
	}
	if err != nil {
		ab.SetupErr = fmt.Errorf("leg B: %w", err)
		return ab
	}
	b.ownsConsole = true
	if !opened && b.Cfg.Link != nil {
		// In front of whatever B's client dials: the proxy, or the guest.
		if err := b.Console.PutLink(ctx, *b.Cfg.Link); err != nil {
			ab.SetupErr = fmt.Errorf("leg B: %w", err)
			return ab
		}
	}
	b.Console.Secrets = append(b.Console.Secrets, opts.Secrets...)
	for _, l := range ab.Legs {
		if l.sink, err = newSink(l.Cfg); err != nil {
			ab.SetupErr = fmt.Errorf("%s leg: %w", l.Name, err)
			return ab
		}
	}
	logger.Info("A/B", "A", a.Console.Describe(), "B", b.Console.Describe(), "block", cfg.AB.Block, "samples_per_leg", cfg.Measure.Samples)
	return ab
}

// newSink creates a leg's CSV and presses file.
func newSink(cfg *config.Config) (*Sink, error) {
	csv, err := results.CreateCSV(cfg.ResultsDir, cfg.RunID)
	if err != nil {
		return nil, fmt.Errorf("create the CSV: %w", err)
	}
	p, err := results.CreatePresses(cfg.ResultsDir, cfg.RunID)
	if err != nil {
		_ = csv.Close()
		return nil, fmt.Errorf("create the presses CSV: %w", err)
	}
	return &Sink{CSV: csv, Presses: p}, nil
}

// Run takes blocks, A then B, until each leg has LATENCY_SAMPLES samples,
// a leg fails, ctx ends or LATENCY_MAX_DURATION passes for the whole
// run. It returns the first error that ended it.
func (ab *AB) Run(ctx context.Context) error {
	if ab.SetupErr != nil {
		return ab.SetupErr
	}
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, ab.Cfg.Measure.MaxDuration,
		fmt.Errorf("the A/B reached LATENCY_MAX_DURATION=%s short of samples", ab.Cfg.Measure.MaxDuration))
	defer cancel()
	keys := 0 // key presses the guest received, both legs: one guest
	var runErr error
	for turn := 0; runErr == nil && !ab.done(); turn++ {
		l := ab.Legs[turn%2]
		got := samplesOf(l)
		if got >= ab.Cfg.Measure.Samples {
			continue
		}
		if err := ctx.Err(); err != nil {
			runErr = context.Cause(ctx)
			break
		}
		need := min(ab.Cfg.AB.Block, ab.Cfg.Measure.Samples-got)
		res, err := ab.block(ctx, l, need, &keys)
		l.Blocks = append(l.Blocks, res)
		if err != nil {
			l.Err = fmt.Errorf("%s leg, block %d: %w", l.Name, len(l.Blocks), err)
			runErr = l.Err
		}
	}
	ends := ab.recordEnds(parent, ctx)
	// One guest behind both legs: its counter must hold every key sent.
	seen, seenErr, counted := 0, error(nil), false
	if a := ab.Legs[0]; a.Console.CountsKeys() {
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), keyTimeout)
		seen, seenErr = a.Console.KeysSeen(kctx)
		kcancel()
		counted = seenErr == nil
		switch {
		case seenErr != nil:
			runErr = errors.Join(runErr, seenErr)
		case seen != keys:
			runErr = errors.Join(runErr, fmt.Errorf("the guest counted %d key presses, both legs sent %d: keys were lost or doubled on the way", seen, keys))
		}
	}
	for i, l := range ab.Legs {
		if err := l.sink.Close(); err != nil {
			l.Err = errors.Join(l.Err, err)
			runErr = errors.Join(runErr, err)
		}
		m := &Measurement{Result: measure.Merge(l.Blocks...), CSVPath: l.sink.CSV.Path(), PressesPath: l.sink.Presses.Path()}
		for _, b := range l.Blocks[min(1, len(l.Blocks)):] {
			m.BlockStarts = append(m.BlockStarts, b.Start) // VERDICT: the leg's plot breaks its line here
		}
		m.KeysCounted, m.KeysSent, m.KeysSeen = counted, keys, seen
		m.Result.StopReason = legEnd(m.Result.StopReason, ends[i])
		l.Measurement = m
	}
	return runErr
}

// recordEnds says how each leg that stopped short of its samples ended:
// a signal (interrupted), the A/B's LATENCY_MAX_DURATION (max_duration),
// or a failure (error; for a leg without one of its own, the other
// leg's). A leg without an error of its own gets one saying so: every
// block of it reached its own share, so its merged blocks alone would
// say samples_reached. parent is Run's context, ctx the one bounded by
// the maximum duration.
func (ab *AB) recordEnds(parent, ctx context.Context) [2]measure.StopReason {
	var ends [2]measure.StopReason
	for i, l := range ab.Legs {
		got := samplesOf(l)
		if got >= ab.Cfg.Measure.Samples {
			continue
		}
		short := fmt.Sprintf("%s leg ended after %d of %d samples", l.Name, got, ab.Cfg.Measure.Samples)
		other := ab.Legs[1-i]
		var err error
		switch {
		case parent.Err() != nil:
			ends[i], err = measure.StopInterrupted, interrupted(parent, "the A/B: "+short)
		case ctx.Err() != nil:
			ends[i], err = measure.StopMaxDuration, fmt.Errorf("%s: %w", short, context.Cause(ctx))
		case other.Err != nil:
			ends[i], err = measure.StopError, fmt.Errorf("%s, because the %s leg failed: %w", short, other.Name, other.Err)
		default:
			ends[i], err = measure.StopError, errors.New(short)
		}
		if l.Err == nil {
			l.Err = err
		}
	}
	return ends
}

// legEnd is the stop reason a leg's sidecar records: its blocks' own
// failure (a stall, no draws), unless the leg ended short for another
// reason (recordEnds) that they do not show; a signal always reads as
// interrupted.
func legEnd(merged, end measure.StopReason) measure.StopReason {
	if end == "" || (merged != "" && merged.Failed() && end != measure.StopInterrupted) {
		return merged
	}
	return end
}

func (ab *AB) done() bool {
	for _, l := range ab.Legs {
		if samplesOf(l) < ab.Cfg.Measure.Samples {
			return false
		}
	}
	return true
}

func samplesOf(l *Leg) int {
	n := 0
	for _, b := range l.Blocks {
		n += len(b.Samples)
	}
	return n
}

// block starts ryll on the leg's console, takes need samples and stops
// ryll again.
func (ab *AB) block(ctx context.Context, l *Leg, need int, keys *int) (measure.Result, error) {
	opts := ab.opts
	opts.Logger = ab.logger.With("leg", l.Name, "block", len(l.Blocks)+1)
	opts.AppendRyllLog = len(l.Blocks) > 0
	if opts.LegEnv != nil {
		opts.RyllEnv = append(append([]string(nil), opts.RyllEnv...), opts.LegEnv(l.Name)...)
	}
	if len(l.Blocks) > 0 {
		// A one-time console (Kerbside's) is asked for again per block.
		copts := ab.opts.Console
		copts.Logger = opts.Logger
		if err := l.Console.Refresh(ctx, copts); err != nil {
			return measure.Result{}, err
		}
	}
	sess, err := ab.attach(ctx, l, opts)
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if terr := sess.Teardown(tctx); terr != nil {
			ab.logger.Warn("stop ryll after a block", "leg", l.Name, "err", terr)
		}
	}()
	l.last = sess
	if err != nil {
		return measure.Result{}, err
	}
	presses := 0
	for _, b := range l.Blocks {
		presses += len(b.Presses)
	}
	sink := l.sink
	sink.Samples, sink.PressBase, sink.KeysBase = need, presses, *keys
	// VERDICT: what the host does to the block is measured alongside it.
	hs := host.Start(ctx, host.Options{Processes: ab.processes(sess)})
	m, err := sess.MeasureInto(ctx, sink)
	hb := hostBlock(len(l.Blocks)+1, hs.Stop(), m, presses)
	l.Hosts = append(l.Hosts, hb)
	if len(hb.BusyReasons) > 0 {
		opts.Logger.Warn("the host is too busy to measure to a few milliseconds: this A/B cannot pass",
			"why", strings.Join(hb.BusyReasons, "; "), "late_samples", hb.LateSamples)
	}
	if m == nil {
		return measure.Result{}, err
	}
	*keys += len(m.Result.Presses)
	return m.Result, onABusyHost(err, m.Result.StopReason, hb.BusyReasons)
}

// processes are the processes whose CPU time a block's host figures
// give besides the harness's own: the block's ryll and the one QEMU
// behind both legs (B's console, through a proxy, has none of its own).
func (ab *AB) processes(sess *Session) []host.Process {
	var ps []host.Process
	if sess != nil && sess.Ryll != nil {
		ps = append(ps, host.Process{Role: "ryll", Pid: sess.Ryll.Pid()})
	}
	for _, l := range ab.Legs {
		if l.Console != nil && l.Console.Pid() > 0 {
			ps = append(ps, host.Process{Role: "qemu", Pid: l.Console.Pid()})
			break
		}
	}
	return ps
}

// hostProcesses are the processes whose CPU time a run's host figures
// give besides the harness's own: its ryll and its console's QEMU.
func (r *Session) hostProcesses() []host.Process {
	var ps []host.Process
	if r.Ryll != nil {
		ps = append(ps, host.Process{Role: "ryll", Pid: r.Ryll.Pid()})
	}
	if r.Console != nil && r.Console.Pid() > 0 {
		ps = append(ps, host.Process{Role: "qemu", Pid: r.Console.Pid()})
	}
	return ps
}

// hostBlock records a block's host figures and marks its samples taken
// while the harness was late: a tick more than host.MaxLagP99 late
// between the key press and the end of its repaint. Press numbers count
// across the leg (base presses came before the block).
func hostBlock(block int, f host.Figures, m *Measurement, base int) results.HostBlock {
	var late []int
	samples := 0
	var drawLag float64
	if m != nil {
		drawLag = m.Result.MaxDrawLag.Seconds()
		for _, p := range m.Result.Presses {
			if p.Verdict != measure.VerdictSample {
				continue
			}
			samples++
			if f.LateDuring(p.SentAt, p.SentAt.Add(p.Repaint)) {
				late = append(late, base+p.Number)
			}
		}
	}
	return results.NewHostBlock(block, f, samples, late, drawLag)
}

// attachTries bounds the starts of ryll for one block. A SPICE server
// serves one client at a time and takes a moment to let the previous
// block's client go, so a link right after it can be refused once.
const attachTries = 3

// attach starts ryll for a block, trying again (bounded) when ryll's
// SPICE session failed before its control socket was ready.
func (ab *AB) attach(ctx context.Context, l *Leg, opts Options) (*Session, error) {
	var sess *Session
	var err error
	for try := 1; ; try++ {
		sess, err = Attach(ctx, l.Cfg, l.Console, ab.pf, opts)
		var ee *ryll.ExitError
		if err == nil || try == attachTries || !errors.As(err, &ee) || ctx.Err() != nil {
			return sess, err
		}
		ab.logger.Warn("ryll's SPICE session failed at the start of a block; trying again", "leg", l.Name, "try", try, "err", err)
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		_ = sess.Teardown(tctx)
		cancel()
		opts.AppendRyllLog = true
		select {
		case <-time.After(time.Duration(try) * 500 * time.Millisecond):
		case <-ctx.Done():
			return sess, context.Cause(ctx)
		}
	}
}

// Teardown closes both legs' consoles (B's proxy first). Safe to call
// more than once.
func (ab *AB) Teardown(ctx context.Context) error {
	if ab == nil {
		return nil
	}
	var errs []error
	for i := len(ab.Legs) - 1; i >= 0; i-- {
		l := ab.Legs[i]
		if l == nil {
			continue
		}
		if l.sink != nil {
			_ = l.sink.Close()
		}
		if l.Console != nil && l.ownsConsole {
			if err := l.Console.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s leg: %w", l.Name, err))
			}
			l.ownsConsole = false
		}
	}
	return errors.Join(errs...)
}

// ABWritten is what WriteResults wrote.
type ABWritten struct {
	Legs       [2]ConsoleResults
	Comparison results.AB
	Path       string
	// Plot is latency-<run>-ab.png ("" when not written).
	Plot string
}

// WriteResults writes each leg's sidecar, plot and benchmark file, and
// latency-<run>-ab.json with the comparison, and prints both summaries
// and the comparison table. Like Fleet.WriteResults it is the run's one
// exit path for results.
func (ab *AB) WriteResults(w io.Writer) (ABWritten, error) {
	var out ABWritten
	if ab == nil {
		return out, nil
	}
	var errs []error
	// VERDICT: judged first, so that each leg's sidecar carries it.
	out.Comparison = ab.Compare()
	for i, l := range ab.Legs {
		sess := l.last
		if sess == nil {
			sess = &Session{Cfg: l.Cfg, Console: l.Console, Start: time.Now(), logger: ab.logger,
				RyllBinary: ab.pf.RyllBinary, RyllVersion: ab.pf.RyllVersion}
		}
		var runErrs []error
		for _, err := range []error{ab.SetupErr, l.Err} {
			if err != nil {
				runErrs = append(runErrs, err)
			}
		}
		cr := ConsoleResults{Label: l.Name, Measurement: l.Measurement}
		cr.Sidecar = sess.Sidecar(l.Measurement, time.Now(), runErrs...)
		cr.Sidecar.Host = results.NewHostRecord(l.Hosts...) // VERDICT: host figures per leg and block
		cr.Sidecar.ABVerdict = out.Comparison.Verdict       // VERDICT: the A/B's verdict
		cr.Files, cr.Sidecar, cr.Err = sess.WriteResults(w, l.Measurement, cr.Sidecar)
		if cr.Err != nil {
			errs = append(errs, fmt.Errorf("%s leg: %w", l.Name, cr.Err))
		}
		out.Legs[i] = cr
	}
	// VERDICT: the picture of the comparison, when both legs have samples.
	figs := ab.figures()
	if len(figs[0]) > 0 && len(figs[1]) > 0 {
		plot := filepath.Join(ab.Cfg.ResultsDir, results.ABPlotName(ab.Cfg.RunID))
		if err := results.WriteABPlot(plot, out.Comparison, figs[0], figs[1]); err != nil {
			errs = append(errs, err)
		} else {
			out.Comparison.Plot = filepath.Base(plot)
			out.Plot = plot
		}
	}
	out.Path = filepath.Join(ab.Cfg.ResultsDir, results.ABName(ab.Cfg.RunID))
	if err := results.WriteAB(out.Path, out.Comparison); err != nil {
		errs = append(errs, err)
		out.Path = ""
	}
	if w != nil {
		if err := results.WriteABTable(w, out.Comparison); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// Compare judges B against A for both keypress figures: the medians,
// the difference with its confidence interval, the Mann-Whitney p-value
// (latency-compare's statistics) and, for each figure, whether the
// numbers prove B adds less than LATENCY_AB_MAX_ADDED (pass: the upper
// end of the interval lies below it), prove it adds more (fail: the
// difference is above it and significant) or prove neither
// (inconclusive). A run on a host too busy to measure to a few
// milliseconds (host.Figures.Judge) cannot pass: it is inconclusive,
// naming the host.
func (ab *AB) Compare() results.AB {
	cfg := ab.Cfg
	threshold := cfg.AB.MaxAdded.Seconds()
	out := results.AB{RunID: cfg.RunID, Lane: ab.opts.Lane.orDefault().Name(), Block: cfg.AB.Block, MaxAddedS: threshold, Alpha: compare.DefaultAlpha, Verdict: results.ABPass}
	legs := [2]*results.ABLeg{&out.A, &out.B}
	for i, l := range ab.Legs {
		legs[i].RunID, legs[i].Provider = l.Cfg.RunID, string(l.Cfg.Requested)
		legs[i].Sidecar = results.SidecarName(l.Cfg.RunID)
		if l.Console != nil {
			legs[i].Console = l.Console.Describe()
			legs[i].Link = l.Console.LinkStats()
		}
		legs[i].Blocks = len(l.Blocks)
		// VERDICT: the host figures, per leg and per block, and whether
		// the host was too busy for a pass.
		legs[i].Host = results.NewHostRecord(l.Hosts...)
		if h := legs[i].Host; h != nil {
			for _, why := range h.BusyReasons {
				out.HostBusy = append(out.HostBusy, fmt.Sprintf("leg %s: %s", l.Name, why))
			}
		}
		if l.Measurement != nil {
			legs[i].Samples = len(l.Measurement.Result.Samples)
		}
	}
	figures := ab.figures()
	inconclusive, fails := false, 0
	for _, metric := range []measure.Metric{measure.KeypressToScreen, measure.KeypressToRepaint} {
		a, b := figures[0][string(metric)], figures[1][string(metric)]
		m := results.ABMetric{Metric: string(metric), Confidence: compare.Confidence}
		if len(a) < 2 || len(b) < 2 {
			m.Verdict = "not compared: a leg has fewer than 2 samples"
			out.Verdict = results.ABIncomplete
			out.Reasons = append(out.Reasons, fmt.Sprintf("%s: a leg has fewer than 2 samples (A %d, B %d)", metric, len(a), len(b)))
			out.Metrics = append(out.Metrics, m)
			continue
		}
		run := func(label string, v []float64) results.BenchRun {
			return results.BenchRun{Info: results.BenchInfo{RunID: cfg.RunID, Metric: string(metric)},
				Consoles: []results.BenchConsole{{Label: label, Samples: v}}}
		}
		c, err := compare.Runs(run("A", a), run("B", b), compare.DefaultAlpha)
		var e compare.Equivalence
		if err == nil {
			e, err = compare.Equivalent(a, b, threshold, compare.DefaultAlpha)
		}
		if err != nil {
			m.Verdict = "not compared: " + err.Error()
			out.Verdict = results.ABIncomplete
			out.Reasons = append(out.Reasons, fmt.Sprintf("%s: %v", metric, err))
			out.Metrics = append(out.Metrics, m)
			continue
		}
		m.AMedianS, m.BMedianS = c.Old.Median, c.New.Median
		m.AMedianCIS, m.BMedianCIS = [2]float64{finite(c.Old.Lo), finite(c.Old.Hi)}, [2]float64{finite(c.New.Lo), finite(c.New.Hi)}
		m.DifferenceS = e.Difference
		m.DifferenceCIS = [2]float64{e.Lo, e.Hi}
		m.P, m.Significant = e.P, e.Significant
		m.Outcome = string(e.Outcome)
		m.Verdict = e.Explain()
		switch e.Outcome {
		case compare.Fail:
			m.Fails = true
			out.Verdict = results.ABFail
			// A failure is the first thing a reader is told.
			out.Reasons = slices.Insert(out.Reasons, fails, fmt.Sprintf("%s: B adds %.1f ms to the median (95%% CI %+.1f..%+.1f ms, p=%.3g), more than LATENCY_AB_MAX_ADDED=%s",
				metric, 1000*e.Difference, 1000*e.Lo, 1000*e.Hi, e.P, cfg.AB.MaxAdded))
			fails++
		case compare.Inconclusive:
			inconclusive = true
			m.SamplesNeeded, m.Widened = e.SamplesNeeded, e.Widened()
			out.Reasons = append(out.Reasons, fmt.Sprintf("%s: %s (LATENCY_AB_MAX_ADDED=%s, LATENCY_SAMPLES=%d)",
				metric, e.Explain(), cfg.AB.MaxAdded, cfg.Measure.Samples))
		}
		out.Metrics = append(out.Metrics, m)
	}
	if out.Verdict == results.ABPass && inconclusive {
		out.Verdict = results.ABInconclusive
		out.Reasons = append(out.Reasons, "host noise: "+hostNoise(out.A, out.B))
	}
	if (out.Verdict == results.ABPass || out.Verdict == results.ABInconclusive) && len(out.HostBusy) > 0 {
		out.Verdict = results.ABInconclusive
		out.Reasons = append(out.Reasons, fmt.Sprintf("the host was too busy to measure to a few milliseconds, so this run cannot pass (%s); run it again on a quieter host",
			strings.Join(out.HostBusy, "; ")))
	}
	if out.Verdict == results.ABPass || out.Verdict == results.ABInconclusive {
		for _, l := range ab.Legs {
			if l.Err != nil || ab.SetupErr != nil {
				out.Verdict = results.ABIncomplete
				out.Reasons = append(out.Reasons, "a leg ended early")
				break
			}
		}
	}
	return out
}

// figures are each leg's samples of both keypress figures, in seconds,
// keyed by metric name.
func (ab *AB) figures() [2]map[string][]float64 {
	var out [2]map[string][]float64
	for i, l := range ab.Legs {
		out[i] = map[string][]float64{}
		if l.Measurement == nil {
			continue
		}
		for _, p := range l.Measurement.Result.Presses {
			if p.Verdict == measure.VerdictSample {
				out[i][string(measure.KeypressToScreen)] = append(out[i][string(measure.KeypressToScreen)], p.FirstDraw.Seconds())
				out[i][string(measure.KeypressToRepaint)] = append(out[i][string(measure.KeypressToRepaint)], p.Repaint.Seconds())
			}
		}
	}
	return out
}

// hostNoise says in a few words how much the host disturbed each leg.
func hostNoise(legs ...results.ABLeg) string {
	var parts []string
	for i, l := range legs {
		name := string(rune('A' + i))
		h := l.Host
		if h == nil {
			parts = append(parts, "leg "+name+" not measured")
			continue
		}
		parts = append(parts, fmt.Sprintf("leg %s timer lag p99 %.1f ms (max %.1f), %.1f runnable on %d cores (load up to %.1f), %d of %d samples taken while the harness was late",
			name, 1000*h.Lag.P99S, 1000*h.Lag.MaxS, h.RunnableMean, h.Cores, h.Load1Max, h.LateSamples, h.Samples))
	}
	return strings.Join(parts, "; ")
}

func finite(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}
