package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// keyTimeout bounds one send_key: a control socket that stops answering
// ends the run with a clear error instead of a stuck cadence.
const keyTimeout = 5 * time.Second

// maxControlLine bounds one line from ryll: 1 MiB. The longest line the
// loadtest asks for is a status answer (a few hundred bytes a surface);
// it never asks for a screenshot, the only verb whose answer is megabytes.
// A longer line is no answer and no event of ours: the client discards
// and counts it (it counts against maxUndecodableShare) instead of
// holding up to 64 MiB, and a call waiting meanwhile names it.
const maxControlLine = 1 << 20

// exitGrace is how long a lost connection waits to see whether ryll is
// exiting, so that the error can say so.
const exitGrace = 2 * time.Second

// Measurement is what Measure found.
type Measurement struct {
	Result  measure.Result
	CSVPath string
	// PressesPath is latency-<run>-presses.csv (keypress metrics only).
	PressesPath string
	// KeysSent and KeysSeen are the key presses sent and those the guest
	// itself counted (consoles that count keys: the qemu provider).
	KeysSent, KeysSeen int
	// KeysCounted says the guest's counter was read.
	KeysCounted bool
	// InitialDraws are the draws of the console's first paint after ryll
	// connected, waited out before the first press (not background).
	InitialDraws int
	// LocalDropped counts events the control client itself had to drop
	// because the measurement fell behind (never expected; reported).
	LocalDropped uint64
	// Malformed counts lines from ryll that were not protocol messages.
	Malformed uint64
	// Host is what the host did during the measurement (Measure; an A/B
	// leg keeps one per block instead).
	Host *results.HostBlock
	// BlockStarts are when an A/B leg's blocks after the first began:
	// its plot does not join samples across them (the other leg ran in
	// between).
	BlockStarts []time.Time
}

// Measure subscribes to the metric's events, drives the key cadence (for
// the keypress metric) and collects samples until the target count, the
// maximum duration, cancellation of ctx (SIGINT, SIGTERM), ryll exiting,
// or the control connection ending. Each sample is written to the CSV the
// moment it is taken. As measure.Run does, it returns what was collected
// (nil only when nothing could start) and, separately, why the run ended
// early (nil when it reached its sample target or its maximum duration).
func (r *Session) Measure(ctx context.Context) (*Measurement, error) {
	csv, err := results.CreateCSV(r.Cfg.ResultsDir, r.Cfg.RunID)
	if err != nil {
		return nil, fmt.Errorf("create the CSV: %w", err)
	}
	sink := &Sink{CSV: csv}
	if r.Cfg.Measure.Metric.Keypress() {
		if sink.Presses, err = results.CreatePresses(r.Cfg.ResultsDir, r.Cfg.RunID); err != nil {
			_ = csv.Close()
			return nil, fmt.Errorf("create the presses CSV: %w", err)
		}
	}
	hs := host.Start(ctx, host.Options{Processes: r.hostProcesses()})
	m, runErr := r.MeasureInto(ctx, sink)
	if hf := hs.Stop(); m != nil {
		hb := hostBlock(1, hf, m, 0)
		m.Host = &hb
		runErr = onABusyHost(runErr, m.Result.StopReason, hb.BusyReasons)
	}
	if err := sink.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return m, runErr
}

// onABusyHost adds to the error of a run that stopped on what a busy host
// causes by itself (draws no key caused, a stall, late draws) that the
// host was too busy to keep time while it ran, and why: the stop blames
// the console, and on such a host the cause may be the host. The error
// still wraps the stop's own (errors.Is holds).
func onABusyHost(err error, stop measure.StopReason, busy []string) error {
	if err == nil || len(busy) == 0 {
		return err
	}
	switch stop {
	case measure.StopBackground, measure.StopStall, measure.StopLateDraws:
	default:
		return err
	}
	return fmt.Errorf("%w; but the host was too busy to keep time during the run (%s), which by itself delays draws and "+
		"splits repaints: run it again on a quieter host before blaming the console", err, strings.Join(busy, "; "))
}

// Sink is where a measurement's records go. An A/B leg keeps one Sink
// across its blocks, so its CSV and presses file hold every block in
// order.
type Sink struct {
	CSV     *results.CSVWriter
	Presses *results.PressesWriter // nil for the ping metric
	// Samples overrides the configured sample target (a block's share).
	Samples int
	// PressBase numbers this measurement's presses after earlier ones.
	PressBase int
	// KeysBase is the key presses the guest already received before this
	// measurement (earlier blocks), for the key-counter check.
	KeysBase int
	pressErr error
}

// Close closes the sink's files and reports the first write error.
func (s *Sink) Close() error {
	var errs []error
	if err := s.CSV.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close the CSV: %w", err))
	}
	if s.Presses != nil {
		if err := errors.Join(s.pressErr, s.Presses.Close()); err != nil {
			errs = append(errs, fmt.Errorf("the presses CSV: %w", err))
		}
	}
	return errors.Join(errs...)
}

// MeasureInto is Measure writing into sink, which the caller closes.
func (r *Session) MeasureInto(ctx context.Context, sink *Sink) (*Measurement, error) {
	if r.Client == nil {
		return nil, errors.New("measure: ryll is not ready (setup failed)")
	}
	if r.HandshakeErr != nil {
		return nil, r.HandshakeErr
	}
	if err := r.subscribe(ctx); err != nil {
		return nil, err
	}
	m := &Measurement{CSVPath: sink.CSV.Path()}
	if sink.Presses != nil {
		m.PressesPath = sink.Presses.Path()
	}
	var bad undecodable
	if r.Cfg.Measure.Metric.Keypress() {
		// What the console paints as ryll connects (the whole screen, and
		// for a booting guest the rest of its boot) is no key's draw and
		// no background either: wait it out before the measurement looks.
		n, err := r.settleIn(ctx, r.Cfg.Measure.Quiet, r.settleLimit(), &bad)
		m.InitialDraws = n
		if ctx.Err() != nil {
			m.Result.StopReason = measure.StopInterrupted
			return m, interrupted(ctx, "while the console's first paint settled, before the first press")
		}
		if err != nil {
			return nil, err
		}
	}

	// The run ends early when ryll or the console exits (exits.go).
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	exits := r.watchExits(cancel, stopWatch)

	draws := make(chan measure.Draw, 256)
	pings := make(chan measure.Ping, 64)
	dropped := make(chan int, 16)
	pumpDone := make(chan struct{})
	go r.pump(runCtx, draws, pings, dropped, &bad, pumpDone)

	src := measure.Sources{Draws: draws, Pings: pings, Dropped: dropped}
	if r.Cfg.Measure.Metric.Keypress() {
		src.Keyboard = keyboard{c: r.Client, code: r.Cfg.Scancode}
	}
	res, runErr := measure.Run(runCtx, r.measureConfig(sink), src)
	cancel(nil)
	<-pumpDone
	m.Result = res
	runErr = errors.Join(runErr, r.checkKeys(ctx, sink, m))
	st := r.Client.Stats()
	m.LocalDropped = r.Client.DroppedEvents()
	m.Malformed = st.Malformed + st.Oversized + bad.total()
	runErr = r.explainEnd(ctx, m, runErr, exits)
	if err := checkUndecodable(bad, st); err != nil && ctx.Err() == nil {
		runErr = errors.Join(runErr, err)
		if !m.Result.StopReason.Failed() {
			m.Result.StopReason = measure.StopError
		}
	}
	return m, runErr
}

// subscribe asks for the metric's events (and dropped), bounded: a ryll
// that stops answering must not hang the run.
func (r *Session) subscribe(ctx context.Context) error {
	want := append(r.requiredEvents(), control.EventDropped)
	sctx, scancel := context.WithTimeoutCause(ctx, keyTimeout, fmt.Errorf("ryll did not answer subscribe within %s", keyTimeout))
	subscribed, err := r.Client.Subscribe(sctx, want...)
	scancel()
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, "before the measurement started")
		}
		if r.Ryll != nil {
			if e, ok := r.exitCause(exitGrace, nil); ok {
				return fmt.Errorf("%s before the measurement started: %w", e.who, e.err)
			}
		}
		return fmt.Errorf("subscribe to %v: %w", want, err)
	}
	r.Subscribed = subscribed
	for _, ev := range r.requiredEvents() {
		if !slices.Contains(subscribed, ev) {
			return fmt.Errorf("ryll refused the subscription to %s (accepted %v); LATENCY_METRIC=%s cannot be measured", ev, subscribed, r.Cfg.Measure.Metric)
		}
	}
	return nil
}

// settleLimit bounds the wait for the first paint to end: the readiness
// timeout, but never past the run's own maximum duration (a console that
// floods draws must not hold a 40 s run for 60 s).
func (r *Session) settleLimit() time.Duration {
	return min(r.Cfg.ReadyTimeout, r.Cfg.Measure.MaxDuration)
}

// measureConfig is the measurement's configuration for one sink: its
// sample target, and callbacks that write each sample and press at once.
func (r *Session) measureConfig(sink *Sink) measure.Config {
	cfg := r.Cfg.Measure
	if sink.Samples > 0 {
		cfg.Samples = sink.Samples
	}
	cfg.Logger = r.logger
	cfg.OnSample = func(s measure.Sample) error { return sink.CSV.Write(s.Value) }
	if sink.Presses != nil {
		cfg.OnPress = func(p measure.Press) {
			p.Number += sink.PressBase
			if err := sink.Presses.Write(pressRow(p)); err != nil && sink.pressErr == nil {
				sink.pressErr = err
			}
		}
	}
	return cfg
}

// checkKeys compares the keys sent with those the guest counted, for a
// console that counts them: a key lost on the way is a failure of the
// console, not a miss of the measurement.
func (r *Session) checkKeys(ctx context.Context, sink *Sink, m *Measurement) error {
	if !r.Console.CountsKeys() || !r.Cfg.Measure.Metric.Keypress() {
		return nil
	}
	m.KeysSent = sink.KeysBase + len(m.Result.Presses)
	kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), keyTimeout)
	seen, err := r.Console.KeysSeen(kctx)
	kcancel()
	if err != nil {
		return err
	}
	m.KeysSeen, m.KeysCounted = seen, true
	if seen < m.KeysSent && m.Result.StopReason == measure.StopStall {
		return fmt.Errorf("the guest counted %d key presses, the loadtest sent %d: the keys sent during the stall had not reached it when the run ended", seen, m.KeysSent)
	}
	if seen != m.KeysSent {
		return fmt.Errorf("the guest counted %d key presses, the loadtest sent %d: keys were lost or doubled on the way to the guest", seen, m.KeysSent)
	}
	return nil
}

// settleIn reads and drops events until no draw has come for quiet, so
// the measurement starts on a still screen. It gives up after limit: a
// console that never stops drawing cannot be measured, and says so.
func (r *Session) settleIn(ctx context.Context, quiet, limit time.Duration, bad *undecodable) (int, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	still := time.NewTimer(quiet)
	defer still.Stop()
	n, rectless := 0, 0
	for {
		select {
		case ev, ok := <-r.Client.Events():
			if !ok {
				return n, fmt.Errorf("the control connection ended before the first press: %w", r.Client.Err())
			}
			if ev.Name == control.EventSurfaceDrawn {
				d, err := ev.SurfaceDrawn()
				if err != nil {
					bad.draws++
				} else if !r.answersKey(d) {
					continue // the guest's activity: it never stops, and never answers a key
				} else if d.Rect == nil {
					rectless++
				}
				n++
				still.Reset(quiet)
			}
		case <-still.C:
			if n > 0 {
				r.logger.Info("the console's first paint is over", "draws", n, "quiet", quiet)
			}
			return n, nil
		case <-deadline.C:
			return n, fmt.Errorf("the console kept drawing for %s after ryll connected (%d draws, never %s without one; the wait is the smaller of LATENCY_READY_TIMEOUT=%s and LATENCY_MAX_DURATION=%s): is the guest the latency guest, which draws only on a key? Does something else draw on its screen?%s", limit, n, quiet, r.Cfg.ReadyTimeout, r.Cfg.Measure.MaxDuration, r.busyHint(rectless))
		case <-ctx.Done():
			return n, context.Cause(ctx)
		}
	}
}

// answersKey reports whether a draw may be the key's: it has no rect, or
// no key region is set, or its rect touches the region (measure's rule,
// for the wait before the first press).
func (r *Session) answersKey(d control.SurfaceDrawn) bool {
	region := r.Cfg.Measure.KeyRegion
	if d.Rect == nil || region.IsZero() {
		return true
	}
	return measure.Rect{Left: d.Rect.Left, Top: d.Rect.Top, Right: d.Rect.Right, Bottom: d.Rect.Bottom}.Overlaps(region)
}

// busyHint tells the person whose guest is busy on purpose what to do
// when its activity could not be told from the key's draws: rectless
// draws were seen (ryll 1.2 reports no rect), or there is no key region.
func (r *Session) busyHint(rectless int) string {
	busy := r.Cfg.Activity != "" && r.Cfg.Activity != guest.ActivityIdle
	switch {
	case busy && rectless > 0:
		return fmt.Sprintf(" LATENCY_ACTIVITY=%s keeps the guest drawing, and the client reported no rect on %d of its draws, so they cannot be told from the key's: use a client that reports rect on surface_drawn (fakeryll's SPICE client; a ryll patched as Kerbside's rig does; not ryll 1.2), or set LATENCY_ACTIVITY=idle", r.Cfg.Activity, rectless)
	case busy:
		return fmt.Sprintf(" LATENCY_ACTIVITY=%s keeps the guest drawing: measure it with a key region (LATENCY_KEY_REGION) and a client that reports rect on surface_drawn, or set LATENCY_ACTIVITY=idle", r.Cfg.Activity)
	case rectless > 0 && !r.Cfg.Measure.KeyRegion.IsZero():
		return " The client reports no rect on surface_drawn, so draws outside the key region cannot be set apart: use a client that reports rect (fakeryll's SPICE client; a patched ryll)"
	}
	return ""
}

// pressRow is the presses CSV's record of one press.
func pressRow(p measure.Press) results.PressRow {
	return results.PressRow{
		Number: p.Number, SentAt: p.SentAt, Verdict: string(p.Verdict), Answered: p.Answered,
		FirstDraw: p.FirstDraw, Repaint: p.Repaint, Draws: p.Draws, Background: p.Background,
		LateDraws: p.LateDraws, Dropped: p.Dropped, QuietWait: p.QuietWait, Reason: p.Reason,
	}
}

// maxUndecodableShare is the share of the lines from ryll that may fail
// to decode (malformed lines, and events whose data does not decode)
// before the run fails: one in a hundred. Below it each is at worst one
// lost draw, which the pairing already treats as a miss or a suspect
// press; above it ryll (or what stands in for it) is not speaking the
// protocol, and no figure taken from its events can be trusted.
const maxUndecodableShare = 0.01

// undecodable counts the events the pump could not decode, by kind.
type undecodable struct {
	draws, pings, dropped uint64
}

func (u undecodable) total() uint64 { return u.draws + u.pings + u.dropped }

// checkUndecodable fails a run in which more than maxUndecodableShare of
// the lines from ryll could not be decoded.
func checkUndecodable(u undecodable, st control.Stats) error {
	bad := u.total() + st.Malformed + st.Oversized
	if st.Lines == 0 || float64(bad) <= maxUndecodableShare*float64(st.Lines) {
		return nil
	}
	return fmt.Errorf("%d of the %d lines from ryll could not be decoded (%d malformed, %d over the line limit, "+
		"%d surface_drawn, %d latency and %d dropped events with bad data), more than %.0f%%: ryll is not "+
		"speaking the control protocol as this loadtest reads it, so its figures cannot be trusted; "+
		"set LATENCY_TRANSCRIPT=1 to keep every line and check ryll's version",
		bad, st.Lines, st.Malformed, st.Oversized, u.draws, u.pings, u.dropped, 100*maxUndecodableShare)
}

// pump turns control events into the measurement's inputs. It never
// blocks the control client (the client queues on its own side), and it
// closes the measurement's channels when the connection ends so that the
// run stops with ErrSourceClosed instead of waiting for events that will
// not come. It counts every event it cannot decode in bad (read once
// done is closed); a dropped event that does not decode still reports a
// loss, so that the press it fell in is suspect.
func (r *Session) pump(ctx context.Context, draws chan<- measure.Draw, pings chan<- measure.Ping, dropped chan<- int, bad *undecodable, done chan<- struct{}) {
	defer close(done)
	defer close(draws)
	defer close(pings)
	events := r.Client.Events()
	for {
		var ev control.Event
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-events:
			if !ok {
				return
			}
		}
		switch ev.Name {
		case control.EventSurfaceDrawn:
			d, err := ev.SurfaceDrawn()
			if err != nil {
				bad.draws++
				r.logger.Warn("skip a surface_drawn event that does not decode", "err", err)
				continue
			}
			md := measure.Draw{Wallclock: d.Wallclock(), Received: ev.Received}
			if d.Rect != nil {
				md.Rect = measure.Rect{Left: d.Rect.Left, Top: d.Rect.Top, Right: d.Rect.Right, Bottom: d.Rect.Bottom}
				md.HasRect = true
			}
			select {
			case draws <- md:
			case <-ctx.Done():
				return
			}
		case control.EventLatency:
			l, err := ev.Latency()
			if err != nil {
				bad.pings++
				r.logger.Warn("skip a latency event that does not decode", "err", err)
				continue
			}
			select {
			case pings <- measure.Ping{SampleMS: l.SampleMS, Wallclock: l.Wallclock(), Received: ev.Received}:
			case <-ctx.Done():
				return
			}
		case control.EventDropped:
			n := 1 // events were lost, how many is unknown: at least one
			if d, err := ev.Dropped(); err != nil {
				bad.dropped++
				r.logger.Warn("a dropped event that does not decode: counted as one lost event", "err", err)
			} else {
				n = int(d.Count)
			}
			select {
			case dropped <- n:
			case <-ctx.Done():
				return
			}
		}
	}
}

// keyboard adapts the control client to measure.Keyboard.
type keyboard struct {
	c    *control.Client
	code uint16
}

func (k keyboard) KeyDown(ctx context.Context) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, keyTimeout)
	defer cancel()
	at, err := k.c.SendKey(ctx, k.code, control.KeyDown)
	if err != nil {
		return at, fmt.Errorf("send_key down 0x%02X: %w", k.code, err)
	}
	return at, nil
}

func (k keyboard) KeyUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, keyTimeout)
	defer cancel()
	if _, err := k.c.SendKey(ctx, k.code, control.KeyUp); err != nil {
		return fmt.Errorf("send_key up 0x%02X: %w", k.code, err)
	}
	return nil
}
