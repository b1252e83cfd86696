// Command latency-run runs the loadtest's command line (gotestsum, which
// runs test2json, which runs the loadtest binary) so that a cancel keeps
// its results: junit.xml, the CSV, sidecar and plot, a deleted server.
//
//	latency-run [-grace 2m] -- gotestsum --junitfile results/junit.xml ... -- latency.test ...
//
// A CI runner cancels by signalling the whole process group, and a
// signal that reaches gotestsum, test2json and the loadtest at once ends
// the first two before the loadtest has written anything (Go programs
// die of SIGTERM unless they handle it): junit.xml is lost, and the
// loadtest dies of SIGPIPE writing to them. So latency-run starts the
// command in a session of its own, out of reach of a group signal and of
// the terminal, and when it is told to stop (SIGINT, SIGTERM, SIGHUP, or
// its parent dying, which Linux turns into a SIGHUP) it signals only the
// loadtest, SIGTERM, and waits: the loadtest writes what it collected,
// stops ryll, deletes the server and exits; test2json and gotestsum
// report it and write junit.xml. A second SIGINT or SIGTERM is passed on
// too (the same signal again within a second, such as make passing on
// the group's, is not). After -grace the whole session is killed.
//
// The loadtest is found through LATENCY_PID_FILE, which latency-run sets
// to a file in a private directory: the loadtest writes its pid there
// once it handles SIGTERM. Until then (still compiling, say) a stop
// request goes to the command's whole process group as SIGINT, which
// gotestsum and test2json survive and the Go toolchain takes as "stop".
//
// The command's output passes through latency-run, so a reader that went
// away (a cancelled runner's log pipe) never kills gotestsum: the output
// is then dropped. The exit status is the command's (128+n when a signal
// n ended it), and never 0 after a stop request.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// PIDFileVar names the file the loadtest writes its pid to.
const PIDFileVar = "LATENCY_PID_FILE"

// DefaultGrace is how long a stopped run may take to write its results
// and clean up before the whole session is killed: the loadtest's own
// cleanup is bounded well within it.
const DefaultGrace = 2 * time.Minute

// coalesce: a signal equal to the one passed on less than this long ago
// is the same request arriving twice (from the group and from make), not
// a second one.
const coalesce = time.Second

// drainWait bounds the wait for the command's output after it exited: a
// process it left behind may hold the pipes open.
const drainWait = 5 * time.Second

const prog = "latency-run"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	grace := fs.Duration("grace", DefaultGrace, "how long a stopped run may take to write its results before everything is killed")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [-grace %s] -- command [arguments]\n", prog, DefaultGrace)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 || *grace <= 0 {
		fs.Usage()
		return 2
	}
	// Our own writes to a dead stdout must fail, not kill us.
	signal.Ignore(syscall.SIGPIPE)
	// Hear the signals before anything can send them; and make the
	// parent's death one of them (Linux), so that killing make alone
	// stops the run rather than leaving it orphaned.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := dieWithParent(syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "%s: %v (a kill of the parent alone will not stop the run)\n", prog, err)
	}

	dir, err := tmpdir.Make("latency-run-")
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	defer os.RemoveAll(dir)
	r := &runner{pidFile: dir + string(os.PathSeparator) + "loadtest.pid", stderr: stderr, grace: *grace}
	return r.run(fs.Args(), stdout, sigs)
}

type runner struct {
	pidFile string
	stderr  io.Writer
	grace   time.Duration

	pgid     int
	stopping bool
	last     os.Signal
	lastAt   time.Time
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "%s: "+format+"\n", append([]any{prog}, args...)...)
}

func (r *runner) run(argv []string, stdout io.Writer, sigs <-chan os.Signal) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), PIDFileVar+"="+r.pidFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = &dropOnError{w: stdout}, &dropOnError{w: r.stderr}
	// A process the command leaves behind may hold its output open; the
	// command's own exit is what counts.
	cmd.WaitDelay = drainWait
	if err := cmd.Start(); err != nil {
		r.logf("start %s: %v", argv[0], err)
		return 2
	}
	r.pgid = cmd.Process.Pid // a session leader leads its process group
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var graceC <-chan time.Time
	var waitErr error
wait:
	for {
		select {
		case sig := <-sigs:
			r.onSignal(sig)
			if graceC == nil {
				t := time.NewTimer(r.grace)
				defer t.Stop()
				graceC = t.C
			}
		case <-graceC:
			r.logf("the run did not finish within -grace=%s of the stop request: killing it (run `make sweep` for anything it left)", r.grace)
			_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
			graceC = nil
		case waitErr = <-done:
			break wait
		}
	}
	code := exitCode(cmd, waitErr)
	// What the command left behind (the loadtest, if gotestsum died
	// first) is asked to stop, then killed.
	r.reap(sigs)
	if r.stopping && code == 0 {
		r.logf("%s exited 0 after a stop request; exiting 1", argv[0])
		code = 1
	}
	return code
}

// onSignal passes a stop request on, unless it repeats one: a SIGHUP
// (the parent died, the terminal went) once stopping, or the signal just
// passed on, again within coalesce.
func (r *runner) onSignal(sig os.Signal) {
	now := time.Now()
	if (sig == syscall.SIGHUP && r.stopping) || (sig == r.last && now.Sub(r.lastAt) < coalesce) {
		return
	}
	first := !r.stopping
	r.stopping, r.last, r.lastAt = true, sig, now
	how := r.forward()
	if first {
		r.logf("received %v: %s; waiting up to %s for the results to be written", sig, how, r.grace)
	} else {
		r.logf("received %v again: %s", sig, how)
	}
}

// forward sends the stop signal to the loadtest, or to the command's
// group when the loadtest is not known yet, and says what it did.
func (r *runner) forward() string {
	if pid, ok := r.loadtestPID(); ok {
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			return fmt.Sprintf("sent SIGTERM to the loadtest (pid %d)", pid)
		}
	}
	if err := syscall.Kill(-r.pgid, syscall.SIGINT); err != nil {
		return fmt.Sprintf("could not signal the command's process group %d: %v", r.pgid, err)
	}
	return fmt.Sprintf("the loadtest has not started; sent SIGINT to the command's process group %d", r.pgid)
}

// loadtestPID reads the pid file, and believes it only for a process in
// the command's own group (a stale file must not aim at a stranger).
func (r *runner) loadtestPID() (int, bool) {
	b, err := os.ReadFile(r.pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	if g, err := syscall.Getpgid(pid); err != nil || g != r.pgid {
		return 0, false
	}
	return pid, true
}

// reap stops what is left in the command's group once the command has
// exited: SIGTERM to the loadtest (or SIGINT to the group), then SIGKILL
// after the grace. Nothing is left when it returns, or it says so.
func (r *runner) reap(sigs <-chan os.Signal) {
	if !groupAlive(r.pgid) {
		return
	}
	r.logf("the command exited, but processes of its group run on: %s", r.forward())
	deadline := time.NewTimer(r.grace)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for groupAlive(r.pgid) {
		select {
		case sig := <-sigs:
			r.onSignal(sig)
		case <-tick.C:
		case <-deadline.C:
			r.logf("killing process group %d after -grace=%s", r.pgid, r.grace)
			_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
			return
		}
	}
}

// groupAlive reports whether any process is in group pgid.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// dropOnError passes the command's output on; once the writer fails (a
// reader that went away) the rest is dropped, so the command never
// blocks on, or dies of, a dead pipe.
type dropOnError struct {
	mu     sync.Mutex
	w      io.Writer
	failed bool
}

func (d *dropOnError) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.failed {
		if _, err := d.w.Write(p); err != nil {
			d.failed = true
		}
	}
	return len(p), nil
}

// exitCode is the command's status as a shell reports it.
func exitCode(cmd *exec.Cmd, err error) int {
	ps := cmd.ProcessState
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if code := ps.ExitCode(); code != 0 || err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return code
	}
	return 1
}
