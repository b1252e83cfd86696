package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/compare"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/console"
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
	switch {
	case cfg.AB.Proxied():
		b.Console, err = console.Proxied(ctx, a.Console, cfg.AB.BProxy, copts.Logger)
	case cfg.AB.SameServer:
		b.Console, err = console.SameServer(ctx, a.Console, copts)
	default:
		b.Console, err = console.Open(ctx, b.Cfg, copts)
	}
	if err != nil {
		ab.SetupErr = fmt.Errorf("leg B: %w", err)
		return ab
	}
	b.ownsConsole = true
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
	m, err := sess.MeasureInto(ctx, sink)
	if m == nil {
		return measure.Result{}, err
	}
	*keys += len(m.Result.Presses)
	return m.Result, err
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
		cr.Files, cr.Sidecar, cr.Err = sess.WriteResults(w, l.Measurement, cr.Sidecar)
		if cr.Err != nil {
			errs = append(errs, fmt.Errorf("%s leg: %w", l.Name, cr.Err))
		}
		out.Legs[i] = cr
	}
	out.Comparison = ab.Compare()
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
// (latency-compare's statistics), and whether B adds more than
// LATENCY_AB_MAX_ADDED significantly.
func (ab *AB) Compare() results.AB {
	cfg := ab.Cfg
	out := results.AB{RunID: cfg.RunID, Block: cfg.AB.Block, MaxAddedS: cfg.AB.MaxAdded.Seconds(), Alpha: compare.DefaultAlpha, Verdict: "pass"}
	legs := [2]*results.ABLeg{&out.A, &out.B}
	var figures [2]map[measure.Metric][]float64
	for i, l := range ab.Legs {
		legs[i].RunID, legs[i].Provider = l.Cfg.RunID, string(l.Cfg.Requested)
		legs[i].Sidecar = results.SidecarName(l.Cfg.RunID)
		if l.Console != nil {
			legs[i].Console = l.Console.Describe()
		}
		legs[i].Blocks = len(l.Blocks)
		figures[i] = map[measure.Metric][]float64{}
		if l.Measurement != nil {
			for _, p := range l.Measurement.Result.Presses {
				if p.Verdict == measure.VerdictSample {
					figures[i][measure.KeypressToScreen] = append(figures[i][measure.KeypressToScreen], p.FirstDraw.Seconds())
					figures[i][measure.KeypressToRepaint] = append(figures[i][measure.KeypressToRepaint], p.Repaint.Seconds())
				}
			}
			legs[i].Samples = len(l.Measurement.Result.Samples)
		}
	}
	for _, metric := range []measure.Metric{measure.KeypressToScreen, measure.KeypressToRepaint} {
		a, b := figures[0][metric], figures[1][metric]
		m := results.ABMetric{Metric: string(metric), Confidence: compare.Confidence}
		if len(a) == 0 || len(b) == 0 {
			m.Verdict = "not compared: a leg has no samples"
			out.Verdict = "incomplete"
			out.Reasons = append(out.Reasons, fmt.Sprintf("%s: a leg has no samples", metric))
			out.Metrics = append(out.Metrics, m)
			continue
		}
		run := func(label string, v []float64) results.BenchRun {
			return results.BenchRun{Info: results.BenchInfo{RunID: cfg.RunID, Metric: string(metric)},
				Consoles: []results.BenchConsole{{Label: label, Samples: v}}}
		}
		c, err := compare.Runs(run("A", a), run("B", b), compare.DefaultAlpha)
		if err != nil {
			m.Verdict = "not compared: " + err.Error()
			out.Verdict = "incomplete"
			out.Reasons = append(out.Reasons, fmt.Sprintf("%s: %v", metric, err))
			out.Metrics = append(out.Metrics, m)
			continue
		}
		m.AMedianS, m.BMedianS = c.Old.Median, c.New.Median
		m.AMedianCIS, m.BMedianCIS = [2]float64{finite(c.Old.Lo), finite(c.Old.Hi)}, [2]float64{finite(c.New.Lo), finite(c.New.Hi)}
		m.DifferenceS = c.Difference()
		if lo, hi, ok := compare.DifferenceCI(a, b, compare.Confidence); ok {
			m.DifferenceCIS = [2]float64{lo, hi}
		}
		m.P, m.Significant = c.P, c.Significant
		added := m.DifferenceS * 1000
		switch {
		case !m.Significant:
			m.Verdict = fmt.Sprintf("no significant difference (B-A %+.1f ms, p=%.3g)", added, m.P)
		case m.DifferenceS > cfg.AB.MaxAdded.Seconds():
			m.Verdict = fmt.Sprintf("B adds %.1f ms (p=%.3g), more than LATENCY_AB_MAX_ADDED=%s", added, m.P, cfg.AB.MaxAdded)
			m.Fails = true
			out.Verdict = "fail"
			out.Reasons = append(out.Reasons, fmt.Sprintf("%s: B adds %.1f ms to the median (95%% CI %+.1f..%+.1f ms, p=%.3g), more than LATENCY_AB_MAX_ADDED=%s",
				metric, added, m.DifferenceCIS[0]*1000, m.DifferenceCIS[1]*1000, m.P, cfg.AB.MaxAdded))
		case m.DifferenceS > 0:
			m.Verdict = fmt.Sprintf("B adds %.1f ms (p=%.3g), within LATENCY_AB_MAX_ADDED=%s", added, m.P, cfg.AB.MaxAdded)
		default:
			m.Verdict = fmt.Sprintf("B is %.1f ms faster (p=%.3g)", -added, m.P)
		}
		out.Metrics = append(out.Metrics, m)
	}
	if out.Verdict == "pass" {
		for _, l := range ab.Legs {
			if l.Err != nil || ab.SetupErr != nil {
				out.Verdict = "incomplete"
				out.Reasons = append(out.Reasons, "a leg ended early")
				break
			}
		}
	}
	return out
}

func finite(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}
