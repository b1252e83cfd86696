package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/console"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/ramp"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// A load ramp (LATENCY_LOAD) measures one console while busy sessions
// run beside it through the same proxy under test: the same idea as the
// A/B, with steps of sessions instead of legs. The measured console
// takes its samples in blocks, a ryll per block; before each block the
// source of busy sessions is set to the block's step; the steps are
// interleaved over rounds (harness/ramp's plan) so that drift spreads
// over all of them. Around every block the ramp reads what the sessions
// moved (load.Sample) and what the host did (host figures, with the CPU
// of ryll, QEMU, the proxy and the generator when they are processes of
// their own); harness/ramp then finds the knee.

// RampBlock is one block of a ramp, as measured.
type RampBlock struct {
	ramp.Block
	Result measure.Result
	Host   results.HostBlock
	// Before and After are the source's samples around the block.
	Before, After load.Sample
	// Err is why the block ended early.
	Err error
	// Overload is ramp.LoadFailure's cause when the block failed
	// because of its load ("" otherwise): the ramp went on below it.
	// KeysLost are the key presses sent in it that never reached the
	// guest (held or dropped at that load).
	Overload string
	KeysLost int
}

// Ramp is a load ramp run.
type Ramp struct {
	Cfg *config.Config
	// Guest is the qemu guest; Console the measured console, the guest
	// through the proxy under test.
	Guest, Console *console.Console
	Rig            RampRig
	Plan           []ramp.Block
	Blocks         []RampBlock
	// Measurement is every block merged (set by Run).
	Measurement *Measurement
	// SetupErr is why the ramp could not start; Err why it ended early.
	SetupErr, Err error

	pf     Checked
	opts   Options
	logger *slog.Logger
	sink   *Sink
	last   *Session
	// consoleCfg is the measured console's configuration: the run's,
	// with every step's samples as its target.
	consoleCfg *config.Config
	// measureBlock takes one block's samples (r.block when nil; tests
	// set it to measure without ryll or a guest).
	measureBlock func(ctx context.Context, b ramp.Block, keys *int) (measure.Result, results.HostBlock, error)
	// keys is the guest's key counter when a test sets it (else the
	// guest's own).
	keys keyCounter
}

// SetupRamp checks what it can, boots the guest, starts the proxy under
// test and the source of busy sessions (opts.RampRig, or the one this
// build has), routes the measured console through the proxy and creates
// its files. It returns the Ramp even on error, for Teardown.
func SetupRamp(ctx context.Context, cfg *config.Config, opts Options) *Ramp {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Ramp{Cfg: cfg, opts: opts, logger: logger}
	rc := cfg.Ramp
	if rc == nil {
		r.SetupErr = errors.New("SetupRamp needs LATENCY_LOAD")
		return r
	}
	var err error
	if r.Plan, err = ramp.Plan(rc.Steps, rc.Repeat, cfg.Measure.Samples); err != nil {
		r.SetupErr = err
		return r
	}
	if r.pf, err = Preflight(ctx, cfg, opts.RyllEnv...); err != nil {
		r.SetupErr = err
		return r
	}
	logger.Info("ryll", "binary", r.pf.RyllBinary, "version", r.pf.RyllVersion)
	copts := opts.Console
	copts.Logger = logger
	copts.Getenv = opts.Getenv
	if r.Guest, err = console.Open(ctx, cfg, copts); err != nil {
		r.SetupErr = fmt.Errorf("the guest: %w", err)
		return r
	}
	r.Guest.Secrets = append(r.Guest.Secrets, opts.Secrets...)
	newRig := opts.RampRig
	if newRig == nil {
		newRig = rigFor(cfg, opts)
	}
	if r.Rig, err = newRig(context.WithoutCancel(ctx), cfg, logger.With("component", "ramp")); err != nil {
		r.SetupErr = fmt.Errorf("the proxy under test and the busy sessions: %w", err)
		return r
	}
	if rc.Remote {
		// openstack: the measured console is the server's spice-direct
		// console through Kerbside, asked for again per block (its .vv
		// passwords are one-time) as an A/B's B leg is, behind
		// LATENCY_LINK's link.
		if r.Console, err = console.SameServer(ctx, r.Guest, copts); err != nil {
			r.SetupErr = fmt.Errorf("the measured console through Kerbside: %w", err)
			return r
		}
		if cfg.Link != nil {
			if err = r.Console.PutLink(ctx, *cfg.Link); err != nil {
				r.SetupErr = err
				return r
			}
		}
	} else if r.Console, err = console.Routed(ctx, r.Guest, r.Rig.Proxy.Router(), r.Rig.Proxy.Describe(), logger); err != nil {
		r.SetupErr = err
		return r
	}
	// The measured console's own records count every step's samples.
	cc := *cfg
	cc.Measure.Samples = len(rc.Steps) * cfg.Measure.Samples
	r.consoleCfg = &cc
	if r.sink, err = newSink(cfg); err != nil {
		r.SetupErr = err
		return r
	}
	order := make([]int, len(r.Plan))
	for i, b := range r.Plan {
		order[i] = b.Sessions
	}
	logger.Info("load ramp", "console", r.Console.Describe(), "source", r.Rig.Source.Name(), "activity", rc.Activity,
		"rate_bits_per_s", rc.Rate, "order", fmt.Sprint(order), "samples_per_step", cfg.Measure.Samples)
	return r
}

// Run takes the plan's blocks in order, setting the busy sessions
// before each, until every block is taken, ctx ends,
// LATENCY_MAX_DURATION passes or a block fails for any reason but its
// load. A block that fails because of its load (ramp.LoadFailure: the
// measured console could not be measured with that many sessions) is
// the ramp's answer, not its end: Run records it on the block, takes no
// further block at that step or above (load only grows), and finishes
// the rounds of the steps below; Judge says what it means. It returns
// the first error that ended it (never the load's).
func (r *Ramp) Run(ctx context.Context) error {
	if r.SetupErr != nil {
		return r.SetupErr
	}
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, r.Cfg.Measure.MaxDuration,
		fmt.Errorf("the ramp reached LATENCY_MAX_DURATION=%s short of its blocks", r.Cfg.Measure.MaxDuration))
	defer cancel()
	measureBlock := r.measureBlock
	if measureBlock == nil {
		measureBlock = r.block
	}
	keys := 0
	var runErr error
	failed := -1 // the lowest step a block failed at because of its load
	skipped := 0
	for _, b := range r.Plan {
		if ctx.Err() != nil {
			runErr = context.Cause(ctx)
			if parent.Err() != nil {
				runErr = interrupted(parent, fmt.Sprintf("the ramp, after %d of %d blocks", len(r.Blocks), len(r.Plan)))
			}
			break
		}
		if failed >= 0 && b.Step >= failed {
			skipped++
			continue // load only grows: nothing at or above a step the console could not be measured at
		}
		rb := RampBlock{Block: b}
		err := r.Rig.Source.Set(ctx, b.Sessions)
		if err == nil {
			rb.Before, err = r.Rig.Source.Sample(ctx)
		}
		if err != nil {
			rb.Err = fmt.Errorf("block %d, %d busy sessions: %w", b.Index+1, b.Sessions, err)
			r.Blocks = append(r.Blocks, rb)
			runErr = rb.Err
			break
		}
		rb.Result, rb.Host, err = measureBlock(ctx, b, &keys)
		after, serr := r.Rig.Source.Sample(ctx)
		if p, perr := r.Rig.Proxy.Process(); perr == nil && p.Pid > 0 {
			p.Role = ramp.ProxyRole
			after.Processes = append(after.Processes, p)
		}
		rb.After = after
		// The load's failure is the measurement's alone, in a ramp still
		// running: an interrupt racing it may be what failed it.
		cause, overloaded := ramp.LoadFailure(b.Sessions, err)
		overloaded = overloaded && serr == nil && ctx.Err() == nil
		if err = errors.Join(err, serr); err != nil {
			rb.Err = fmt.Errorf("block %d, %d busy sessions: %w", b.Index+1, b.Sessions, err)
		}
		switch {
		case overloaded:
			rb.Overload = cause
			if failed < 0 || b.Step < failed {
				failed = b.Step
			}
			r.logger.Error("the measured console could not be measured at this load: the ramp takes no block at this step or above (load only grows) and finishes the steps below",
				"block", b.Index+1, "sessions", b.Sessions, "cause", cause, "err", rb.Err)
			runErr = r.settleKeys(ctx, &rb, &keys)
		case rb.Err != nil:
			runErr = rb.Err
		}
		r.Blocks = append(r.Blocks, rb)
		if runErr != nil {
			break
		}
	}
	if skipped > 0 {
		r.logger.Warn("blocks not taken: a step at or below theirs could not be measured", "blocks", skipped, "from_sessions", r.Cfg.Ramp.Steps[failed])
	}
	// One guest: its counter must hold every key sent (settleKeys took
	// what a block that failed at its load held or lost).
	seen, counted := 0, false
	if kc := r.counter(); kc != nil {
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), keyTimeout)
		var err error
		seen, err = kc.KeysSeen(kctx)
		kcancel()
		counted = err == nil
		switch {
		case err != nil:
			runErr = errors.Join(runErr, err)
		case seen != keys:
			runErr = errors.Join(runErr, fmt.Errorf("the guest counted %d key presses, the ramp sent %d: keys were lost or doubled on the way", seen, keys))
		}
	}
	var m *Measurement
	if r.sink != nil {
		if err := r.sink.Close(); err != nil {
			runErr = errors.Join(runErr, err)
		}
		m = &Measurement{CSVPath: r.sink.CSV.Path(), PressesPath: r.sink.Presses.Path()}
	} else {
		m = &Measurement{}
	}
	var res []measure.Result
	for _, b := range r.Blocks {
		res = append(res, b.Result)
	}
	m.Result = measure.Merge(res...)
	for _, b := range r.Blocks[min(1, len(r.Blocks)):] {
		if !b.Result.Start.IsZero() {
			m.BlockStarts = append(m.BlockStarts, b.Result.Start)
		}
	}
	// keys counts those lost in blocks that failed at their load as
	// never sent (settleKeys): the record says what was sent.
	lost := 0
	for _, b := range r.Blocks {
		lost += b.KeysLost
	}
	m.KeysCounted, m.KeysSent, m.KeysSeen = counted, keys+lost, seen
	if runErr != nil && parent.Err() != nil {
		m.Result.StopReason = measure.StopInterrupted
	} else if runErr != nil && !m.Result.StopReason.Failed() {
		m.Result.StopReason = measure.StopError
	}
	r.Measurement = m
	r.Err = runErr
	return runErr
}

// keyCounter is the guest's key counter (console.Console's).
type keyCounter interface {
	CountsKeys() bool
	KeysSeen(ctx context.Context) (int, error)
}

// counter is the guest's key counter; nil when it has none.
func (r *Ramp) counter() keyCounter {
	if r.keys != nil {
		return r.keys
	}
	if r.Guest == nil || !r.Guest.CountsKeys() {
		return nil
	}
	return r.Guest
}

// keySettle bounds the wait for the guest's key counter to stop moving
// after a block that failed at its load; keyStill is how long it must
// stay still.
const (
	keySettle = 10 * time.Second
	keyStill  = time.Second
)

// settleKeys follows a block that failed at its load: keys sent into an
// overloaded proxy may still be on their way, or lost, when the block
// ends. It waits (bounded) for the guest's counter to stay still, then
// takes its count as the keys sent so far, so the blocks below are
// checked against what the guest really has, and says so on the block.
// A guest that counted more keys than were sent, or fewer by more than
// the block's unanswered presses, is an error: that is no load's doing.
func (r *Ramp) settleKeys(ctx context.Context, rb *RampBlock, keys *int) error {
	kc := r.counter()
	if kc == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, keySettle)
	defer cancel()
	last, still := -1, time.Time{}
	for {
		n, err := kc.KeysSeen(sctx)
		switch {
		case err != nil && sctx.Err() != nil && last >= 0:
			// The bound passed while it still moved: take the last count.
		case err != nil:
			return fmt.Errorf("read the guest's key count after block %d: %w", rb.Index+1, err)
		case n != last:
			last, still = n, time.Now()
		}
		if err != nil || time.Since(still) >= keyStill {
			break
		}
		select {
		case <-sctx.Done():
		case <-time.After(keyStill / 5):
		}
	}
	unanswered := 0
	for _, p := range rb.Result.Presses {
		if p.Verdict != measure.VerdictSample {
			unanswered++
		}
	}
	switch lost := *keys - last; {
	case lost < 0:
		return fmt.Errorf("the guest counted %d key presses after block %d, the ramp sent %d: keys were doubled on the way", last, rb.Index+1, *keys)
	case lost > unanswered:
		return fmt.Errorf("the guest counted %d key presses after block %d, the ramp sent %d: %d lost, more than the block's %d unanswered presses", last, rb.Index+1, *keys, lost, unanswered)
	case lost > 0:
		rb.KeysLost = lost
		r.logger.Warn("key presses held or lost in a block that failed at its load", "block", rb.Index+1, "lost", lost, "unanswered", unanswered)
		*keys = last
	}
	return nil
}

// block starts ryll on the measured console, takes the block's samples
// with the host measured alongside, and stops ryll again.
func (r *Ramp) block(ctx context.Context, b ramp.Block, keys *int) (measure.Result, results.HostBlock, error) {
	opts := r.opts
	opts.Logger = r.logger.With("block", b.Index+1, "sessions", b.Sessions)
	opts.AppendRyllLog = len(r.Blocks) > 0
	if len(r.Blocks) > 0 {
		// A one-time console (Kerbside's) is asked for again per block.
		copts := r.opts.Console
		copts.Logger = opts.Logger
		if err := r.Console.Refresh(ctx, copts); err != nil {
			return measure.Result{}, results.HostBlock{}, err
		}
	}
	sess, err := attachBlock(ctx, r.consoleCfg, r.Console, r.pf, opts)
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if terr := sess.Teardown(tctx); terr != nil {
			r.logger.Warn("stop ryll after a block", "block", b.Index+1, "err", terr)
		}
	}()
	r.last = sess
	if err != nil {
		return measure.Result{}, results.HostBlock{}, err
	}
	presses := 0
	for _, rb := range r.Blocks {
		presses += len(rb.Result.Presses)
	}
	r.sink.Samples, r.sink.PressBase, r.sink.KeysBase = b.Samples, presses, *keys
	hs := host.Start(ctx, host.Options{Processes: r.processes(sess)})
	m, err := sess.MeasureInto(ctx, r.sink)
	hb := hostBlock(b.Index+1, hs.Stop(), m, presses)
	if len(hb.BusyReasons) > 0 {
		opts.Logger.Warn("the host is too busy to measure to a few milliseconds", "why", strings.Join(hb.BusyReasons, "; "))
	}
	if m == nil {
		return measure.Result{}, hb, err
	}
	*keys += len(m.Result.Presses)
	return m.Result, hb, err
}

// attachBlock starts ryll for a block, trying again (bounded) as an
// A/B's blocks do.
func attachBlock(ctx context.Context, cfg *config.Config, con *console.Console, pf Checked, opts Options) (*Session, error) {
	ab := &AB{logger: opts.Logger, pf: pf}
	return ab.attach(ctx, &Leg{Name: "ramp", Cfg: cfg, Console: con}, opts)
}

// processes are the processes whose CPU time a block's host figures
// give besides the harness's own: ryll, the guest's QEMU, the proxy and
// the source's processes, when they are processes of their own.
func (r *Ramp) processes(sess *Session) []host.Process {
	var ps []host.Process
	if sess != nil && sess.Ryll != nil {
		ps = append(ps, host.Process{Role: "ryll", Pid: sess.Ryll.Pid()})
	}
	if pid := r.Guest.Pid(); pid > 0 {
		ps = append(ps, host.Process{Role: "qemu", Pid: pid})
	}
	if pid := r.Rig.Proxy.Pid(); pid > 0 {
		ps = append(ps, host.Process{Role: ramp.ProxyRole, Pid: pid})
	}
	// A source with a process of its own (loadrig's generator) says so.
	if src, ok := r.Rig.Source.(interface {
		Process() (load.Process, error)
	}); ok {
		if p, err := src.Process(); err == nil && p.Pid > 0 {
			ps = append(ps, host.Process{Role: p.Role, Pid: p.Pid})
		}
	}
	return ps
}

// Teardown stops the busy sessions and the proxy and closes both
// consoles. Safe to call more than once.
func (r *Ramp) Teardown(ctx context.Context) error {
	if r == nil {
		return nil
	}
	var errs []error
	if r.sink != nil {
		_ = r.sink.Close()
	}
	if r.Rig.Source != nil {
		if err := r.Rig.Source.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop the busy sessions: %w", err))
		}
		r.Rig.Source = nil
	}
	if r.Console != nil {
		if err := r.Console.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("the measured console: %w", err))
		}
		r.Console = nil
	}
	if r.Rig.Proxy != nil {
		if err := r.Rig.Proxy.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop the proxy under test: %w", err))
		}
		r.Rig.Proxy = nil
	}
	if r.Guest != nil {
		if err := r.Guest.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("the guest: %w", err))
		}
		r.Guest = nil
	}
	return errors.Join(errs...)
}

// stepOf gathers a step's blocks.
type stepOf struct {
	sessions int
	blocks   []RampBlock
	// planned is how many blocks the plan gave the step; notRun says
	// some were not taken because it or a step below it failed at its
	// load.
	planned int
	notRun  bool
}

// steps groups the blocks taken by step, in the order of the steps.
func (r *Ramp) steps() []stepOf {
	out := make([]stepOf, len(r.Cfg.Ramp.Steps))
	for i, s := range r.Cfg.Ramp.Steps {
		out[i].sessions = s
	}
	for _, b := range r.Plan {
		out[b.Step].planned++
	}
	failed := len(out)
	for _, b := range r.Blocks {
		out[b.Step].blocks = append(out[b.Step].blocks, b)
		if b.Overload != "" {
			failed = min(failed, b.Step)
		}
	}
	for i := failed; i < len(out); i++ {
		out[i].notRun = len(out[i].blocks) < out[i].planned
	}
	return out
}

// rampStep is one step's figures: what harness/ramp judges, and what
// the record shows.
func rampStep(s stepOf, want int) (ramp.Step, results.LoadStep) {
	st := ramp.Step{Sessions: s.sessions, Want: want, NotRun: s.notRun}
	ls := results.LoadStep{Sessions: s.sessions, Blocks: len(s.blocks), NotRun: s.notRun}
	for _, b := range s.blocks {
		if b.Overload != "" {
			st.Failed = failedBlock(b)
			ls.FailureError = b.Err.Error()
			if b.KeysLost > 0 {
				ls.FailureError += fmt.Sprintf(" (%d of its key presses never reached the guest)", b.KeysLost)
			}
		}
	}
	var hosts []results.HostBlock
	cpu := map[string]float64{}
	var roles []string
	rss := map[string]int64{}
	var seconds float64
	var bytes, msgs int64
	var ackWait time.Duration
	for _, b := range s.blocks {
		for _, p := range b.Result.Presses {
			switch p.Verdict {
			case measure.VerdictSample:
				st.FirstDraw = append(st.FirstDraw, p.FirstDraw.Seconds())
				st.Repaint = append(st.Repaint, p.Repaint.Seconds())
			case measure.VerdictMiss, measure.VerdictLate:
				ls.Misses++
			case measure.VerdictSuspect:
				ls.Suspects++
			}
		}
		if b.Host.Reads == 0 && b.Host.Lag.Ticks == 0 {
			continue // ryll never became ready: no host figures
		}
		hosts = append(hosts, b.Host)
		d := b.Host.EndTime.Sub(b.Host.StartTime).Seconds()
		seconds += d
		for _, c := range b.Host.CPU {
			if _, ok := cpu[c.Role]; !ok {
				roles = append(roles, c.Role)
			}
			cpu[c.Role] += c.CPUS
		}
		bytes += b.After.Bytes - b.Before.Bytes
		msgs += b.After.Messages - b.Before.Messages
		ackWait += b.After.AckWait - b.Before.AckWait
		for _, p := range b.After.Processes {
			rss[p.Role] += p.RSS
		}
	}
	for _, role := range roles {
		share := 0.0
		if seconds > 0 {
			share = cpu[role] / seconds
		}
		st.CPU = append(st.CPU, ramp.RoleCPU{Role: role, Share: share})
		ls.CPU = append(ls.CPU, results.LoadCPU{Role: role, CPUS: cpu[role], CoreShare: share, RSSBytes: rss[role] / int64(max(1, len(s.blocks)))})
	}
	if seconds > 0 {
		ls.BytesPerS, ls.MessagesPerS = float64(bytes)/seconds, float64(msgs)/seconds
	}
	ls.AckWaitS, ls.SecondsMeasured = ackWait.Seconds(), seconds
	if rec := results.NewHostRecord(hosts...); rec != nil {
		ls.Host = rec
		st.HostBusy = rec.BusyReasons
	}
	return st, ls
}

// failedBlock is a block that failed at its load, with its own host
// figures, as harness/ramp judges it.
func failedBlock(b RampBlock) *ramp.FailedBlock {
	f := &ramp.FailedBlock{Block: b.Index + 1, Cause: b.Overload, HostBusy: b.Host.BusyReasons}
	if b.Err != nil {
		f.Err = b.Err.Error()
	}
	if d := b.Host.EndTime.Sub(b.Host.StartTime).Seconds(); d > 0 {
		for _, c := range b.Host.CPU {
			f.CPU = append(f.CPU, ramp.RoleCPU{Role: c.Role, Share: c.CPUS / d})
		}
	}
	return f
}

// Judge is the ramp's record: every step's figures, the knee and the
// verdict (harness/ramp), and what ended the ramp early.
func (r *Ramp) Judge() results.Load {
	cfg := r.Cfg
	rc := cfg.Ramp
	out := results.Load{RunID: cfg.RunID, Lane: r.opts.Lane.orDefault().Name(), Source: rc.Source, Activity: rc.Activity,
		RateBitsPerS: rc.Rate, Proxy: rc.Proxy.String(), Rounds: rc.Repeat, SamplesPerStep: cfg.Measure.Samples,
		MaxAddedS: rc.MaxAdded.Seconds(), Confidence: ramp.Confidence, Cores: r.cores(), Sidecar: results.SidecarName(cfg.RunID)}
	if out.Lane != "simulated" {
		out.Lane = ""
	}
	if r.Rig.Proxy != nil {
		out.Proxy = r.Rig.Proxy.Describe()
	} else if rc.Remote {
		out.Proxy = remoteDescription // the rig never started: still Kerbside, not LATENCY_PROXY's default
	}
	if r.Console != nil {
		out.Console = r.Console.Describe()
	}
	if rc.TargetSet {
		t := rc.Target
		out.Target = &t
	}
	for _, b := range r.Plan {
		out.Order = append(out.Order, b.Sessions)
	}
	var steps []ramp.Step
	for _, s := range r.steps() {
		st, ls := rampStep(s, cfg.Measure.Samples)
		steps = append(steps, st)
		out.Steps = append(out.Steps, ls)
	}
	j := ramp.Judge(steps, ramp.Rules{MaxAdded: rc.MaxAdded.Seconds(), Target: rc.Target, TargetSet: rc.TargetSet, Cores: out.Cores})
	for i, sj := range j.Steps {
		ls := &out.Steps[i]
		ls.FirstDraw, ls.Repaint = loadFigure(steps[i].FirstDraw), loadFigure(steps[i].Repaint)
		ls.P95AddedS, ls.P95AddedCIS = sj.P95AddedS, sj.P95AddedCIS
		ls.Above, ls.Within, ls.TooFew = sj.Above, sj.Within, sj.TooFew
		ls.LoadCores, ls.Saturated = sj.LoadCores, sj.Saturated
		ls.Failure, ls.Overloaded = sj.Failure, sj.Overloaded
	}
	if j.Knee >= 0 {
		k := j.Knee
		out.Knee = &k
	}
	if j.Overloaded >= 0 {
		o := j.Overloaded
		out.Overloaded = &o
	}
	out.Verdict, out.Fails, out.Reasons = j.Verdict, j.Fails, j.Reasons
	for _, err := range []error{r.SetupErr, r.Err} {
		if err != nil {
			out.Errors = append(out.Errors, err.Error())
		}
	}
	if len(out.Errors) > 0 && !out.Fails {
		out.Fails = true
		out.Verdict = ramp.Inconclusive
		out.Reasons = slices.Insert(out.Reasons, 0, "the ramp ended early: "+out.Errors[0])
	}
	if r.pidless() {
		out.Reasons = append(out.Reasons, "the proxy and the synthetic sessions ran inside the harness: their CPU is the harness's")
	}
	// A remote proxy (Kerbside) says what the ramp could not measure.
	if n, ok := r.Rig.Proxy.(interface{ Notes() []string }); ok {
		out.Reasons = append(out.Reasons, n.Notes()...)
	}
	return out
}

// cores are the host's CPUs, as the blocks' host figures read them.
func (r *Ramp) cores() int {
	n := 0
	for _, b := range r.Blocks {
		n = max(n, b.Host.Cores)
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	return n
}

// pidless says whether the proxy runs inside the harness.
func (r *Ramp) pidless() bool { return r.Rig.Proxy != nil && r.Rig.Proxy.Pid() == 0 }

func loadFigure(v []float64) results.LoadFigure {
	f := ramp.NewFigure(v)
	return results.LoadFigure{Samples: f.N, P50S: f.P50, P95S: f.P95, P99S: f.P99, P50CIS: f.P50CI, P95CIS: f.P95CI, P99CIS: f.P99CI}
}

// RampWritten is what WriteResults wrote.
type RampWritten struct {
	Console ConsoleResults
	Load    results.Load
	// Path is latency-<run>-load.json, Plot its curve ("" when not
	// written).
	Path, Plot string
}

// WriteResults writes the measured console's records (CSV, presses,
// sidecar, plot, as any run's), latency-<run>-load.json and its curve,
// and prints the summary and the ramp's table. It is the run's one exit
// path for results.
func (r *Ramp) WriteResults(w io.Writer) (RampWritten, error) {
	var out RampWritten
	if r == nil {
		return out, nil
	}
	var errs []error
	// Judged first, while the proxy and console can still describe
	// themselves.
	out.Load = r.Judge()
	sess := r.last
	if sess == nil {
		cfg := r.consoleCfg
		if cfg == nil {
			cfg = r.Cfg
		}
		sess = &Session{Cfg: cfg, Console: r.Console, Start: time.Now(), logger: r.logger,
			RyllBinary: r.pf.RyllBinary, RyllVersion: r.pf.RyllVersion}
	}
	var runErrs []error
	for _, err := range []error{r.SetupErr, r.Err} {
		if err != nil {
			runErrs = append(runErrs, err)
		}
	}
	// A block that failed at its load gave the console's stop reason:
	// its sidecar says why, and that the ramp went on below it.
	for _, b := range r.Blocks {
		if b.Overload != "" && b.Err != nil {
			held := ""
			if b.KeysLost > 0 {
				held = fmt.Sprintf("; %d of its key presses never reached the guest", b.KeysLost)
			}
			runErrs = append(runErrs, fmt.Errorf("%w (at this load the measured console could not be measured%s: the ramp took no block at %d sessions or above and went on below them; see %s)",
				b.Err, held, b.Sessions, results.LoadName(r.Cfg.RunID)))
		}
	}
	cr := ConsoleResults{Label: "ramp", Measurement: r.Measurement}
	if r.Measurement != nil || r.SetupErr != nil {
		cr.Sidecar = sess.Sidecar(r.Measurement, time.Now(), runErrs...)
		var hosts []results.HostBlock
		for _, b := range r.Blocks {
			if b.Host.Block > 0 {
				hosts = append(hosts, b.Host)
			}
		}
		cr.Sidecar.Host = results.NewHostRecord(hosts...)
		cr.Files, cr.Sidecar, cr.Err = sess.WriteResults(w, r.Measurement, cr.Sidecar)
		if cr.Err != nil {
			errs = append(errs, cr.Err)
		}
	}
	out.Console = cr
	if len(out.Load.Steps) > 0 {
		plot := filepath.Join(r.Cfg.ResultsDir, results.LoadPlotName(r.Cfg.RunID))
		if err := results.WriteLoadPlot(plot, out.Load); err != nil {
			if !errors.Is(err, results.ErrNoSamples) {
				errs = append(errs, err)
			}
		} else {
			out.Load.Plot = filepath.Base(plot)
			out.Plot = plot
		}
	}
	out.Path = filepath.Join(r.Cfg.ResultsDir, results.LoadName(r.Cfg.RunID))
	if err := results.WriteLoad(out.Path, out.Load); err != nil {
		errs = append(errs, err)
		out.Path = ""
	}
	if w != nil {
		if err := results.WriteLoadTable(w, out.Load); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}
