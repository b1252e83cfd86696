package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// keyTimeout bounds one send_key: a control socket that stops answering
// ends the run with a clear error instead of a stuck cadence.
const keyTimeout = 5 * time.Second

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
	if r.Cfg.Metric.Keypress() {
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
	}
	if err := sink.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return m, runErr
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
	want := append(r.requiredEvents(), control.EventDropped)
	// Bounded: a ryll that stops answering must not hang the run.
	sctx, scancel := context.WithTimeoutCause(ctx, keyTimeout, fmt.Errorf("ryll did not answer subscribe within %s", keyTimeout))
	subscribed, err := r.Client.Subscribe(sctx, want...)
	scancel()
	if err != nil {
		if r.Ryll != nil {
			select {
			case <-r.ryllExited():
				return nil, fmt.Errorf("ryll exited before the measurement started: %w", r.ryllExitErr())
			case <-time.After(exitGrace):
			}
		}
		return nil, fmt.Errorf("subscribe to %v: %w", want, err)
	}
	r.Subscribed = subscribed
	for _, ev := range r.requiredEvents() {
		if !slices.Contains(subscribed, ev) {
			return nil, fmt.Errorf("ryll refused the subscription to %s (accepted %v); LATENCY_METRIC=%s cannot be measured", ev, subscribed, r.Cfg.Metric)
		}
	}

	m := &Measurement{CSVPath: sink.CSV.Path()}
	if sink.Presses != nil {
		m.PressesPath = sink.Presses.Path()
	}
	if r.Cfg.Metric.Keypress() {
		// What the console paints as ryll connects (the whole screen, and
		// for a booting guest the rest of its boot) is no key's draw and
		// no background either: wait it out before the measurement looks.
		n, err := r.settleIn(ctx, r.Cfg.Measure().WithDefaults().Quiet, r.Cfg.ReadyTimeout)
		m.InitialDraws = n
		if err != nil {
			return nil, err
		}
	}

	// The run ends early when ryll exits: ryll exits 0 when its SPICE
	// session ends, so the exit itself is the failure.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// So does the console's own process (QEMU for the qemu provider):
	// say so, rather than let ryll's exit hide the cause.
	consoleExited := r.Console.Exited()
	go func() {
		select {
		case <-consoleExited:
			cancel(fmt.Errorf("the console stopped during the run: %w", r.Console.ExitErr()))
		case <-r.ryllExited():
			select {
			case <-consoleExited:
				cancel(fmt.Errorf("the console stopped during the run: %w", r.Console.ExitErr()))
			case <-time.After(exitGrace):
				cancel(fmt.Errorf("ryll exited during the run: %w", r.ryllExitErr()))
			}
		case <-runCtx.Done():
		}
	}()

	draws := make(chan measure.Draw, 256)
	pings := make(chan measure.Ping, 64)
	dropped := make(chan int, 16)
	pumpDone := make(chan struct{})
	go r.pump(runCtx, draws, pings, dropped, pumpDone)

	cfg := r.Cfg.Measure()
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

	src := measure.Sources{Draws: draws, Pings: pings, Dropped: dropped}
	if r.Cfg.Metric.Keypress() {
		src.Keyboard = keyboard{c: r.Client, code: r.Cfg.Scancode}
	}
	res, runErr := measure.Run(runCtx, cfg, src)
	cancel(nil)
	<-pumpDone
	m.Result = res
	if r.Console.CountsKeys() && r.Cfg.Metric.Keypress() {
		// Every key sent must have reached the guest: a key lost on the
		// way is a failure of the console, not a miss of the measurement.
		m.KeysSent = sink.KeysBase + len(res.Presses)
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), keyTimeout)
		seen, err := r.Console.KeysSeen(kctx)
		kcancel()
		switch {
		case err != nil:
			runErr = errors.Join(runErr, err)
		case seen != m.KeysSent:
			m.KeysSeen, m.KeysCounted = seen, true
			runErr = errors.Join(runErr, fmt.Errorf("the guest counted %d key presses, the loadtest sent %d: keys were lost or doubled on the way to the guest", seen, m.KeysSent))
		default:
			m.KeysSeen, m.KeysCounted = seen, true
		}
	}
	st := r.Client.Stats()
	m.LocalDropped = r.Client.DroppedEvents()
	m.Malformed = st.Malformed + st.Oversized
	if errors.Is(runErr, measure.ErrSourceClosed) {
		// The connection usually drops a moment before ryll's exit is
		// seen; give the exit a bounded moment so the error names the
		// real cause and quotes ryll's last words.
		// A console that died (QEMU) takes ryll's session with it: name
		// the console, the cause, first.
		select {
		case <-consoleExited:
			runErr = fmt.Errorf("the console stopped during the run (%w): %w", runErr, r.Console.ExitErr())
		case <-r.ryllExited():
			select {
			case <-consoleExited:
				runErr = fmt.Errorf("the console stopped during the run (%w): %w", runErr, r.Console.ExitErr())
			case <-time.After(exitGrace / 4):
				runErr = fmt.Errorf("ryll exited during the run (%w): %w", runErr, r.ryllExitErr())
			}
		case <-time.After(exitGrace):
			runErr = fmt.Errorf("the control connection to ryll was lost while ryll kept running: %w", runErr)
		}
	} else if runErr != nil {
		if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
			// ryll exited: say that, not "context canceled".
			runErr = cause
		}
	}
	if runErr != nil && ctx.Err() != nil {
		runErr = fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	return m, runErr
}

// ryllExited fires when the ryll this session started exits; nil (never)
// when it attached to a ryll it does not own (LATENCY_RYLL_SOCKET).
func (r *Session) ryllExited() <-chan struct{} {
	if r.Ryll == nil {
		return nil
	}
	return r.Ryll.Exited()
}

func (r *Session) ryllExitErr() error {
	if r.Ryll == nil {
		return errors.New("the control connection ended")
	}
	return r.Ryll.ExitErr()
}

// settleIn reads and drops events until no draw has come for quiet, so
// the measurement starts on a still screen. It gives up after limit: a
// console that never stops drawing cannot be measured, and says so.
func (r *Session) settleIn(ctx context.Context, quiet, limit time.Duration) (int, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	still := time.NewTimer(quiet)
	defer still.Stop()
	n := 0
	for {
		select {
		case ev, ok := <-r.Client.Events():
			if !ok {
				return n, fmt.Errorf("the control connection ended before the first press: %w", r.Client.Err())
			}
			if ev.Name == control.EventSurfaceDrawn {
				n++
				still.Reset(quiet)
			}
		case <-still.C:
			if n > 0 {
				r.logger.Info("the console's first paint is over", "draws", n, "quiet", quiet)
			}
			return n, nil
		case <-deadline.C:
			return n, fmt.Errorf("the console kept drawing for LATENCY_READY_TIMEOUT=%s after ryll connected (%d draws, never %s without one): is the guest the latency guest, which draws only on a key?", limit, n, quiet)
		case <-ctx.Done():
			return n, context.Cause(ctx)
		}
	}
}

// pressRow is the presses CSV's record of one press.
func pressRow(p measure.Press) results.PressRow {
	return results.PressRow{
		Number: p.Number, SentAt: p.SentAt, Verdict: string(p.Verdict), Answered: p.Answered,
		FirstDraw: p.FirstDraw, Repaint: p.Repaint, Draws: p.Draws, Background: p.Background,
		LateDraws: p.LateDraws, Dropped: p.Dropped, QuietWait: p.QuietWait, Reason: p.Reason,
	}
}

// pump turns control events into the measurement's inputs. It never
// blocks the control client (the client queues on its own side), and it
// closes the measurement's channels when the connection ends so that the
// run stops with ErrSourceClosed instead of waiting for events that will
// not come.
func (r *Session) pump(ctx context.Context, draws chan<- measure.Draw, pings chan<- measure.Ping, dropped chan<- int, done chan<- struct{}) {
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
				r.logger.Warn("skip a surface_drawn event that does not decode", "err", err)
				continue
			}
			select {
			case draws <- measure.Draw{Wallclock: d.Wallclock(), Received: ev.Received}:
			case <-ctx.Done():
				return
			}
		case control.EventLatency:
			l, err := ev.Latency()
			if err != nil {
				r.logger.Warn("skip a latency event that does not decode", "err", err)
				continue
			}
			select {
			case pings <- measure.Ping{SampleMS: l.SampleMS, Wallclock: l.Wallclock(), Received: ev.Received}:
			case <-ctx.Done():
				return
			}
		case control.EventDropped:
			d, err := ev.Dropped()
			if err != nil {
				r.logger.Warn("skip a dropped event that does not decode", "err", err)
				continue
			}
			select {
			case dropped <- int(d.Count):
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
