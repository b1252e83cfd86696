// Command latency-run runs the loadtest's command line (gotestsum, which
// runs test2json, which runs the loadtest binary) so that a cancel keeps
// its results: the JUnit file, the CSV, sidecar and plot, a deleted
// server.
//
//	latency-run [-grace 2m] [-junit results/junit.xml] -- gotestsum --junitfile {junit} ... -- latency.test ...
//
// A CI runner cancels by signalling the whole process group, and a
// signal that reaches gotestsum, test2json and the loadtest at once ends
// the first two before the loadtest has written anything (Go programs
// die of SIGTERM unless they handle it): the JUnit file is lost, and the
// loadtest dies of SIGPIPE writing to them. So latency-run starts the
// command in a session of its own, out of reach of a group signal and of
// the terminal, and when it is told to stop (SIGINT, SIGTERM, SIGHUP, or
// its parent dying, which Linux turns into a SIGHUP) it signals only the
// loadtest, SIGTERM, and waits: the loadtest writes what it collected,
// stops ryll, deletes the server and exits; test2json and gotestsum
// report it and write the JUnit file. A second SIGINT or SIGTERM is
// passed on too (the same signal again within a second, such as make
// passing on the group's, is not). After -grace the whole session is
// killed.
//
// A latency-run killed outright (SIGKILL to the whole group) can pass
// nothing on, so nothing of the command depends on it staying alive:
//   - the loadtest holds a lifeline (harness/lifeline), a named pipe
//     whose only writer is latency-run; the kernel closes it when
//     latency-run dies, and the loadtest then stops as on SIGTERM;
//   - the command's output goes to files in a private directory, which
//     latency-run copies to its own output as they grow, so gotestsum
//     never writes to a pipe whose reader died (it would die of SIGPIPE
//     before writing the JUnit file).
//
// For the same reason a reader of latency-run's output that went away
// (`| head -1`, a cancelled runner's log pipe) costs nothing: the rest of
// the output is dropped, and the run goes on.
//
// The loadtest is found through LATENCY_PID_FILE, which latency-run sets
// to a file in its private directory: the loadtest writes its pid there
// once it handles SIGTERM. Until then (still starting) a stop request
// goes to the command's whole process group as SIGINT, which gotestsum
// and test2json survive and the Go toolchain takes as "stop". Once the
// loadtest has exited, a stop request signals nobody: gotestsum and
// test2json are writing the report.
//
// With -junit FILE, every run keeps its own JUnit file: the run id is
// LATENCY_RUN_ID, or a new one that latency-run gives the loadtest; an
// argument {junit} becomes FILE with -<run> before its extension
// (results/junit-<run>.xml), and FILE becomes a link to it, the stable
// name of the latest run's report.
//
// The exit status is the command's (128+n when a signal n ended it), and
// never 0 after a stop request.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/lifeline"
	"github.com/shakenfist/kerbside-latency/harness/runid"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// PIDFileVar names the file the loadtest writes its pid to.
const PIDFileVar = lifeline.PIDFileVar

// DefaultGrace is how long a stopped run may take to write its results
// and clean up before the whole session is killed: the loadtest's own
// cleanup is bounded well within it.
const DefaultGrace = 2 * time.Minute

// coalesce: a signal equal to the one passed on less than this long ago
// is the same request arriving twice (from the group and from make), not
// a second one.
const coalesce = time.Second

// pollOutput is how often the command's output files are read for more.
const pollOutput = 20 * time.Millisecond

// JUnitArg is the argument that -junit replaces with the run's own JUnit
// file.
const JUnitArg = "{junit}"

const prog = "latency-run"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	grace := fs.Duration("grace", DefaultGrace, "how long a stopped run may take to write its results before everything is killed")
	junit := fs.String("junit", "", "the stable name of the latest run's JUnit file; the run's own replaces the argument "+JUnitArg)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [-grace %s] [-junit results/junit.xml] -- command [arguments]\n", prog, DefaultGrace)
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
	line, err := lifeline.Make(dir)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	defer line.Close()
	r := &runner{line: line, dir: dir, stderr: &dropOnError{w: stderr}, grace: *grace}
	argv, env, err := junitFile(fs.Args(), *junit, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	return r.run(argv, env, stdout, sigs)
}

// junitFile names the run's own JUnit file when junit is set: it
// replaces JUnitArg in argv, links junit to it (relative, replaced in
// one rename) and returns the environment additions (LATENCY_RUN_ID, when
// latency-run chose it).
func junitFile(argv []string, junit string, getenv func(string) string) ([]string, []string, error) {
	if junit == "" {
		return argv, nil, nil
	}
	var env []string
	id := getenv("LATENCY_RUN_ID")
	if id == "" {
		id = runid.New(time.Now())
		env = append(env, "LATENCY_RUN_ID="+id)
	} else if runid.Validate(id) != nil {
		// The loadtest will refuse it and say why; the report still
		// needs a name of its own.
		id = "invalid-" + runid.New(time.Now())
	}
	ext := filepath.Ext(junit)
	own := strings.TrimSuffix(junit, ext) + "-" + id + ext
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = a
		if a == JUnitArg {
			out[i] = own
		}
	}
	if err := os.MkdirAll(filepath.Dir(junit), 0o755); err != nil {
		return nil, nil, fmt.Errorf("create the directory of %s: %w", junit, err)
	}
	// The link is made before the run, so that the stable name is the
	// latest run's even when latency-run does not live to see its end.
	tmp := junit + ".tmp-" + strconv.Itoa(os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(own), tmp); err != nil {
		return nil, nil, fmt.Errorf("link %s to the run's own JUnit file: %w", junit, err)
	}
	if err := os.Rename(tmp, junit); err != nil {
		_ = os.Remove(tmp)
		return nil, nil, fmt.Errorf("link %s to the run's own JUnit file: %w", junit, err)
	}
	return out, env, nil
}

type runner struct {
	line   *lifeline.Line
	dir    string
	stderr io.Writer
	grace  time.Duration

	pgid     int
	loadtest int // its pid, once it wrote the pid file
	stopping bool
	last     os.Signal
	lastAt   time.Time
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "%s: "+format+"\n", append([]any{prog}, args...)...)
}

func (r *runner) run(argv, env []string, stdout io.Writer, sigs <-chan os.Signal) int {
	outFile, errFile := filepath.Join(r.dir, "stdout"), filepath.Join(r.dir, "stderr")
	cmdOut, err := os.Create(outFile)
	if err != nil {
		r.logf("%v", err)
		return 2
	}
	defer cmdOut.Close()
	cmdErr, err := os.Create(errFile)
	if err != nil {
		r.logf("%v", err)
		return 2
	}
	defer cmdErr.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), env...), r.line.Env()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = cmdOut, cmdErr
	if err := cmd.Start(); err != nil {
		r.logf("start %s: %v", argv[0], err)
		return 2
	}
	r.pgid = cmd.Process.Pid // a session leader leads its process group
	stopCopy := make(chan struct{})
	var copying sync.WaitGroup
	copying.Go(func() { follow(outFile, &dropOnError{w: stdout}, stopCopy) })
	copying.Go(func() { follow(errFile, r.stderr, stopCopy) })
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
	close(stopCopy)
	copying.Wait()
	if r.stopping && code == 0 {
		r.logf("%s exited 0 after a stop request; exiting 1", argv[0])
		code = 1
	}
	return code
}

// follow copies the file at path to w as it grows, until stop is closed
// and everything written before that has been copied.
func follow(path string, w io.Writer, stop <-chan struct{}) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(w, "%s: read the command's output: %v\n", prog, err)
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	tick := time.NewTicker(pollOutput)
	defer tick.Stop()
	for {
		n, err := f.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(w, "%s: read the command's output: %v\n", prog, err)
			return
		}
		select {
		case <-stop:
			// Whatever came since the last read, then done.
			_, _ = io.CopyBuffer(w, f, buf)
			return
		case <-tick.C:
		}
	}
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

// loadtestState is where the loadtest is in its life.
type loadtestState int

const (
	notStarted loadtestState = iota
	running
	finished
)

// state finds the loadtest: its pid is believed only for a process of the
// command's own group (a stray pid must not aim at a stranger); once
// seen, it is remembered, so that a loadtest that has exited is told
// apart from one that has not started.
func (r *runner) state() (loadtestState, int) {
	if r.loadtest == 0 {
		pid, ok := lifeline.ReadPID(r.line.PIDFile())
		if !ok {
			return notStarted, 0
		}
		if !r.inGroup(pid) {
			// Written, then gone: it wrote the file only after it began.
			return finished, pid
		}
		r.loadtest = pid
	}
	if r.inGroup(r.loadtest) {
		return running, r.loadtest
	}
	return finished, r.loadtest
}

// inGroup reports whether pid is a live process (not a zombie) of the
// command's process group.
func (r *runner) inGroup(pid int) bool {
	if g, err := syscall.Getpgid(pid); err != nil || g != r.pgid {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: Getpgid found it
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

// forward sends the stop signal to the loadtest, or to the command's
// group when the loadtest has not started, and says what it did.
func (r *runner) forward() string {
	st, pid := r.state()
	switch st {
	case running:
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			return fmt.Sprintf("sent SIGTERM to the loadtest (pid %d)", pid)
		}
		return fmt.Sprintf("the loadtest (pid %d) has just exited; gotestsum and test2json are writing the report", pid)
	case finished:
		return fmt.Sprintf("the loadtest (pid %d) has finished; gotestsum and test2json are writing the report, left alone", pid)
	}
	if err := syscall.Kill(-r.pgid, syscall.SIGINT); err != nil {
		return fmt.Sprintf("could not signal the command's process group %d: %v", r.pgid, err)
	}
	return fmt.Sprintf("the loadtest has not started; sent SIGINT to the command's process group %d", r.pgid)
}

// reap stops what is left in the command's group once the command has
// exited: SIGTERM to the loadtest (or SIGINT to the group), then SIGKILL
// after the grace. Nothing is left when it returns, or it says so.
func (r *runner) reap(sigs <-chan os.Signal) {
	if !groupAlive(r.pgid) {
		return
	}
	var how string
	if st, _ := r.state(); st == running {
		how = r.forward()
	} else {
		// No loadtest to tell: ask the group.
		_ = syscall.Kill(-r.pgid, syscall.SIGINT)
		how = fmt.Sprintf("sent SIGINT to the command's process group %d", r.pgid)
	}
	r.logf("the command exited, but processes of its group run on: %s", how)
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

// dropOnError passes output on; once the writer fails (a reader that
// went away) the rest is dropped, so that nothing blocks on, or dies of,
// a dead pipe.
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
	if code := ps.ExitCode(); code != 0 || err == nil {
		return code
	}
	return 1
}
