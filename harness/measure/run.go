package measure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/stats"
)

const (
	// maxPending bounds the draws held while a key down is in flight
	// (they can only be judged once its sentAt is known). More than this
	// in one request's time is a flood of unrelated draws; the excess is
	// counted as unpaired.
	maxPending = 1024
	// maxDrain bounds how many queued draws are examined when a press's
	// miss deadline passes, so a flooding source cannot stall the loop.
	maxDrain = 1024
	// keyboardSettle bounds each wait for a key request still in flight
	// when the run ends: first letting it finish, then after cancelling it.
	keyboardSettle = 2 * time.Second
	// releaseTimeout bounds the final key up that keeps the guest from
	// seeing a held (auto-repeating) key after the run.
	releaseTimeout = 2 * time.Second
)

// Run measures until cfg.Samples samples are taken, cfg.MaxDuration has
// passed (even if no event ever arrives), ctx is cancelled, or something
// fails. It returns everything collected in every case.
//
// The error is nil when the run stops at the sample target or the maximum
// duration (Result.StopReason says which; fewer samples than asked is for
// the caller to judge). It wraps ctx's error when ctx is cancelled, the
// Keyboard's error when a key request fails, ErrSourceClosed when Draws or
// Pings is closed, and OnSample's error when the sink fails. Invalid
// configuration is reported before anything is sent.
//
// In KeypressToScreen mode a key left down when the run stops is released
// (with a bounded wait, even if ctx is cancelled). The Keyboard must
// return promptly once its context is cancelled.
func Run(ctx context.Context, cfg Config, src Sources) (Result, error) {
	cfg = cfg.withDefaults()
	for cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if err := validate(cfg, src); err != nil {
		return Result{Config: cfg, StopReason: StopError}, err
	}
	r := &runner{
		cfg:    cfg,
		src:    src,
		log:    cfg.Logger.With("metric", string(cfg.Metric)),
		rng:    newRand(cfg.Seed),
		kbDone: make(chan kbResult, 1),
	}
	r.res.Config = cfg
	return r.run(ctx)
}

// newRand returns the jitter source for seed.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// outcome is why a loop stopped.
type outcome struct {
	reason StopReason
	err    error
}

// kbResult is the answer to one key request run off the event loop.
type kbResult struct {
	up     bool
	sentAt time.Time
	err    error
}

// runner is the state of one Run. Everything is touched only by Run's
// goroutine; key requests run in their own goroutine and report on kbDone.
type runner struct {
	cfg    Config
	src    Sources
	log    *slog.Logger
	rng    *rand.Rand
	res    Result
	median stats.Running

	pair       pairer
	seq        int    // presses attempted
	pressing   bool   // a key down is in flight
	pending    []Draw // draws that arrived while pressing
	keyDown    bool   // the key is down (a key up has not succeeded)
	kbBusy     bool   // a key request is in flight
	kbDone     chan kbResult
	kbCtx      context.Context
	nextPress  time.Time
	pressDue   bool // the next press's time has come
	releaseDue bool // the hold has passed

	pressAlarm, holdAlarm, deadlineAlarm alarm
}

func (r *runner) run(ctx context.Context) (Result, error) {
	r.res.Start = time.Now()
	maxTimer := time.NewTimer(r.cfg.MaxDuration)
	defer maxTimer.Stop()
	ticks := r.cfg.progressTicks
	if ticks == nil {
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		ticks = t.C
	}
	r.log.Info("measurement started", "samples", r.cfg.Samples, "max_duration", r.cfg.MaxDuration,
		"cadence", r.cfg.Cadence, "jitter", r.cfg.Jitter, "window", r.cfg.Window, "seed", r.cfg.Seed)

	var out outcome
	if r.cfg.Metric == KeypressToScreen {
		out = r.keypressLoop(ctx, maxTimer.C, ticks)
	} else {
		out = r.pingLoop(ctx, maxTimer.C, ticks)
	}
	r.drainDropped()
	r.res.End = time.Now()
	r.res.StopReason = out.reason
	level := slog.LevelInfo
	if out.err != nil {
		level = slog.LevelWarn
	}
	r.logProgress(level, "measurement finished", "stop_reason", string(out.reason), "max_draw_lag", r.res.MaxDrawLag)
	return r.res, out.err
}

func (r *runner) keypressLoop(ctx context.Context, maxC, ticks <-chan time.Time) outcome {
	kbCtx, cancel := context.WithCancel(ctx)
	r.kbCtx = kbCtx
	defer cancel()
	defer r.finishKeyboard(ctx, cancel)

	dropped := r.src.Dropped
	r.nextPress = time.Now()
	r.advance()
	for {
		var o *outcome
		select {
		case <-ctx.Done():
			return r.interrupted(ctx)
		case <-maxC:
			return outcome{reason: StopMaxDuration}
		case <-ticks:
			r.logProgress(slog.LevelInfo, "measurement progress")
		case n, ok := <-dropped:
			if !ok {
				dropped = nil
				continue
			}
			r.addDropped(n)
		case d, ok := <-r.src.Draws:
			if !ok {
				return r.sourceClosed("draw")
			}
			o = r.onDraw(d)
		case kr := <-r.kbDone:
			o = r.onKeyboard(ctx, kr)
		case <-r.pressAlarm.C():
			r.pressAlarm.fired()
			r.pressDue = true
			r.advance()
		case <-r.holdAlarm.C():
			r.holdAlarm.fired()
			r.releaseDue = true
			r.advance()
		case <-r.deadlineAlarm.C():
			r.deadlineAlarm.fired()
			o = r.onDeadline()
		}
		if o != nil {
			return *o
		}
	}
}

// advance starts the next key request when one is due: the key up once
// the hold has passed, the next key down once the previous press is
// finished, the key is up and the gap has passed.
func (r *runner) advance() {
	if r.kbBusy {
		return
	}
	if r.keyDown {
		if r.releaseDue {
			r.releaseDue = false
			r.startKey(true)
		}
		return
	}
	if r.pair.open {
		return
	}
	if r.pressDue {
		r.pressDue = false
		r.seq++
		r.pressing = true
		r.startKey(false)
		return
	}
	if !r.pressAlarm.armed {
		r.pressAlarm.set(r.nextPress)
	}
}

// startKey runs one key request off the event loop, so draws keep being
// read while it waits for its answer.
func (r *runner) startKey(up bool) {
	r.kbBusy = true
	kb, ctx, done := r.src.Keyboard, r.kbCtx, r.kbDone
	go func() {
		if up {
			done <- kbResult{up: true, err: kb.KeyUp(ctx)}
			return
		}
		t, err := kb.KeyDown(ctx)
		done <- kbResult{sentAt: t, err: err}
	}()
}

func (r *runner) onKeyboard(ctx context.Context, kr kbResult) *outcome {
	r.kbBusy = false
	if kr.up {
		r.keyDown = false
		if kr.err != nil {
			return r.keyError(ctx, "key up", kr.err)
		}
		r.advance()
		return nil
	}
	r.pressing = false
	if kr.err == nil && kr.sentAt.IsZero() {
		kr.err = errors.New("keyboard reported no send time")
	}
	if kr.err != nil {
		r.pending = r.pending[:0]
		return r.keyError(ctx, "key down", kr.err)
	}
	r.keyDown = true
	r.res.Presses++
	r.pair.start(r.seq, kr.sentAt, r.cfg.Window)
	r.nextPress = kr.sentAt.Add(r.gap())
	r.holdAlarm.set(kr.sentAt.Add(r.cfg.Hold))
	r.deadlineAlarm.set(kr.sentAt.Add(r.cfg.Window + r.cfg.Grace))
	// Judge the draws that arrived while the request was in flight, in
	// arrival order. onDraw does not append to pending now.
	pending := r.pending
	r.pending = r.pending[:0]
	for _, d := range pending {
		if o := r.onDraw(d); o != nil {
			return o
		}
	}
	r.advance()
	return nil
}

// gap is the time from one press to the next: the cadence plus jitter.
func (r *runner) gap() time.Duration {
	g := r.cfg.Cadence
	if r.cfg.Jitter > 0 {
		g += time.Duration(r.rng.Int64N(int64(r.cfg.Jitter)))
	}
	return g
}

func (r *runner) onDraw(d Draw) *outcome {
	if !d.Received.IsZero() {
		if lag := d.Received.Sub(d.Wallclock); lag > r.res.MaxDrawLag {
			r.res.MaxDrawLag = lag
		}
	}
	if r.pressing {
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, d)
		} else {
			r.res.UnpairedDraws++
		}
		return nil
	}
	v, ok := r.pair.offer(d)
	if !ok {
		r.res.UnpairedDraws++
		return nil
	}
	r.deadlineAlarm.stop()
	if o := r.take(Sample{Seq: r.pair.seq, At: r.pair.sentAt, Value: v}); o != nil {
		return o
	}
	r.advance()
	return nil
}

// onDeadline decides a miss once the local clock is past the window plus
// grace, after first judging every draw already queued: a draw that was
// drawn inside the window but is still in the queue must win.
func (r *runner) onDeadline() *outcome {
drain:
	for i := 0; i < maxDrain && r.pair.open; i++ {
		select {
		case d, ok := <-r.src.Draws:
			if !ok {
				return r.sourceClosedPtr("draw")
			}
			if o := r.onDraw(d); o != nil {
				return o
			}
		default:
			break drain
		}
	}
	if !r.pair.open {
		return nil
	}
	r.pair.close()
	m := Miss{Seq: r.pair.seq, At: r.pair.sentAt}
	r.res.Misses = append(r.res.Misses, m)
	r.log.Warn("no screen update for key press", "press", m.Seq, "window", r.cfg.Window,
		"misses", len(r.res.Misses))
	if r.cfg.OnMiss != nil {
		r.cfg.OnMiss(m)
	}
	r.advance()
	return nil
}

// take records a sample and hands it to the sink at once.
func (r *runner) take(s Sample) *outcome {
	s.Index = len(r.res.Samples)
	r.res.Samples = append(r.res.Samples, s)
	r.median.Add(s.Value)
	if r.cfg.OnSample != nil {
		if err := r.cfg.OnSample(s); err != nil {
			return &outcome{reason: StopError, err: fmt.Errorf("hand sample %d to the sink: %w", s.Index+1, err)}
		}
	}
	if len(r.res.Samples) >= r.cfg.Samples {
		return &outcome{reason: StopSamplesReached}
	}
	return nil
}

func (r *runner) keyError(ctx context.Context, what string, err error) *outcome {
	if ctx.Err() != nil {
		// The request failed because the run was cancelled.
		o := r.interrupted(ctx)
		return &o
	}
	r.res.KeyErrors++
	return &outcome{reason: StopError, err: fmt.Errorf("press %d: %s: %w", r.seq, what, err)}
}

// finishKeyboard waits (bounded) for a key request still in flight and
// releases the key if it is down, so the guest does not auto-repeat after
// the run.
func (r *runner) finishKeyboard(ctx context.Context, cancel context.CancelFunc) {
	r.pressAlarm.stop()
	r.holdAlarm.stop()
	r.deadlineAlarm.stop()
	if r.kbBusy {
		kr, ok := r.waitKeyboard()
		if !ok {
			cancel()
			kr, ok = r.waitKeyboard()
		}
		if !ok {
			r.log.Error("key request did not return after cancellation; abandoning it", "wait", 2*keyboardSettle)
			return
		}
		r.kbBusy = false
		switch {
		case kr.up:
			r.keyDown = false
		case kr.err == nil:
			r.keyDown = true
		}
	}
	if !r.keyDown {
		return
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer rcancel()
	if err := r.src.Keyboard.KeyUp(rctx); err != nil {
		r.res.KeyErrors++
		r.log.Warn("could not release the key at the end of the run", "error", err)
		return
	}
	r.keyDown = false
}

func (r *runner) waitKeyboard() (kbResult, bool) {
	t := time.NewTimer(keyboardSettle)
	defer t.Stop()
	select {
	case kr := <-r.kbDone:
		return kr, true
	case <-t.C:
		return kbResult{}, false
	}
}

func (r *runner) pingLoop(ctx context.Context, maxC, ticks <-chan time.Time) outcome {
	dropped := r.src.Dropped
	for {
		select {
		case <-ctx.Done():
			return r.interrupted(ctx)
		case <-maxC:
			return outcome{reason: StopMaxDuration}
		case <-ticks:
			r.logProgress(slog.LevelInfo, "measurement progress")
		case n, ok := <-dropped:
			if !ok {
				dropped = nil
				continue
			}
			r.addDropped(n)
		case p, ok := <-r.src.Pings:
			if !ok {
				return r.sourceClosed("latency")
			}
			r.seq++
			if !validPing(p.SampleMS) {
				r.res.InvalidPings++
				r.log.Warn("ignoring latency event with an impossible value", "event", r.seq, "sample_ms", p.SampleMS)
				continue
			}
			at := p.Wallclock
			if at.IsZero() {
				at = p.Received
			}
			if at.IsZero() {
				at = time.Now()
			}
			if o := r.take(Sample{Seq: r.seq, At: at, Value: p.SampleMS / 1000}); o != nil {
				return *o
			}
		}
	}
}

func (r *runner) interrupted(ctx context.Context) outcome {
	err := fmt.Errorf("measurement interrupted after %d of %d samples: %w",
		len(r.res.Samples), r.cfg.Samples, ctx.Err())
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
		err = fmt.Errorf("%w (cause: %w)", err, cause)
	}
	return outcome{reason: StopInterrupted, err: err}
}

func (r *runner) sourceClosed(what string) outcome {
	return outcome{reason: StopError, err: fmt.Errorf("%s events stopped after %d of %d samples (control connection lost?): %w",
		what, len(r.res.Samples), r.cfg.Samples, ErrSourceClosed)}
}

func (r *runner) sourceClosedPtr(what string) *outcome {
	o := r.sourceClosed(what)
	return &o
}

func (r *runner) addDropped(n int) {
	if n <= 0 {
		return
	}
	r.res.Dropped += n
	r.log.Warn("control socket dropped events (client too slow); samples may be missing", "count", n, "total", r.res.Dropped)
}

// drainDropped takes the dropped counts already queued when the run
// stops, so the total is complete.
func (r *runner) drainDropped() {
	if r.src.Dropped == nil {
		return
	}
	for range maxDrain {
		select {
		case n, ok := <-r.src.Dropped:
			if !ok {
				return
			}
			r.addDropped(n)
		default:
			return
		}
	}
}

// logProgress writes the progress line: samples against the target,
// misses, the median so far and the elapsed time.
func (r *runner) logProgress(level slog.Level, msg string, extra ...any) {
	attrs := []any{
		"samples", len(r.res.Samples), "target", r.cfg.Samples,
		"misses", len(r.res.Misses), "unpaired_draws", r.res.UnpairedDraws, "dropped", r.res.Dropped,
	}
	if m, ok := r.median.Median(); ok {
		attrs = append(attrs, "median_ms", math.Round(m*1e6)/1e3)
	}
	attrs = append(attrs, "elapsed", time.Since(r.res.Start).Round(time.Millisecond))
	r.log.Log(context.Background(), level, msg, append(attrs, extra...)...)
}

// alarm is a timer that can be disarmed; its channel is nil when it is
// not armed, so a select case on it never fires.
type alarm struct {
	t     *time.Timer
	armed bool
}

func (a *alarm) set(at time.Time) {
	d := time.Until(at)
	if a.t == nil {
		a.t = time.NewTimer(d)
	} else {
		a.t.Reset(d) // since Go 1.23 no stale value can be received after Reset
	}
	a.armed = true
}

func (a *alarm) stop() {
	if a.t != nil {
		a.t.Stop()
	}
	a.armed = false
}

// fired records that the alarm's value was received.
func (a *alarm) fired() { a.armed = false }

func (a *alarm) C() <-chan time.Time {
	if !a.armed {
		return nil
	}
	return a.t.C
}
