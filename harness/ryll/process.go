package ryll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Errors for misuse of a Process, for errors.Is.
var (
	// ErrAlreadyStarted is returned by a second Start: a Process runs one
	// ryll, once, so its log, socket and exit status are unambiguous.
	ErrAlreadyStarted = errors.New("ryll process already started")
	// ErrStopped is returned by Start after Stop.
	ErrStopped = errors.New("ryll process already stopped")
	// ErrNotStarted is returned by WaitReady before Start.
	ErrNotStarted = errors.New("ryll process not started")
	// ErrReadyTimeout is wrapped by WaitReady when the probe never
	// succeeded in time.
	ErrReadyTimeout = errors.New("ryll control socket not ready")
)

// Tunables of the manager itself; not worth a Spec field each.
const (
	// probeAttemptTimeout bounds one probe call so a socket that accepts
	// but never answers cannot use up the whole readiness wait silently.
	probeAttemptTimeout = 5 * time.Second
	// probeMinBackoff and probeMaxBackoff bound the pause between failed
	// probes: short at first (the socket appears right after start), then
	// slower while ryll connects to SPICE.
	probeMinBackoff = 20 * time.Millisecond
	probeMaxBackoff = 500 * time.Millisecond
	// probeAbandon bounds how long WaitReady waits for a cancelled probe
	// to return before leaving it behind.
	probeAbandon = time.Second
	// progressEvery is how often WaitReady logs that it is still waiting.
	progressEvery = 5 * time.Second
)

// Process is one ryll child. It is single-use: Start once, Stop once
// (Stop may be called again; it returns the first result).
//
// The process itself (its group, output, exit watch and stop ladder) is
// owned by a childproc.Child; a Process adds what is ryll's: its
// arguments and environment, its private socket directory, its log, and
// readiness. Because ryll exits 0 when its SPICE session fails, every
// exit is reported as an *ExitError and Exited fires whatever the status.
type Process struct {
	spec  Spec
	log   *slog.Logger
	red   *secret.Redactor // scrubs errors; the log file has its own
	child *childproc.Child

	// startMu serialises Start and Stop, so Stop never races a ryll that
	// Start is still bringing up.
	startMu sync.Mutex

	mu         sync.Mutex
	started    bool
	stopCalled bool
	res        *resources // what a started ryll holds; nil before

	stopOnce childproc.Once
}

// words are how messages speak of ryll.
var words = childproc.Words{
	Name:     "ryll",
	Ready:    "the control socket was ready",
	ZeroNote: "ryll exits 0 when its SPICE session fails",
}

// New checks spec and returns an unstarted Process. Use it with
// (*Process).Start when the Process must exist before ryll runs (for
// example to register Stop in a cleanup first); otherwise use Start.
func New(spec Spec) (*Process, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	logger := spec.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "ryll")
	grace := spec.Grace.withDefaults()
	return &Process{
		spec: spec,
		log:  logger,
		red:  secret.NewRedactor(io.Discard, spec.secrets()...),
		child: childproc.New(childproc.Spec{
			Words:     words,
			Logger:    logger,
			TailLines: spec.TailLines,
			// SIGINT: ryll stops its control server and unlinks the socket.
			Ladder: childproc.Ladder{
				Rungs: []childproc.Rung{
					{Signal: syscall.SIGINT, Grace: grace.Interrupt},
					{Signal: syscall.SIGTERM, Grace: grace.Terminate},
				},
				Kill: grace.Kill,
			},
		}),
	}, nil
}

// Start runs ryll as spec describes and returns once it is running (not
// once it is ready: call WaitReady). ctx bounds the start only; ryll
// then lives until Stop, which the caller must always call (typically in
// t.Cleanup) to reap it and remove its socket directory.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	p, err := New(spec)
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Start runs ryll. It refuses to run twice (ErrAlreadyStarted) or after
// Stop (ErrStopped). On every error path everything already acquired is
// released, including killing a child that did start.
func (p *Process) Start(ctx context.Context) (err error) {
	p.startMu.Lock()
	defer p.startMu.Unlock()
	if err := p.claim(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start ryll: %w", err)
	}
	cmd, err := p.command()
	if err != nil {
		return err
	}
	res, err := p.acquire()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			res.release()
		}
	}()
	cmd.Args = p.spec.args(res.sockDir, res.sockPath)
	cmd.Output = res.log
	if err := p.child.Start(ctx, cmd); err != nil {
		return err
	}
	if err := p.publish(res); err != nil {
		// Stop was called while we were starting; it is waiting for us
		// and will find nothing to stop, so the child is ours to kill.
		_ = p.child.Kill()
		return err
	}
	p.log.Info("started ryll", "pid", p.child.Pid(), "args", p.spec.redactedArgs(res.sockDir, res.sockPath),
		"socket", res.sockPath, "log", p.spec.LogPath)
	return nil
}

// claim marks the Process started, refusing a second start or a start
// after Stop.
func (p *Process) claim() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.started:
		return ErrAlreadyStarted
	case p.stopCalled:
		return ErrStopped
	}
	p.started = true
	return nil
}

// command is ryll's binary and explicit environment; the arguments wait
// for the socket directory.
func (p *Process) command() (childproc.Command, error) {
	binary, err := exec.LookPath(p.spec.Binary)
	if err != nil {
		return childproc.Command{}, fmt.Errorf("find ryll binary %q: %w", p.spec.Binary, err)
	}
	env, err := childEnv(os.LookupEnv, p.spec.ExtraEnv)
	if err != nil {
		return childproc.Command{}, fmt.Errorf("build ryll environment: %w", err)
	}
	return childproc.Command{Path: binary, Env: env}, nil
}

// resources are what a started ryll holds besides the process: its log
// and its private socket directory.
type resources struct {
	log      *childproc.Log
	sockDir  string
	sockPath string
}

// acquire opens the log and makes the socket directory (with the .vv
// file for a direct console that --direct cannot take). On error it
// releases what it made.
func (p *Process) acquire() (_ *resources, err error) {
	res := &resources{}
	defer func() {
		if err != nil {
			res.release()
		}
	}()
	if res.log, err = childproc.OpenLog(p.spec.LogPath, p.spec.AppendLog, p.spec.secrets()...); err != nil {
		return nil, fmt.Errorf("open ryll log: %w", err)
	}
	if res.sockDir, res.sockPath, err = makeSocketDir(); err != nil {
		return nil, err
	}
	if vv := p.spec.consoleFile(); vv != "" {
		if err := os.WriteFile(filepath.Join(res.sockDir, directFileName), []byte(vv), 0o600); err != nil {
			return nil, fmt.Errorf("write the .vv file for direct console %s: %w", p.spec.Direct, err)
		}
	}
	return res, nil
}

// release removes the socket directory and closes the log, returning the
// errors that matter to a Stop.
func (r *resources) release() error {
	var errs []error
	if r.sockDir != "" {
		if err := os.RemoveAll(r.sockDir); err != nil {
			errs = append(errs, fmt.Errorf("remove control socket directory: %w", err))
		}
	}
	if r.log != nil {
		if err := r.log.Close(); err != nil {
			errs = append(errs, fmt.Errorf("ryll %w", err))
		}
	}
	return errors.Join(errs...)
}

// publish records what Start acquired, unless Stop was called meanwhile
// (then it returns ErrStopped and the caller releases it all).
func (p *Process) publish(res *resources) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopCalled {
		return ErrStopped
	}
	p.res = res
	return nil
}

// WaitReady waits until probe succeeds, ryll exits, timeout passes or ctx
// ends, whichever comes first. probe is the caller's readiness check
// (dial the control socket, say hello, see a non-empty status.surfaces);
// it is retried with a short backoff while it fails, since the socket
// appears only after ryll starts and a display only after SPICE is up.
// probe must return when its context ends.
//
// An exit before readiness is an *ExitError whatever the status, since
// ryll exits 0 when the SPICE session fails. A timeout wraps
// ErrReadyTimeout and names the timeout, the last probe error and ryll's
// last output.
func (p *Process) WaitReady(ctx context.Context, probe func(context.Context) error, timeout time.Duration) error {
	if probe == nil {
		return errors.New("wait for ryll: nil readiness probe")
	}
	if timeout <= 0 {
		return fmt.Errorf("wait for ryll: timeout %s is not positive", timeout)
	}
	if p.Pid() == 0 {
		return fmt.Errorf("wait for ryll: %w", ErrNotStarted)
	}

	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()

	probeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan error, 1) // buffered: an abandoned probe can still finish
	attempts, inFlight := 0, false
	launch := func() {
		attempts++
		inFlight = true
		go func() {
			actx, acancel := context.WithTimeout(probeCtx, probeAttemptTimeout)
			defer acancel()
			results <- probe(actx)
		}()
	}
	var lastErr error
	// finish cancels a running probe and waits (bounded) for it, so no
	// probe outlives WaitReady in the normal case.
	finish := func(err error) error {
		cancel()
		if inFlight {
			t := time.NewTimer(probeAbandon)
			defer t.Stop()
			select {
			case <-results:
			case <-t.C:
				p.log.Warn("readiness probe ignored cancellation; leaving it behind")
			}
		}
		return err
	}

	backoff := probeMinBackoff
	launch()
	for {
		select {
		case err := <-results:
			inFlight = false
			if err == nil {
				p.child.MarkReady()
				p.log.Info("ryll ready", "pid", p.Pid(), "after", time.Since(start).Round(time.Millisecond), "probes", attempts)
				return nil
			}
			lastErr = err
			if IsPermanent(err) {
				return finish(fmt.Errorf("ryll's control socket answered, and cannot become ready: %w", err))
			}
			retry.Reset(backoff)
			backoff = min(2*backoff, probeMaxBackoff)
		case <-retry.C:
			launch()
		case <-p.Exited():
			return finish(p.ExitErr())
		case <-deadline.C:
			return finish(p.readyTimeout(timeout, attempts, inFlight, lastErr))
		case <-ctx.Done():
			// The cause says what ended the wait (a signal, the run's own
			// bound); ctx.Err keeps errors.Is(err, context.Canceled) true.
			// Compared as values: an interrupt's cause wraps Canceled too.
			err := ctx.Err()
			if cause := context.Cause(ctx); cause != nil && cause != err {
				err = fmt.Errorf("%w (%w)", err, cause)
			}
			return finish(fmt.Errorf("wait for ryll control socket: %w", err))
		case <-progress.C:
			p.log.Info("waiting for ryll control socket", "pid", p.Pid(),
				"elapsed", time.Since(start).Round(time.Second), "timeout", timeout,
				"probes", attempts, "last_probe_error", p.scrubErr(lastErr))
		}
	}
}

// permanentError marks a probe failure that no retry can mend.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks a readiness probe's error as one that waiting cannot
// mend (a protocol major version the harness does not speak, a refused
// credential): WaitReady returns it at once instead of retrying until
// the ready timeout.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var pe permanentError
	return errors.As(err, &pe)
}

// readyTimeout builds the timeout error of WaitReady.
func (p *Process) readyTimeout(timeout time.Duration, attempts int, inFlight bool, lastErr error) error {
	probeState := "no probe finished"
	if lastErr != nil {
		probeState = "last probe error: " + p.scrubErr(lastErr)
	}
	if inFlight {
		probeState += "; a probe was still running"
	}
	return fmt.Errorf("%w within %s (%d probes, %s): %s",
		ErrReadyTimeout, timeout, attempts, probeState, formatTail(p.Tail()))
}

// scrubErr renders err with secrets hidden; "" for nil.
func (p *Process) scrubErr(err error) string {
	if err == nil {
		return ""
	}
	return p.red.Scrub(err.Error())
}

// Stop ends ryll with a ladder of signals, each followed by a bounded
// wait: SIGINT (ryll stops its control server and unlinks the socket),
// then SIGTERM, then SIGKILL to the whole process group. If ctx ends,
// the gentler rungs are skipped and SIGKILL is sent at once, so Stop
// never leaves ryll behind. Stop then removes the socket directory and
// reports any error writing the log.
//
// Stop is safe to call more than once and concurrently: the first call
// does the work, the others wait for it (or their own ctx) and return
// its result. That ryll needed SIGTERM or SIGKILL is not an error of
// Stop; it shows in ExitErr's Signal and in the log.
func (p *Process) Stop(ctx context.Context) error {
	return p.stopOnce.Do(ctx, "stop ryll", func() error { return p.stop(ctx) })
}

func (p *Process) stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopCalled = true
	p.mu.Unlock()
	// Wait for a Start in progress, then look at what it left.
	p.startMu.Lock()
	p.mu.Lock()
	res := p.res
	p.mu.Unlock()
	p.startMu.Unlock()

	var errs []error
	if err := p.child.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if res != nil {
		if p.child.ExitError() == nil {
			// A ryll still running would write to a closed file: keep the
			// log open, remove only the directory.
			res = &resources{sockDir: res.sockDir}
		}
		if err := res.release(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop ryll: %w", err)
	}
	return nil
}

// SocketPath is where ryll's control socket is (or will be): a file in a
// private 0700 directory that Stop removes.
func (p *Process) SocketPath() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.res == nil {
		return ""
	}
	return p.res.sockPath
}

// Pid is ryll's process id (and process group id), or 0 before Start.
func (p *Process) Pid() int { return p.child.Pid() }

// Exited is closed once ryll has exited and its output has been drained
// and logged, at any time and for any reason. The loadtest selects on it
// next to its own work so a run fails the moment ryll goes away. It is
// never closed for a Process that did not start.
func (p *Process) Exited() <-chan struct{} { return p.child.Done() }

// ExitErr is nil while ryll runs and an *ExitError once it has exited.
// It is never nil after an exit, even with status 0: see ExitError.
func (p *Process) ExitErr() error {
	if ee := p.child.ExitError(); ee != nil {
		return (*ExitError)(ee)
	}
	return nil
}

// ExitStatus is ryll's exit status (-1 if a signal ended it) and whether
// it has exited at all. A status of 0 does not mean success.
func (p *Process) ExitStatus() (status int, exited bool) {
	if ee := p.child.ExitError(); ee != nil {
		return ee.Status, true
	}
	return 0, false
}

// Tail is the last lines ryll printed (stdout and stderr interleaved by
// line), with secrets scrubbed, for failure messages.
func (p *Process) Tail() []string { return p.child.Tail() }
