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
	// deadline passes, so a flooding source cannot stall the loop.
	maxDrain = 1024
	// keyboardSettle bounds each wait for a key request still in flight
	// when the run ends: first letting it finish, then after cancelling it.
	keyboardSettle = 2 * time.Second
	// minStall is the shortest stall: a console that had answered
	// presses in time and then drew nothing for a second after a key
	// froze in a way a person notices (and that no window shorter than
	// it can measure); a draw just past its window is a late press.
	minStall = time.Second
	// releaseTimeout bounds the final key up that keeps the guest from
	// seeing a held (auto-repeating) key after the run.
	releaseTimeout = 2 * time.Second
)

// Run measures until cfg.Samples samples are taken, cfg.MaxDuration has
// passed (even if no event ever arrives), ctx is cancelled, the
// measurement shows it cannot be trusted, or something fails. It returns
// everything collected in every case.
//
// The error is nil when the run stops at the sample target or the maximum
// duration (Result.StopReason says which; fewer samples than asked is for
// the caller to judge). It wraps ctx's error when ctx is cancelled, the
// Keyboard's error when a key request fails, ErrSourceClosed when Draws or
// Pings is closed, OnSample's error when the sink fails, ErrNoDraws or
// ErrLateDraws after MaxMisses misses in a row, and ErrBackground when the
// guest draws on its own too much to measure. Invalid configuration is
// reported before anything is sent.
//
// In the keypress modes a key left down when the run stops is released
// (with a bounded wait, even if ctx is cancelled). The Keyboard must
// return promptly once its context is cancelled.
func Run(ctx context.Context, cfg Config, src Sources) (Result, error) {
	cfg = cfg.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if err := validate(cfg, src); err != nil {
		return Result{Config: cfg, StopReason: StopError}, err
	}
	r := &runner{
		ctx:    ctx,
		cfg:    cfg,
		src:    src,
		log:    cfg.Logger.With("metric", string(cfg.Metric)),
		rng:    newRand(cfg.Seed),
		kbDone: make(chan kbResult, 1),
	}
	r.res.Config = cfg
	r.res.Activity.KeyRegion = cfg.KeyRegion
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
	ctx    context.Context // Run's: a source closed after it ended is an interrupt
	cfg    Config
	src    Sources
	log    *slog.Logger
	rng    *rand.Rand
	res    Result
	median stats.Running // of sample values, for the progress line
	// firsts and repaints are both keypress figures of every sample, for
	// the progress line: a regression in either shows while it runs.
	firsts, repaints stats.Running
	exposure         stats.Running // of sample exposures, for contamination
	bg               background

	// cur is the latest press whose key down succeeded; prev is the one
	// before it, closed (its record written) when cur is decided.
	cur, prev  *pressState
	spare      *pressState // reused, so presses do not allocate
	seq        int         // presses attempted
	open       bool        // cur is not decided yet
	pressing   bool        // a key down is in flight
	pending    []Draw      // draws that arrived while pressing
	keyDown    bool        // the key is down (a key up has not succeeded)
	kbBusy     bool        // a key request is in flight
	kbDone     chan kbResult
	kbCtx      context.Context
	releaseDue bool // the hold has passed

	slot time.Time // the next press's cadence slot
	// quietJitter is added to the quiet gap before the next press: when
	// the gap, not the cadence slot, decides the press, the press must
	// still be jittered, or it lands at a fixed phase of the display
	// refresh that the last draw was aligned to.
	quietJitter time.Duration
	lastDraw    time.Time     // latest draw wall clock seen
	bgBefore    int           // background draws since the last key down
	quietWait   time.Duration // of the press in flight
	dropSeen    int           // dropped counts while cur is open or pressing
	streak      int           // misses in a row
	streakLt    int           // of them, late ones
	streakN     int           // the first press of the streak
	streakFrom  time.Time     // and its key down
	probed      bool          // a miss of this streak waited LateWait in vain

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
		"cadence", r.cfg.Cadence, "jitter", r.cfg.Jitter, "window", r.cfg.Window,
		"quiet", r.cfg.Quiet, "settle", r.cfg.Settle, "seed", r.cfg.Seed)

	var out outcome
	if r.cfg.Metric.Keypress() {
		out = r.keypressLoop(ctx, maxTimer.C, ticks)
	} else {
		out = r.pingLoop(ctx, maxTimer.C, ticks)
	}
	r.drainDropped()
	r.res.End = time.Now()
	if r.cfg.Metric.Keypress() {
		out = r.conclude(out)
	}
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
	r.bg.open(r.res.Start)
	r.slot = r.res.Start.Add(r.cfg.Baseline)
	r.quietJitter = r.jitter()
	if o := r.tryPress(); o != nil {
		return *o
	}
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
			o = r.tryPress()
		case <-r.holdAlarm.C():
			r.holdAlarm.fired()
			r.releaseDue = true
			r.release()
		case <-r.deadlineAlarm.C():
			r.deadlineAlarm.fired()
			o = r.onDeadline()
		}
		if o != nil {
			return *o
		}
	}
}

// release starts the key up once the hold has passed.
func (r *runner) release() {
	if !r.kbBusy && r.keyDown && r.releaseDue {
		r.releaseDue = false
		r.startKey(true)
	}
}

// due returns when the next press may be sent: earliest by the cadence
// slot, the previous window and the late-draw wait, and due once the
// quiet gap after the last draw is also over.
func (r *runner) due() (earliest, due time.Time) {
	earliest = r.slot
	quietFrom := r.res.Start
	if p := r.cur; p != nil {
		earliest = later(earliest, p.windowEnd)
		if !p.answered && p.late == 0 && !r.probed {
			earliest = later(earliest, p.windowEnd.Add(r.cfg.LateWait))
		}
		quietFrom = p.windowEnd
	}
	return earliest, later(earliest, later(quietFrom, r.lastDraw).Add(r.cfg.Quiet+r.quietJitter))
}

// tryPress sends the next key down if it is due, or arms the press alarm
// for when it may be. It is called whenever that may have changed.
func (r *runner) tryPress() *outcome {
	if r.open || r.pressing || r.kbBusy || r.keyDown {
		return nil // called again when the press is decided or the key is up
	}
	now := time.Now()
	earliest, due := r.due()
	if now.Before(due) {
		// The wait for quiet starts once nothing else held the press
		// back: a wait for a late draw that then came is not a screen
		// that would not stay quiet.
		from := earliest
		if p := r.cur; p != nil && p.late > 0 {
			from = later(from, p.lateSeen)
		}
		limit := from.Add(r.cfg.MaxQuietWait)
		if !now.Before(limit) {
			return r.neverQuiet(now, now.Sub(from))
		}
		r.pressAlarm.set(earlier(due, limit))
		return nil
	}
	r.pressAlarm.stop()
	if o := r.beforePress(now); o != nil {
		return o
	}
	r.quietWait = max(0, due.Sub(r.slot))
	r.seq++
	r.pressing = true
	r.dropSeen = 0
	r.startKey(false)
	return nil
}

// beforePress judges the run as it stands before another key is pressed:
// the misses in a row and the background.
func (r *runner) beforePress(now time.Time) *outcome {
	if p := r.cur; p != nil && !p.answered {
		r.streak++
		if r.streak == 1 {
			r.streakN, r.streakFrom = p.n, p.sentAt
		}
		if p.late > 0 {
			r.streakLt++
		} else {
			r.probed = true
		}
		if r.streak >= r.cfg.MaxMisses {
			return r.tooManyMisses()
		}
	}
	if r.bg.draws >= minBackgroundEvidence {
		return r.checkBackground(now)
	}
	return nil
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
		return r.tryPress()
	}
	r.pressing = false
	if kr.err == nil && kr.sentAt.IsZero() {
		kr.err = errors.New("keyboard reported no send time")
	}
	if kr.err != nil {
		r.judgePending()
		return r.keyError(ctx, "key down", kr.err)
	}
	r.keyDown = true
	r.openPress(kr.sentAt)
	r.holdAlarm.set(kr.sentAt.Add(r.cfg.Hold))
	r.deadlineAlarm.set(r.cur.windowEnd.Add(r.cfg.Grace))
	r.judgePending()
	return nil
}

// judgePending judges the draws that arrived while a key down was in
// flight, in arrival order, once its outcome is known (or the run ends
// without it): each is counted once, never lost. onDraw does not append
// to pending while this runs, since the key down is no longer pressing.
func (r *runner) judgePending() {
	pending := r.pending
	r.pending = r.pending[:0]
	for _, d := range pending {
		r.judge(d)
	}
}

// openPress starts judging press r.seq sent at sentAt.
func (r *runner) openPress(sentAt time.Time) {
	p := r.spare
	if p == nil || p == r.prev || p == r.cur {
		p = new(pressState)
	}
	r.spare = nil
	if r.prev != nil && r.prev.closed {
		r.spare = r.prev
	}
	p.start(r.seq, sentAt, r.cfg.Window, r.cfg.Settle)
	p.background, r.bgBefore = r.bgBefore, 0
	p.quietWait = r.quietWait
	if p.quietWait > 0 {
		r.res.QuietDelayed++
		r.res.QuietWait += p.quietWait
	}
	r.bg.close(sentAt)
	r.prev, r.cur = r.cur, p
	r.open = true
	r.slot = sentAt.Add(r.gap())
	r.quietJitter = r.jitter()
}

// gap is the time from one press to the next: the cadence plus jitter.
func (r *runner) gap() time.Duration { return r.cfg.Cadence + r.jitter() }

// jitter is a fresh random delay in [0, Jitter).
func (r *runner) jitter() time.Duration {
	if r.cfg.Jitter <= 0 {
		return 0
	}
	return time.Duration(r.rng.Int64N(int64(r.cfg.Jitter)))
}

func (r *runner) onDraw(d Draw) *outcome {
	if !d.Received.IsZero() {
		if lag := d.Received.Sub(d.Wallclock); lag > r.res.MaxDrawLag {
			r.res.MaxDrawLag = lag
		}
	}
	if !r.res.Activity.place(d) {
		return nil // the guest's activity, away from the key's region
	}
	if r.pressing {
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, d)
		} else {
			r.res.UnpairedDraws++
			r.noteDraw(d)
		}
		return nil
	}
	if r.judge(d) {
		// A late draw ends the wait for it: the next press may be due
		// sooner than the alarm says.
		return r.tryPress()
	}
	return nil
}

// noteDraw keeps the latest draw wall clock for the quiet gap.
func (r *runner) noteDraw(d Draw) {
	if d.Wallclock.After(r.lastDraw) {
		r.lastDraw = d.Wallclock
	}
}

// judge classifies d against the presses and counts it. It reports
// whether d was the first late draw of the latest press.
func (r *runner) judge(d Draw) (firstLate bool) {
	r.noteDraw(d)
	p := r.cur
	if p == nil {
		r.addBackground(d)
		return false
	}
	switch p.classify(d) {
	case drawFirst, drawBurst:
	case drawOverrun:
		r.res.UnpairedDraws++
	case drawLate:
		r.res.UnpairedDraws++
		r.res.LateDraws++
		r.lateDraw(p, d.Wallclock)
		return p.late == 1 && !r.open
	case drawAfter:
		r.bg.open(p.last.Add(r.cfg.Settle))
		r.addBackground(d)
	case drawBefore:
		// Drawn before the key, arrived after it: a late draw of the
		// previous press if it got none, else background; and the gap
		// before this press was not quiet if it is recent.
		if !p.decided && !d.Wallclock.Before(p.sentAt.Add(-r.cfg.Quiet)) {
			p.quietBroken = true
		}
		if q := r.prev; q != nil && !q.answered {
			if q.late == 0 {
				q.firstLate = d.Wallclock
			}
			q.late++
			r.res.UnpairedDraws++
			r.res.LateDraws++
			r.lateDraw(q, d.Wallclock)
			return false
		}
		if p.closed {
			// Its record is written (a sample): the next press counts it.
			r.addBackground(d)
			return false
		}
		p.background++
		r.bgBefore-- // counted for this press, not the next
		r.addBackground(d)
	}
	return false
}

// lateDraw notes a late draw of press p (drawn at w). The first one ends
// the wait for it, and when the console had answered earlier presses in
// time it is a stall: the console drew nothing, then catches up.
func (r *runner) lateDraw(p *pressState, w time.Time) {
	if p.late > 1 {
		if n := len(r.res.Stalls); n > 0 && r.res.Stalls[n-1].Press == p.n {
			r.res.Stalls[n-1].Draws++
		}
		return
	}
	p.lateSeen = time.Now()
	if len(r.res.Samples) == 0 || w.Sub(p.sentAt) < minStall {
		// No prompt answer yet (a slow console), or a draw just past
		// its window: a late press, judged by the miss rules.
		return
	}
	st := Stall{Press: p.n, SentAt: p.sentAt, Duration: w.Sub(p.sentAt), Presses: r.streak + 1, Draws: 1}
	r.res.Stalls = append(r.res.Stalls, st)
	r.log.Warn("the console stalled: no draw for a press, then the held-back draws at once (catching up)",
		"press", p.n, "for", st.Duration.Round(time.Millisecond), "presses", st.Presses)
}

func (r *runner) addBackground(d Draw) {
	r.res.UnpairedDraws++
	r.bgBefore++
	r.bg.add(d.Wallclock)
}

// onDeadline decides the open press once the local clock is past its
// window (and its burst's settle) plus grace, after first judging every
// draw already queued: a draw that was drawn in time but is still in the
// queue must count.
func (r *runner) onDeadline() *outcome {
drain:
	for range maxDrain {
		select {
		case d, ok := <-r.src.Draws:
			if !ok {
				return r.sourceClosedPtr("draw")
			}
			r.onDraw(d)
		default:
			break drain
		}
	}
	p := r.cur
	if at := p.settled().Add(r.cfg.Grace); time.Now().Before(at) {
		r.deadlineAlarm.set(at) // the burst may still go on
		return nil
	}
	return r.decide(p)
}

// decide gives the open press its verdict.
func (r *runner) decide(p *pressState) *outcome {
	p.decided, p.burstOver = true, true
	r.open = false
	p.dropped = r.dropSeen
	r.closePrev()
	if !p.answered {
		p.verdict = VerdictMiss
		r.log.Warn("no screen update for key press", "press", p.n, "window", r.cfg.Window,
			"misses", len(r.res.Misses)+1)
		return r.tryPress()
	}
	r.probed = false
	r.bg.open(p.last.Add(r.cfg.Settle))
	switch {
	case p.dropped > 0:
		p.reason = fmt.Sprintf("%d events dropped between the key and its decision: the first or last draw may be lost", p.dropped)
	case p.overrun > 0:
		p.reason = fmt.Sprintf("the repaint was still going when the window closed (%d more draws)", p.overrun)
	case p.quietBroken:
		p.reason = "a draw came less than the quiet gap before the key, so an earlier repaint may have run into the window"
	}
	if p.reason != "" {
		p.verdict = VerdictSuspect
		r.res.Suspects++
		r.log.Warn("suspect key press: not a sample", "press", p.n, "reason", p.reason)
		return r.tryPress()
	}
	p.verdict = VerdictSample
	// A sample's record is final now (no later draw changes it), and is
	// written before its sample: a reader of the files, or a run killed
	// between the two writes, never sees a sample without its press.
	r.closePress(p)
	r.streak, r.streakLt = 0, 0
	first, repaint := p.first.Sub(p.sentAt), p.last.Sub(p.sentAt)
	value, exposure := first, first
	if r.cfg.Metric == KeypressToRepaint {
		value, exposure = repaint, repaint+r.cfg.Settle
	}
	r.exposure.Add(max(0, exposure).Seconds())
	r.firsts.Add(max(0, first).Seconds())
	r.repaints.Add(max(0, repaint).Seconds())
	if o := r.take(Sample{Seq: p.n, At: p.sentAt, Value: max(0, value.Seconds())}); o != nil {
		return o
	}
	return r.tryPress()
}

// closePrev writes the record of the press before the latest one: no
// draw can change it any more.
func (r *runner) closePrev() {
	if q := r.prev; q != nil && !q.closed {
		r.closePress(q)
	}
}

// closePress writes p's record and hands it to the callbacks.
func (r *runner) closePress(p *pressState) {
	p.closed = true
	if p.verdict == VerdictMiss && p.late > 0 {
		p.verdict = VerdictLate
	}
	rec := p.record()
	r.res.Presses = append(r.res.Presses, rec)
	if p.verdict == VerdictMiss || p.verdict == VerdictLate {
		m := Miss{Seq: p.n, At: p.sentAt, Late: p.verdict == VerdictLate}
		r.res.Misses = append(r.res.Misses, m)
		if r.cfg.OnMiss != nil {
			r.cfg.OnMiss(m)
		}
	}
	if r.cfg.OnPress != nil {
		r.cfg.OnPress(rec)
	}
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

// tooManyMisses ends the run after MaxMisses misses in a row, saying what
// they mean.
func (r *runner) tooManyMisses() *outcome {
	if len(r.res.Samples) > 0 && r.streakLt == 0 {
		// A console that had answered in time and now draws nothing at
		// all has stalled, and not caught up while the run waited.
		st := Stall{Press: r.streakN, SentAt: r.streakFrom, Duration: time.Since(r.streakFrom), Presses: r.streak}
		r.res.Stalls = append(r.res.Stalls, st)
		return r.stalled(fmt.Sprintf(" and none since: it had not caught up when LATENCY_MAX_MISSES=%d presses in a row had gone unanswered",
			r.cfg.MaxMisses))
	}
	if 2*r.streakLt > r.streak {
		worst := time.Duration(0)
		for _, p := range []*pressState{r.prev, r.cur} {
			if p != nil && p.late > 0 {
				worst = max(worst, p.firstLate.Sub(p.sentAt))
			}
		}
		return &outcome{reason: StopLateDraws, err: fmt.Errorf(
			"the draws of %d key presses in a row came only after their %v window (%d of them late, the last "+
				"about %v after the key): the console is slower than the window, and no late draw was taken "+
				"as a sample. Raise LATENCY_WINDOW (and LATENCY_CADENCE, which must be at least the window) "+
				"above the console's latency: %w",
			r.streak, r.cfg.Window, r.streakLt, worst.Round(time.Millisecond), ErrLateDraws)}
	}
	return &outcome{reason: StopNoDraws, err: fmt.Errorf(
		"no draw followed %d key presses in a row (window %v, and %v more waiting for a late draw): the "+
			"guest's screen does not change when a key is pressed. Is the guest the latency guest "+
			"(uefi-latency-guest repaints the whole screen on every key)? Does the keyboard reach it (the "+
			"SPICE inputs channel, the scancode)? Is the window (LATENCY_WINDOW) too short for this console? "+
			"LATENCY_MAX_MISSES sets how many misses in a row end the run: %w",
		r.streak, r.cfg.Window, r.cfg.LateWait, ErrNoDraws)}
}

// checkBackground fails the run when the estimated contamination is over
// the limit.
func (r *runner) checkBackground(now time.Time) *outcome {
	med, ok := r.exposure.Median()
	if !ok {
		return nil
	}
	exposure := time.Duration(med * float64(time.Second))
	rate := r.bg.rate(now)
	share := contamination(rate, exposure)
	if share <= r.cfg.MaxContamination {
		return nil
	}
	b := r.bg.summary(now)
	return &outcome{reason: StopBackground, err: fmt.Errorf(
		"%w: %d draws no key caused in %v observed (%.2f draws/s, %s), so about %.1f%% of samples may "+
			"have been taken from such a draw (exposure %v each; the limit, LATENCY_MAX_CONTAMINATION, is "+
			"%.1f%%). Stop what draws on the guest's screen (a blinking cursor, a clock, a screensaver) "+
			"or measure with the latency guest (uefi-latency-guest), which draws only when a key is "+
			"pressed; if the extra draws are a repaint arriving in pieces more than LATENCY_SETTLE (%v) "+
			"apart, raise LATENCY_SETTLE%s",
		ErrBackground, b.Draws, b.Observed.Round(time.Millisecond), b.Rate, b.Pattern, 100*share,
		exposure.Round(time.Microsecond), 100*r.cfg.MaxContamination, r.cfg.Settle, r.res.Activity.busyHint())}
}

// neverQuiet fails the run when no quiet gap came for a press.
func (r *runner) neverQuiet(now time.Time, waited time.Duration) *outcome {
	if n := len(r.res.Stalls); n > 0 && r.cur != nil && r.res.Stalls[n-1].Press == r.cur.n {
		// The draws that kept the screen busy are the stall's catch-up.
		return r.stalled(fmt.Sprintf("; its catch-up kept the screen drawing for %v more (LATENCY_QUIET %v never passed without a draw)",
			waited.Round(time.Millisecond), r.cfg.Quiet))
	}
	b := r.bg.summary(now)
	return &outcome{reason: StopBackground, err: fmt.Errorf(
		"%w: the screen never stayed quiet for %v (LATENCY_QUIET) in %v, so press %d could not be sent "+
			"without risking another draw's sample (%d draws no key caused in %v observed, %.2f draws/s, "+
			"%s). Stop what draws on the guest's screen (a blinking cursor, a clock, a screensaver) or "+
			"measure with the latency guest (uefi-latency-guest), which draws only when a key is pressed%s",
		ErrBackground, r.cfg.Quiet, waited.Round(time.Millisecond), r.seq+1, b.Draws,
		b.Observed.Round(time.Millisecond), b.Rate, b.Pattern, r.res.Activity.busyHint())}
}

// stalled ends the run on the console's stalls (Result.Stalls), naming
// the longest: its presses, how long the console drew nothing, and that
// the burst after it was the console catching up. extra is added to the
// first sentence.
func (r *runner) stalled(extra string) *outcome {
	worst := r.res.Stalls[0]
	for _, st := range r.res.Stalls[1:] {
		if st.Duration > worst.Duration {
			worst = st
		}
	}
	times := ""
	if n := len(r.res.Stalls); n > 1 {
		times = fmt.Sprintf(" (%d stalls in the run; the longest)", n)
	}
	med, _ := r.median.Median()
	what := fmt.Sprintf("press %d got no draw for %v (%d press(es) in a row with none in their %v window), then %d "+
		"held-back draw(s) came in one burst%s. That burst was the console catching up after it stopped drawing, "+
		"not a guest drawing on its own and not a console slower than the window",
		worst.Press, worst.Duration.Round(time.Millisecond), worst.Presses, r.cfg.Window, worst.Draws, extra)
	if worst.Draws == 0 {
		what = fmt.Sprintf("from press %d on, %d presses got no draw at all in %v%s. The console stopped drawing: "+
			"not a guest whose screen does not change on a key",
			worst.Press, worst.Presses, worst.Duration.Round(time.Millisecond), extra)
	}
	return &outcome{reason: StopStall, err: fmt.Errorf(
		"%w%s: %s: it answered %d presses promptly (median %.1f ms). The stalled presses are recorded as misses "+
			"or late, never as samples, so the figures do not show the stall and the run cannot pass on them. "+
			"Check what paused the console: its process (a stopped or starved QEMU), the host's load and memory, "+
			"the network to it; then measure again",
		ErrStall, times, what, len(r.res.Samples), med*1000)}
}

// conclude completes the Result of a keypress run: the last press
// records, the summaries, the background, and the final contamination
// verdict for a run that otherwise succeeded.
func (r *runner) conclude(out outcome) outcome {
	for _, p := range []*pressState{r.prev, r.cur} {
		if p != nil && !p.closed {
			r.closePress(p)
		}
	}
	var first, repaint []float64
	for _, p := range r.res.Presses {
		if p.Verdict == VerdictSample {
			first = append(first, p.FirstDraw.Seconds())
			repaint = append(repaint, p.Repaint.Seconds())
		}
	}
	r.res.FirstDraw, r.res.Repaint = stats.Summarize(first), stats.Summarize(repaint)
	b := r.bg.summary(r.res.End)
	if med, ok := r.exposure.Median(); ok {
		b.Exposure = time.Duration(med * float64(time.Second))
		b.Contamination = contamination(b.Rate, b.Exposure)
	}
	r.res.Background = b
	if out.err == nil && len(r.res.Stalls) > 0 {
		return *r.stalled("")
	}
	if out.err == nil {
		if o := r.checkBackground(r.res.End); o != nil {
			return *o
		}
	}
	if b.Draws > 0 {
		r.log.Info("background draws", "draws", b.Draws, "rate_per_s", b.Rate, "pattern", string(b.Pattern),
			"contamination", b.Contamination)
	}
	return out
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
			r.judgePending()
			return
		}
		r.kbBusy = false
		switch {
		case kr.up:
			r.keyDown = false
		case kr.err == nil && !kr.sentAt.IsZero():
			r.keyDown = true
			r.pressing = false
			r.openPress(kr.sentAt) // recorded as unfinished
		case kr.err == nil:
			r.keyDown = true
		}
	}
	r.judgePending()
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

// sourceClosed ends the run when an event channel closes. The caller
// closes its channels when it is cancelled too, so a closed channel seen
// after ctx ended is the interrupt, not a lost connection: the two race
// in the select, and a signal must always read as interrupted.
func (r *runner) sourceClosed(what string) outcome {
	if r.ctx.Err() != nil {
		return r.interrupted(r.ctx)
	}
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
	if r.open || r.pressing {
		r.dropSeen += n
	}
	r.res.Dropped += n
	r.log.Warn("control socket dropped events (client too slow)", "count", n, "total", r.res.Dropped)
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
		"misses", len(r.res.Misses), "suspects", r.res.Suspects, "late_draws", r.res.LateDraws,
		"unpaired_draws", r.res.UnpairedDraws, "dropped", r.res.Dropped,
	}
	ms := func(v float64) float64 { return math.Round(v*1e6) / 1e3 }
	if f, ok := r.firsts.Median(); ok {
		rp, _ := r.repaints.Median()
		attrs = append(attrs, "first_draw_p50_ms", ms(f), "repaint_p50_ms", ms(rp))
	} else if m, ok := r.median.Median(); ok {
		attrs = append(attrs, "median_ms", ms(m))
	}
	elapsed := time.Since(r.res.Start)
	attrs = append(attrs, "elapsed", elapsed.Round(time.Millisecond))
	if msg != "measurement finished" {
		attrs = append(attrs, "left", r.timeLeft(elapsed).Round(time.Second))
	}
	r.log.Log(context.Background(), level, msg, append(attrs, extra...)...)
}

// timeLeft estimates the rest of the run from the pace so far (or the
// cadence before the first sample), bounded by LATENCY_MAX_DURATION.
func (r *runner) timeLeft(elapsed time.Duration) time.Duration {
	rest := r.cfg.Samples - len(r.res.Samples)
	per := r.cfg.Cadence + r.cfg.Jitter/2
	if n := len(r.res.Samples); n > 0 {
		per = elapsed / time.Duration(n)
	}
	return max(0, min(time.Duration(rest)*per, r.cfg.MaxDuration-elapsed))
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

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
