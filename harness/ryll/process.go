package ryll

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
	// drainGrace bounds how long, after ryll exited, we keep reading its
	// output for lines still in the pipes. Only a process that inherited
	// the pipes and outlived ryll can make us wait this long.
	drainGrace = 2 * time.Second
	// maxLine is the longest output line kept whole; a longer one is cut
	// into pieces (each still scrubbed, but a secret spanning a cut would
	// escape, so the bound is far above any log line of ryll's).
	maxLine = 64 << 10
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

// ansiEscape matches terminal colour sequences, which Rust loggers may
// emit even into a pipe; they make logs and error messages unreadable.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// Process is one ryll child. It is single-use: Start once, Stop once
// (Stop may be called again; it returns the first result).
//
// A Process is watched for its whole life. Because ryll exits 0 when its
// SPICE session fails, every exit is reported as an *ExitError and
// Exited fires whatever the status.
type Process struct {
	spec  Spec
	grace Grace
	log   *slog.Logger
	red   *secret.Redactor
	tail  *childproc.Tail

	// startMu serialises Start and Stop, so Stop never races a child
	// that Start is still bringing up.
	startMu sync.Mutex

	mu         sync.Mutex
	started    bool
	stopCalled bool
	phase      Phase
	cmd        *exec.Cmd
	pid        int
	sockDir    string
	sockPath   string
	logFile    *os.File
	logErr     error
	exitErr    *ExitError

	reaped   chan struct{} // closed once ryll was waited for (releases startTied's thread)
	exited   chan struct{} // closed once ryll exited, output drained, log closed
	stopDone chan struct{} // closed when the first Stop finished
	stopErr  error
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
	n := spec.TailLines
	if n == 0 {
		n = DefaultTailLines
	}
	return &Process{
		spec:     spec,
		grace:    spec.Grace.withDefaults(),
		log:      logger.With("component", "ryll"),
		red:      secret.NewRedactor(io.Discard, spec.secrets()...), // replaced by the log in Start
		tail:     childproc.NewTail(n),
		reaped:   make(chan struct{}),
		exited:   make(chan struct{}),
		stopDone: make(chan struct{}),
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
	p.mu.Lock()
	switch {
	case p.started:
		p.mu.Unlock()
		return ErrAlreadyStarted
	case p.stopCalled:
		p.mu.Unlock()
		return ErrStopped
	}
	p.started = true
	p.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start ryll: %w", err)
	}
	binary, err := exec.LookPath(p.spec.Binary)
	if err != nil {
		return fmt.Errorf("find ryll binary %q: %w", p.spec.Binary, err)
	}
	env, err := childEnv(os.LookupEnv, p.spec.ExtraEnv)
	if err != nil {
		return fmt.Errorf("build ryll environment: %w", err)
	}

	// Everything below is released by this deferred function if Start
	// fails, in reverse order of acquisition.
	var (
		logFile      *os.File
		sockDir      string
		pipes        []*os.File
		cmd          *exec.Cmd
		childStarted bool
	)
	defer func() {
		if err == nil {
			return
		}
		if childStarted {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			close(p.reaped)
		}
		for _, f := range pipes {
			_ = f.Close()
		}
		if sockDir != "" {
			_ = os.RemoveAll(sockDir)
		}
		if logFile != nil {
			_ = logFile.Close()
		}
	}()

	mode := os.O_TRUNC
	if p.spec.AppendLog {
		mode = os.O_APPEND
	}
	logFile, err = os.OpenFile(p.spec.LogPath, os.O_WRONLY|os.O_CREATE|mode, 0o600)
	if err != nil {
		return fmt.Errorf("open ryll log: %w", err)
	}
	p.red = secret.NewRedactor(logFile, p.spec.secrets()...)

	sockDir, sockPath, err := makeSocketDir()
	if err != nil {
		return err
	}
	if vv := p.spec.consoleFile(); vv != "" {
		if err := os.WriteFile(filepath.Join(sockDir, directFileName), []byte(vv), 0o600); err != nil {
			return fmt.Errorf("write the .vv file for direct console %s: %w", p.spec.Direct, err)
		}
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create ryll stdout pipe: %w", err)
	}
	pipes = append(pipes, outR, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create ryll stderr pipe: %w", err)
	}
	pipes = append(pipes, errR, errW)

	cmd = exec.Command(binary, p.spec.args(sockDir, sockPath)...)
	cmd.Env = env
	cmd.Stdout = outW
	cmd.Stderr = errW
	// Its own process group: a terminal's Ctrl-C reaches the harness, not
	// ryll behind its back, and SIGKILL can take any helper ryll spawned.
	// Tied to the harness: if it dies, even by SIGKILL, so does ryll.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err = childproc.StartTied(cmd, p.reaped); err != nil {
		return fmt.Errorf("start ryll %s: %w", binary, err)
	}
	childStarted = true

	p.mu.Lock()
	stopped := p.stopCalled
	if !stopped {
		p.cmd, p.pid = cmd, cmd.Process.Pid
		p.sockDir, p.sockPath, p.logFile = sockDir, sockPath, logFile
	}
	p.mu.Unlock()
	if stopped {
		// Stop was called while we were starting; it is waiting for us
		// and will find nothing to stop, so the child is ours to kill.
		err = ErrStopped
		return err
	}

	// Only the child keeps the write ends; we must close ours or the
	// drains never see EOF.
	_ = outW.Close()
	_ = errW.Close()
	drained := make(chan struct{}, 2)
	go p.drain(outR, drained)
	go p.drain(errR, drained)
	go p.wait(cmd, drained, outR, errR)

	p.log.Info("started ryll", "pid", p.pid, "args", p.spec.redactedArgs(sockDir, sockPath),
		"socket", sockPath, "log", p.spec.LogPath)
	return nil
}

// drain copies one output stream to the log and the tail, line by line,
// until EOF. It must always run: a child whose pipe fills up blocks.
func (p *Process) drain(r *os.File, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			p.record(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// record writes one line (or a piece of an over-long one) to the log and
// the tail. Lines are always written whole so stdout and stderr never
// interleave inside a line, and the Redactor never holds a partial one.
func (p *Process) record(raw []byte) {
	text := ansiEscape.ReplaceAllString(strings.TrimRight(string(raw), "\r\n"), "")
	if _, err := p.red.Write([]byte(text + "\n")); err != nil {
		p.mu.Lock()
		if p.logErr == nil {
			p.logErr = fmt.Errorf("write ryll log %s: %w", p.spec.LogPath, err)
		}
		p.mu.Unlock()
	}
	p.tail.Add(p.red.Scrub(text))
}

// wait reaps ryll, lets the drains finish (bounded), closes the log, and
// publishes the exit. Exited fires only after all that, so an ExitError's
// tail includes ryll's last words.
func (p *Process) wait(cmd *exec.Cmd, drained <-chan struct{}, pipes ...*os.File) {
	_ = cmd.Wait() // the outcome is read from ProcessState below
	close(p.reaped)

	timer := time.NewTimer(drainGrace)
	for n := 0; n < 2; {
		select {
		case <-drained:
			n++
		case <-timer.C:
			// Something else holds the pipes open; stop reading.
			p.log.Warn("ryll output still open after it exited; closing", "after", drainGrace)
			for _, f := range pipes {
				_ = f.Close()
			}
		}
	}
	timer.Stop()
	for _, f := range pipes {
		_ = f.Close()
	}

	logErr := p.red.Flush()
	if err := p.logFile.Close(); logErr == nil {
		logErr = err
	}

	ee := &ExitError{Status: -1, Tail: p.tail.Snapshot()}
	if st := cmd.ProcessState; st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ee.Signal = signalName(ws.Signal())
		} else {
			ee.Status = st.ExitCode()
		}
	}

	p.mu.Lock()
	ee.Phase = p.phase
	p.exitErr = ee
	if logErr != nil && p.logErr == nil {
		p.logErr = fmt.Errorf("close ryll log %s: %w", p.spec.LogPath, logErr)
	}
	p.mu.Unlock()

	level := slog.LevelWarn
	if ee.Phase == PhaseStopping {
		level = slog.LevelInfo
	}
	p.log.Log(context.Background(), level, "ryll exited", "pid", p.pid, "status", ee.Status,
		"signal", ee.Signal, "phase", ee.Phase.String())
	close(p.exited)
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
	p.mu.Lock()
	running := p.cmd != nil
	p.mu.Unlock()
	if !running {
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
				p.mu.Lock()
				if p.phase == PhaseStarting {
					p.phase = PhaseRunning
				}
				p.mu.Unlock()
				p.log.Info("ryll ready", "pid", p.pid, "after", time.Since(start).Round(time.Millisecond), "probes", attempts)
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
		case <-p.exited:
			return finish(p.ExitErr())
		case <-deadline.C:
			return finish(p.readyTimeout(timeout, attempts, inFlight, lastErr))
		case <-ctx.Done():
			return finish(fmt.Errorf("wait for ryll control socket: %w", ctx.Err()))
		case <-progress.C:
			p.log.Info("waiting for ryll control socket", "pid", p.pid,
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
	p.mu.Lock()
	if p.stopCalled {
		p.mu.Unlock()
		select {
		case <-p.stopDone:
			return p.stopErr
		case <-ctx.Done():
			return fmt.Errorf("stop ryll: waiting for another Stop: %w", ctx.Err())
		}
	}
	p.stopCalled = true
	p.mu.Unlock()

	// Wait for a Start in progress, then look at what it left.
	p.startMu.Lock()
	p.mu.Lock()
	cmd := p.cmd
	if cmd != nil {
		p.phase = PhaseStopping
	}
	p.mu.Unlock()
	p.startMu.Unlock()

	if cmd != nil {
		p.stopErr = p.stop(ctx, cmd)
	}
	close(p.stopDone)
	return p.stopErr
}

// stop runs the signal ladder and the clean-up for a started child.
func (p *Process) stop(ctx context.Context, cmd *exec.Cmd) error {
	rungs := []struct {
		sig   syscall.Signal
		grace time.Duration
	}{
		{syscall.SIGINT, p.grace.Interrupt},
		{syscall.SIGTERM, p.grace.Terminate},
		{syscall.SIGKILL, p.grace.Kill},
	}
	var errs []error
	gone := false
	select {
	case <-p.exited:
		gone = true
	default:
	}
	for _, r := range rungs {
		if gone {
			break
		}
		if r.sig != syscall.SIGKILL && ctx.Err() != nil {
			continue // out of time: straight to SIGKILL
		}
		p.log.Info("stopping ryll", "pid", p.pid, "signal", signalName(r.sig), "grace", r.grace)
		if err := p.signal(cmd, r.sig); err != nil {
			errs = append(errs, err)
		}
		timer := time.NewTimer(r.grace)
		wait := ctx.Done()
		if r.sig == syscall.SIGKILL {
			wait = nil // only the kernel can delay us now; always wait the grace
		}
		select {
		case <-p.exited:
			gone = true
		case <-timer.C:
			p.log.Warn("ryll did not exit after signal", "pid", p.pid, "signal", signalName(r.sig), "grace", r.grace)
		case <-wait:
		}
		timer.Stop()
	}
	if !gone {
		errs = append(errs, fmt.Errorf("ryll (pid %d) still running %s after SIGKILL", p.pid, p.grace.Kill))
	}

	p.mu.Lock()
	sockDir, logErr := p.sockDir, p.logErr
	p.mu.Unlock()
	if err := os.RemoveAll(sockDir); err != nil {
		errs = append(errs, fmt.Errorf("remove control socket directory: %w", err))
	}
	if gone && logErr != nil {
		errs = append(errs, logErr)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop ryll: %w", err)
	}
	return nil
}

// signal sends sig. SIGINT and SIGTERM go to ryll itself, through
// os.Process, which knows if ryll was already reaped; SIGKILL goes to the
// whole process group so nothing ryll spawned survives it.
func (p *Process) signal(cmd *exec.Cmd, sig syscall.Signal) error {
	var err error
	if sig == syscall.SIGKILL {
		err = syscall.Kill(-cmd.Process.Pid, sig)
	} else {
		err = cmd.Process.Signal(sig)
	}
	if err == nil || errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("send %s to ryll (pid %d): %w", signalName(sig), cmd.Process.Pid, err)
}

// SocketPath is where ryll's control socket is (or will be): a file in a
// private 0700 directory that Stop removes.
func (p *Process) SocketPath() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sockPath
}

// Pid is ryll's process id (and process group id), or 0 before Start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Exited is closed once ryll has exited and its output has been drained
// and logged, at any time and for any reason. The loadtest selects on it
// next to its own work so a run fails the moment ryll goes away. It is
// never closed for a Process that did not start.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is nil while ryll runs and an *ExitError once it has exited.
// It is never nil after an exit, even with status 0: see ExitError.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exitErr == nil {
		return nil
	}
	return p.exitErr
}

// ExitStatus is ryll's exit status (-1 if a signal ended it) and whether
// it has exited at all. A status of 0 does not mean success.
func (p *Process) ExitStatus() (status int, exited bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exitErr == nil {
		return 0, false
	}
	return p.exitErr.Status, true
}

// Tail is the last lines ryll printed (stdout and stderr interleaved by
// line), with secrets scrubbed, for failure messages.
func (p *Process) Tail() []string { return p.tail.Snapshot() }
