package childproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors for misuse of a Child, for errors.Is.
var (
	// ErrAlreadyStarted is returned by a second Start: a Child runs one
	// process, once, so its output, exit and stop are unambiguous.
	ErrAlreadyStarted = errors.New("child process already started")
	// ErrStopped is returned by Start after Stop.
	ErrStopped = errors.New("child process already stopped")
)

// Defaults for zero fields of Spec.
const (
	// DefaultDrainGrace bounds how long, after the child exited, its
	// output is still read. Only a descendant that inherited the pipe and
	// outlived the child can make it run out.
	DefaultDrainGrace = 2 * time.Second
	// DefaultKillGrace is the wait after the final SIGKILL, only for the
	// kernel to end the process and the reaper to see it.
	DefaultKillGrace = 2 * time.Second
)

// maxLine is the longest output line kept whole; a longer one is passed
// on in pieces (each still scrubbed, but a secret spanning a cut would
// escape, so the bound is far above any log line).
const maxLine = 64 << 10

// ansiEscape matches terminal colour sequences, which Rust loggers may
// emit even into a pipe; they make logs and error messages unreadable.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// Spec says how a Child is supervised, whatever it runs.
type Spec struct {
	// Words name the child in messages and logs.
	Words
	// Logger receives the supervisor's own messages (exit, stop rungs).
	// Nil discards them.
	Logger *slog.Logger
	// TailLines is how many last output lines are kept for error
	// messages. Zero means DefaultTailLines.
	TailLines int
	// DrainGrace bounds the reading of output after the child exited.
	// Zero means DefaultDrainGrace.
	DrainGrace time.Duration
	// Ladder is how Stop ends the child.
	Ladder Ladder
}

// Ladder is the way Stop ends a child: each gentle rung in turn, each
// followed by a bounded wait for the child to exit, then SIGKILL to the
// whole process group. When Stop's context ends, the gentle rungs are
// skipped (or cut short) and SIGKILL is sent at once, so Stop never
// leaves the child behind.
type Ladder struct {
	// Rungs are the gentle steps, in order. None means straight to
	// SIGKILL.
	Rungs []Rung
	// Kill is the wait after SIGKILL. Zero means DefaultKillGrace.
	Kill time.Duration
}

// Rung is one gentle step of a Ladder: a signal to the child itself (not
// its group, so the child can shut down in order), or a request of the
// owner's own (QEMU's QMP quit).
type Rung struct {
	// Signal is sent to the child when Ask is nil.
	Signal syscall.Signal
	// Ask, when set, asks the child to exit instead of a signal; its
	// context ends with the rung's Grace. An error means the request
	// could not be made (a broken QMP connection), and the ladder moves
	// on at once instead of waiting out the Grace.
	Ask func(ctx context.Context) error
	// Name names Ask in logs ("QMP quit"); a signal names itself.
	Name string
	// Grace is the longest wait for the child to exit after this step.
	Grace time.Duration
}

func (r Rung) step() string {
	if r.Ask != nil {
		return r.Name
	}
	return SignalName(r.Signal)
}

// Command is what a Child runs.
type Command struct {
	// Path is the executable: a path, or a name looked up in PATH.
	Path string
	// Args are the arguments, without argv[0].
	Args []string
	// Env is the child's whole environment: nothing is inherited, since
	// the harness's environment holds credentials no child needs.
	Env []string
	// Dir is the working directory; empty means the harness's.
	Dir string
	// Output receives every line the child prints on stdout or stderr.
	// Nil keeps them in the Tail only.
	Output Sink
	// Stdin, if set, is the child's standard input (typically the read
	// end of an os.Pipe whose write end the owner keeps, to talk to the
	// child; the owner closes its copy of this end once Start returned).
	// Nil is the null device.
	Stdin *os.File
}

// Child owns one child process from Start to Stop. Make it with New.
type Child struct {
	spec Spec
	log  *slog.Logger
	tail *Tail

	// startMu serialises Start and Stop, so Stop never races a process
	// that Start is still bringing up.
	startMu sync.Mutex

	mu      sync.Mutex
	started bool
	stopped bool
	phase   Phase
	cmd     *exec.Cmd
	pid     int
	out     *os.File // the read end of the output pipe; the watcher closes it
	exitErr *ExitError

	reaped chan struct{} // closed once the process was waited for (releases StartTied's thread)
	done   chan struct{} // closed once reaped and its output drained; exitErr is set
	stop   Once
}

// New returns an unstarted Child. Done exists from here on (and never
// closes for a Child that does not start), so an owner can hand it out
// before the process runs.
func New(spec Spec) *Child {
	if spec.TailLines == 0 {
		spec.TailLines = DefaultTailLines
	}
	if spec.DrainGrace <= 0 {
		spec.DrainGrace = DefaultDrainGrace
	}
	if spec.Ladder.Kill <= 0 {
		spec.Ladder.Kill = DefaultKillGrace
	}
	if spec.Name == "" {
		spec.Name = "child"
	}
	logger := spec.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Child{
		spec:   spec,
		log:    logger,
		tail:   NewTail(spec.TailLines),
		reaped: make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// Start runs cmd in its own process group, tied to the harness, with its
// output drained. It returns once the process runs (readiness is the
// owner's). ctx bounds the start only. It refuses to run twice
// (ErrAlreadyStarted) or after Stop (ErrStopped); on failure nothing is
// left running.
func (c *Child) Start(ctx context.Context, cmd Command) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	c.mu.Lock()
	switch {
	case c.started:
		c.mu.Unlock()
		return ErrAlreadyStarted
	case c.stopped:
		c.mu.Unlock()
		return ErrStopped
	}
	c.started = true
	c.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start %s: %w", c.spec.Name, context.Cause(ctx))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create %s output pipe: %w", c.spec.Name, err)
	}
	ec := exec.Command(cmd.Path, cmd.Args...)
	ec.Env = cmd.Env
	if ec.Env == nil {
		ec.Env = []string{} // explicit: nil would inherit ours
	}
	ec.Dir = cmd.Dir
	if cmd.Stdin != nil {
		ec.Stdin = cmd.Stdin
	}
	// One pipe for both streams keeps their lines in the order written.
	ec.Stdout = w
	ec.Stderr = w
	ec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := StartTied(ec, c.reaped); err != nil {
		_ = r.Close()
		_ = w.Close()
		return fmt.Errorf("start %s %s: %w", c.spec.Name, cmd.Path, err)
	}
	// Only the child keeps the write end; ours must go or the drain never
	// sees EOF.
	_ = w.Close()
	c.mu.Lock()
	c.cmd, c.pid, c.out = ec, ec.Process.Pid, r
	c.mu.Unlock()

	drained := make(chan struct{})
	go c.drain(r, cmd.Output, drained)
	go c.watch(ec, r, drained)
	return nil
}

// drain records the child's output line by line until EOF (or until the
// watcher closes the pipe). It must always run: a child whose pipe fills
// up blocks.
func (c *Child) drain(r *os.File, out Sink, done chan<- struct{}) {
	defer close(done)
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			c.record(out, line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// record passes one line (or a piece of an over-long one) to the Sink
// and the tail.
func (c *Child) record(out Sink, raw []byte) {
	text := ansiEscape.ReplaceAllString(strings.TrimRight(string(raw), "\r\n"), "")
	if out != nil {
		text = out.Line(text)
	}
	c.tail.Add(text)
}

// watch reaps the child, lets the drain finish (bounded) and publishes
// the exit. Done closes only after that, so the ExitError's tail holds
// the child's last words.
func (c *Child) watch(cmd *exec.Cmd, r *os.File, drained <-chan struct{}) {
	_ = cmd.Wait() // the outcome is read from ProcessState below
	close(c.reaped)
	pid := cmd.Process.Pid

	var heldBy []int
	timer := time.NewTimer(c.spec.DrainGrace)
	select {
	case <-drained:
	case <-timer.C:
		// The child is gone; whoever holds the pipe is a descendant that
		// outlived it. Name it, and stop reading.
		heldBy = pipeHolders(r)
		c.log.Warn(c.spec.Name+" exited, but a process it started still holds its output open; no longer reading it",
			"pid", pid, "after", c.spec.DrainGrace, "held_by", heldBy)
		_ = r.Close() // ends the drain's read
		<-drained
	}
	timer.Stop()
	_ = r.Close()

	ee := &ExitError{Pid: pid, Status: -1, Tail: c.tail.Snapshot(), HeldBy: heldBy, words: c.spec.Words}
	if st := cmd.ProcessState; st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ee.Signal = SignalName(ws.Signal())
		} else {
			ee.Status = st.ExitCode()
		}
	}
	c.mu.Lock()
	ee.Phase = c.phase
	c.exitErr = ee
	c.mu.Unlock()

	level := slog.LevelWarn
	if ee.Phase == PhaseStopping {
		level = slog.LevelInfo
	}
	c.log.Log(context.Background(), level, c.spec.Name+" exited", "pid", pid, "status", ee.Status,
		"signal", ee.Signal, "phase", ee.Phase.String())
	close(c.done)
}

// MarkReady records that the owner found the child ready: an exit from
// now on is a loss mid-run, not a failed start.
func (c *Child) MarkReady() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase == PhaseStarting {
		c.phase = PhaseRunning
	}
}

// Done is closed once the child has exited, for any reason, and its
// output has been drained (or given up on, DrainGrace after the exit).
// It is never closed for a Child that did not start.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is nil while the child runs and an *ExitError once Done is closed.
func (c *Child) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exitErr == nil {
		return nil
	}
	return c.exitErr
}

// ExitError is Err as its type: nil while the child runs.
func (c *Child) ExitError() *ExitError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exitErr
}

// Pid is the child's process id (and process group id), or 0 before
// Start.
func (c *Child) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// Tail is the child's last output lines, as the Sink returned them.
func (c *Child) Tail() []string { return c.tail.Snapshot() }

// gone reports whether the process has been reaped.
func (c *Child) gone() bool {
	select {
	case <-c.reaped:
		return true
	default:
		return false
	}
}

// Stop ends the child by its Ladder and returns once it has been reaped
// and its output drained, whatever ctx says about the gentle rungs: the
// last rung (SIGKILL to the process group) always runs when needed, and
// its wait is bounded by Ladder.Kill. Once the child is gone, anything
// left in its process group is killed too.
//
// Stop is safe to call more than once and concurrently: the first call
// does the work, the others wait for it (or their own ctx) and return
// its result. Stopping a Child that never started is a no-op, and it can
// no longer start. That the child needed SIGKILL is not an error; it
// shows in Err. The error says when a signal could not be sent, or when
// the process is still running after SIGKILL (which only the kernel can
// cause: a process stuck in uninterruptible sleep).
func (c *Child) Stop(ctx context.Context) error {
	return c.stop.Do(ctx, "stop "+c.spec.Name, func() error { return c.climb(ctx) })
}

// Kill is Stop without the gentle rungs: SIGKILL to the process group at
// once, for the rollback of a start that failed after the child ran.
func (c *Child) Kill() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return c.Stop(ctx)
}

// climb runs the ladder.
func (c *Child) climb(ctx context.Context) error {
	// Wait for a Start in progress, then look at what it left.
	c.startMu.Lock()
	c.mu.Lock()
	c.stopped = true
	cmd := c.cmd
	if cmd != nil {
		c.phase = PhaseStopping
	}
	c.mu.Unlock()
	c.startMu.Unlock()
	if cmd == nil {
		return nil
	}

	var errs []error
	wasRunning := !c.gone()
	for i, r := range c.spec.Ladder.Rungs {
		if c.gone() || ctx.Err() != nil {
			break
		}
		if err := c.rung(ctx, i, r); err != nil {
			errs = append(errs, err)
		}
	}
	if !c.gone() {
		c.log.Warn("sending SIGKILL to "+c.spec.Name+"'s process group", "pid", c.pid, "grace", c.spec.Ladder.Kill)
		if err := c.signal(syscall.SIGKILL, true); err != nil {
			errs = append(errs, err)
		}
		timer := time.NewTimer(c.spec.Ladder.Kill)
		select { // only the kernel can delay us now: ctx does not cut this
		case <-c.reaped:
		case <-timer.C:
		}
		timer.Stop()
	} else if err := c.killLeftovers(wasRunning); err != nil {
		errs = append(errs, err)
	}
	if !c.gone() {
		errs = append(errs, fmt.Errorf("%s (pid %d) is still running %s after SIGKILL to its process group; "+
			"it is a local process (likely in uninterruptible sleep: ps -o pid,stat,wchan,cmd -g %d), end it with kill -KILL -- -%d",
			c.spec.Name, c.pid, c.spec.Ladder.Kill, c.pid, c.pid))
		return errors.Join(errs...)
	}
	// Reaped: the watcher publishes the exit within DrainGrace. The guard
	// only keeps a bug from hanging Stop.
	guard := time.NewTimer(c.spec.DrainGrace + time.Second)
	defer guard.Stop()
	select {
	case <-c.done:
	case <-guard.C:
		errs = append(errs, fmt.Errorf("%s (pid %d) exited, but its exit was not published within %s",
			c.spec.Name, c.pid, c.spec.DrainGrace+time.Second))
	}
	return errors.Join(errs...)
}

// rung runs one gentle step and waits (bounded by its grace and ctx) for
// the child to exit.
func (c *Child) rung(ctx context.Context, i int, r Rung) error {
	if i == 0 {
		c.log.Info("stopping "+c.spec.Name, "pid", c.pid, "step", r.step(), "grace", r.Grace)
	} else {
		c.log.Warn(c.spec.Name+" did not exit; escalating", "pid", c.pid, "step", r.step(), "grace", r.Grace)
	}
	rctx, cancel := context.WithTimeout(ctx, r.Grace)
	defer cancel()
	if r.Ask != nil {
		if err := r.Ask(rctx); err != nil {
			c.log.Info("could not ask "+c.spec.Name+" to exit; moving on", "pid", c.pid, "step", r.step(), "err", err)
			return nil
		}
	} else if err := c.signal(r.Signal, false); err != nil {
		return err
	}
	select {
	case <-c.reaped:
	case <-rctx.Done():
	}
	return nil
}

// killLeftovers sends SIGKILL to what is left of the child's process
// group once the child itself is gone: helpers it started stay in its
// group and may hold its output open. A group id is free for reuse once
// its last member is gone, so the group is only killed when it is surely
// still the child's: the child was reaped just now (during this Stop),
// or a process holding the child's output open is still in the group.
func (c *Child) killLeftovers(justReaped bool) error {
	if !justReaped && !c.groupPinned() {
		return nil
	}
	if err := syscall.Kill(-c.pid, 0); err != nil {
		return nil // no one left (ESRCH), or not ours to signal (EPERM)
	}
	c.log.Warn(c.spec.Name+" exited, but processes of its group are still running; sending them SIGKILL", "pgid", c.pid)
	return c.signal(syscall.SIGKILL, true)
}

// groupPinned reports whether a process that holds the child's output
// open is in the child's process group: it keeps the group id from being
// reused.
func (c *Child) groupPinned() bool {
	var holders []int
	if ee := c.ExitError(); ee != nil {
		holders = ee.HeldBy // reading was given up on; they may live on
	} else {
		holders = pipeHolders(c.out) // still reading: who keeps it open?
	}
	for _, pid := range holders {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == c.pid {
			return true
		}
	}
	return false
}

// signal sends sig to the child, or with group to its whole process
// group. A child already reaped is not signalled alone: its pid may
// belong to someone else by now.
func (c *Child) signal(sig syscall.Signal, group bool) error {
	var err error
	switch {
	case group:
		err = syscall.Kill(-c.pid, sig)
	case c.gone():
		return nil
	default:
		err = c.cmd.Process.Signal(sig)
	}
	if err == nil || errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("send %s to %s (pid %d): %w", SignalName(sig), c.spec.Name, c.pid, err)
}
