package childproc

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/childproc/childtest"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// bound is the most any single wait in these tests may take before the
// test fails instead of hanging. It is a guard, not an assertion on speed.
const bound = 30 * time.Second

// logSink records the supervisor's own messages in a file (an *os.File
// is safe for its goroutines); String reads them back.
type logSink struct{ path string }

func newLogSink(t testing.TB) *logSink {
	return &logSink{path: filepath.Join(t.TempDir(), "supervisor.log")}
}

func (l *logSink) logger(t testing.TB) *slog.Logger {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return slog.New(slog.NewTextHandler(f, nil))
}

func (l *logSink) String() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

// testSpec supervises a test child; its graces are long, so only a child
// that really ignores a step escalates.
func testSpec(t testing.TB, logs *logSink) Spec {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	if logs != nil {
		logger = logs.logger(t)
	}
	return Spec{
		Words:  Words{Name: "testchild", Ready: "it said ready"},
		Logger: logger,
		Ladder: Ladder{
			Rungs: []Rung{{Signal: syscall.SIGINT, Grace: bound}, {Signal: syscall.SIGTERM, Grace: bound}},
			Kill:  bound,
		},
	}
}

// command runs this test binary as a child in mode.
func command(t testing.TB, mode string, args ...string) Command {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return Command{Path: exe, Args: args, Env: childtest.Env(mode)}
}

// start starts a child and registers a bounded Stop.
func start(t testing.TB, spec Spec, cmd Command) *Child {
	t.Helper()
	c := New(spec)
	require.NoError(t, c.Start(t.Context(), cmd))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		assert.NoError(t, c.Stop(ctx))
	})
	return c
}

func waitDone(t testing.TB, c *Child) *ExitError {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(bound):
		t.Fatalf("child did not exit within %s", bound)
	}
	ee := c.ExitError()
	require.NotNil(t, ee)
	return ee
}

// waitLine waits (polling, bounded) until the child printed a line
// starting with prefix, and returns it.
func waitLine(t testing.TB, c *Child, prefix string) string {
	t.Helper()
	var found string
	require.Eventually(t, func() bool {
		for _, l := range c.Tail() {
			if strings.HasPrefix(l, prefix) {
				found = l
				return true
			}
		}
		return false
	}, bound, 5*time.Millisecond, "no line %q from the child", prefix)
	return found
}

// holderPid reads the grandchild's pid from the child's "holder N" line.
func holderPid(t testing.TB, c *Child) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(waitLine(t, c, "holder "), "holder "))
	require.NoError(t, err)
	return pid
}

// killAtCleanup makes sure a grandchild that left our process group
// does not outlive the test.
func killAtCleanup(t testing.TB, pid int) {
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
}

func TestStartRefusesTwiceAndAfterStop(t *testing.T) {
	c := start(t, testSpec(t, nil), command(t, "serve"))
	waitLine(t, c, "ready")
	assert.ErrorIs(t, c.Start(t.Context(), command(t, "serve")), ErrAlreadyStarted)
	require.NoError(t, c.Stop(t.Context()))
	assert.ErrorIs(t, c.Start(t.Context(), command(t, "serve")), ErrAlreadyStarted)

	never := New(testSpec(t, nil))
	require.NoError(t, never.Stop(t.Context()), "stopping an unstarted child is a no-op")
	assert.ErrorIs(t, never.Start(t.Context(), command(t, "serve")), ErrStopped)
	select {
	case <-never.Done():
		t.Error("Done closed for a child that never started")
	default:
	}
	assert.Nil(t, never.Err())
}

func TestStartFailures(t *testing.T) {
	t.Run("missing binary", func(t *testing.T) {
		c := New(testSpec(t, nil))
		err := c.Start(t.Context(), Command{Path: filepath.Join(t.TempDir(), "nope")})
		assert.ErrorContains(t, err, "start testchild")
		assert.Zero(t, c.Pid())
		require.NoError(t, c.Stop(t.Context()))
	})
	t.Run("context ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := New(testSpec(t, nil)).Start(ctx, command(t, "serve"))
		assert.ErrorIs(t, err, context.Canceled)
	})
}

// TestExitWatch: an exit that nobody asked for closes Done; Err says how,
// where in the child's life, and quotes its last words.
func TestExitWatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ready bool
		phase Phase
		want  string
	}{
		{"before ready", false, PhaseStarting, "testchild exited (status 3) before it said ready"},
		{"mid-run", true, PhaseRunning, "testchild exited mid-run (status 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, nil)
			c := New(spec)
			if tc.ready {
				c.MarkReady()
			}
			assert.Nil(t, c.Err(), "not started")
			require.NoError(t, c.Start(t.Context(), command(t, "lines", "4", "3")))
			t.Cleanup(func() { assert.NoError(t, c.Stop(context.Background())) })

			ee := waitDone(t, c)

			assert.Equal(t, 3, ee.Status)
			assert.Empty(t, ee.Signal)
			assert.Equal(t, tc.phase, ee.Phase)
			assert.Equal(t, c.Pid(), ee.Pid)
			assert.Empty(t, ee.HeldBy)
			require.ErrorAs(t, c.Err(), &ee)
			assert.Contains(t, ee.Error(), tc.want)
			assert.Contains(t, ee.Error(), fmt.Sprintf("last 4 lines of output (pid %d):", c.Pid()))
			assert.ElementsMatch(t, []string{"line 0", "line 1", "line 2", "line 3"}, c.Tail(),
				"stdout and stderr both drained, colours stripped")
		})
	}
}

// TestOutputGoesToTheSinkAndTheTail: every line reaches the log, scrubbed;
// the tail keeps the last N, scrubbed too.
func TestOutputGoesToTheSinkAndTheTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "child.log")
	log, err := OpenLog(path, false, "line 7")
	require.NoError(t, err)
	spec := testSpec(t, nil)
	spec.TailLines = 3
	cmd := command(t, "lines", "10", "0")
	cmd.Output = log
	c := start(t, spec, cmd)
	waitDone(t, c)
	require.NoError(t, log.Close())
	require.NoError(t, log.Close(), "Close is idempotent")

	text, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	assert.Len(t, lines, 10, "the log keeps every line")
	assert.NotContains(t, string(text), "line 7")
	assert.Contains(t, string(text), secret.Redacted)
	assert.NotContains(t, string(text), "\x1b[", "colour escapes are stripped")
	assert.Len(t, c.Tail(), 3)
	assert.NotContains(t, c.Tail(), "line 7")
	assert.Contains(t, c.Tail(), secret.Redacted)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestStopLadder(t *testing.T) {
	short := 100 * time.Millisecond
	cases := []struct {
		name   string
		ignore string
		rungs  []Rung
		signal string
		said   string
	}{
		{"SIGINT is enough", "", []Rung{{Signal: syscall.SIGINT, Grace: bound}, {Signal: syscall.SIGTERM, Grace: bound}}, "", "got SIGINT"},
		{"ignores SIGINT gets SIGTERM", "INT", []Rung{{Signal: syscall.SIGINT, Grace: short}, {Signal: syscall.SIGTERM, Grace: bound}}, "", "got SIGTERM"},
		{"ignores both gets SIGKILL", "INT,TERM", []Rung{{Signal: syscall.SIGINT, Grace: short}, {Signal: syscall.SIGTERM, Grace: short}}, "SIGKILL", ""},
		{"no rungs is SIGKILL", "", nil, "SIGKILL", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, nil)
			spec.Ladder.Rungs = tc.rungs
			cmd := command(t, "serve")
			cmd.Env = append(cmd.Env, childtest.Ignore(tc.ignore))
			c := start(t, spec, cmd)
			waitLine(t, c, "ready")

			require.NoError(t, c.Stop(t.Context()))

			ee := c.ExitError()
			require.NotNil(t, ee, "Stop returns after the exit is published")
			assert.Equal(t, tc.signal, ee.Signal)
			assert.Equal(t, PhaseStopping, ee.Phase)
			if tc.said != "" {
				assert.Contains(t, c.Tail(), tc.said+", exiting")
				assert.Equal(t, 0, ee.Status)
			} else {
				assert.Equal(t, -1, ee.Status)
				assert.Contains(t, ee.Error(), "testchild exited on Stop (signal SIGKILL)")
			}
		})
	}
}

// TestAskRung: a rung of the owner's own (QEMU's QMP quit) is waited on
// when it could ask, and skipped at once when it could not.
func TestAskRung(t *testing.T) {
	t.Run("asked", func(t *testing.T) {
		spec := testSpec(t, nil)
		var c *Child
		spec.Ladder.Rungs = []Rung{{Name: "USR1 please", Grace: bound, Ask: func(context.Context) error {
			return syscall.Kill(c.Pid(), syscall.SIGUSR1)
		}}}
		c = start(t, spec, command(t, "serve"))
		waitLine(t, c, "ready")
		require.NoError(t, c.Stop(t.Context()))
		assert.Contains(t, c.Tail(), "got SIGUSR1, exiting")
		assert.Empty(t, c.ExitError().Signal)
	})
	t.Run("could not ask", func(t *testing.T) {
		spec := testSpec(t, nil)
		// Were the failed ask waited on, its hour would outlast ctx below,
		// and the child would end by SIGKILL rather than by SIGTERM.
		spec.Ladder.Rungs = []Rung{
			{Name: "broken", Grace: time.Hour, Ask: func(context.Context) error { return fmt.Errorf("connection broken") }},
			{Signal: syscall.SIGTERM, Grace: bound},
		}
		c := start(t, spec, command(t, "serve"))
		waitLine(t, c, "ready")
		ctx, cancel := context.WithTimeout(t.Context(), bound)
		defer cancel()
		require.NoError(t, c.Stop(ctx))
		assert.Contains(t, c.Tail(), "got SIGTERM, exiting")
		assert.Empty(t, c.ExitError().Signal)
	})
}

// TestStopWithEndedContext: the gentle rungs are skipped (already ended)
// or cut short (ending during one), and SIGKILL always follows.
func TestStopWithEndedContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
	}{
		{"already ended", func(p context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(p)
			cancel()
			return ctx, cancel
		}},
		{"ends during a rung", func(p context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(p, 100*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, nil)
			spec.Ladder.Rungs = []Rung{{Signal: syscall.SIGINT, Grace: time.Hour}, {Signal: syscall.SIGTERM, Grace: time.Hour}}
			cmd := command(t, "serve")
			cmd.Env = append(cmd.Env, childtest.Ignore("INT,TERM"))
			c := start(t, spec, cmd)
			waitLine(t, c, "ready")
			ctx, cancel := tc.ctx(t.Context())
			defer cancel()

			require.NoError(t, c.Stop(ctx))

			assert.Equal(t, "SIGKILL", c.ExitError().Signal)
		})
	}
}

// TestKill: the rollback of a failed start skips every gentle rung.
func TestKill(t *testing.T) {
	spec := testSpec(t, nil)
	spec.Ladder.Rungs = []Rung{{Signal: syscall.SIGINT, Grace: time.Hour}}
	c := start(t, spec, command(t, "serve"))
	waitLine(t, c, "ready")
	require.NoError(t, c.Kill())
	assert.Equal(t, "SIGKILL", c.ExitError().Signal, "a child that handles SIGINT was not sent it")
}

func TestStopTwiceAndConcurrently(t *testing.T) {
	c := start(t, testSpec(t, nil), command(t, "serve"))
	waitLine(t, c, "ready")
	const callers = 4
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { errs[i] = c.Stop(t.Context()) })
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.NoError(t, c.Stop(t.Context()), "a later Stop returns the first result")
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	assert.Contains(t, c.Tail(), "got SIGINT, exiting", "one SIGINT, one exit")
}

// TestOwnProcessGroup: the child leads a process group of its own.
func TestOwnProcessGroup(t *testing.T) {
	c := start(t, testSpec(t, nil), command(t, "serve"))
	waitLine(t, c, "ready")
	pgid, err := syscall.Getpgid(c.Pid())
	require.NoError(t, err)
	assert.Equal(t, c.Pid(), pgid)
	assert.NotEqual(t, syscall.Getpgrp(), pgid)
}

// TestGroupKillTakesDescendants: a helper the child started in its own
// process group does not outlive Stop, even when the child itself went
// at the first, gentle rung; so it cannot hold the output open either.
func TestGroupKillTakesDescendants(t *testing.T) {
	for _, tc := range []struct {
		name, ignore string
	}{
		{"child exits on SIGINT", ""},
		{"child needs SIGKILL", "INT,TERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, nil)
			spec.DrainGrace = bound // were the helper left alive, it would hold the output this long
			spec.Ladder.Rungs = []Rung{{Signal: syscall.SIGINT, Grace: 100 * time.Millisecond}}
			cmd := command(t, "spawn", "group")
			cmd.Env = append(cmd.Env, childtest.Ignore(tc.ignore))
			c := start(t, spec, cmd)
			holder := holderPid(t, c)
			killAtCleanup(t, holder)
			waitLine(t, c, "ready")
			waitLine(t, c, "holding")

			require.NoError(t, c.Stop(t.Context()))

			assert.Eventually(t, func() bool { return !childtest.Running(holder) }, bound, 10*time.Millisecond,
				"the helper in the child's group was killed")
			assert.Empty(t, c.ExitError().HeldBy, "the output closed with the group")
		})
	}
	// The child went by itself before Stop; its helper, still in its
	// group, holds the output open, so the group is surely still its own.
	for _, drain := range []struct {
		name  string
		grace time.Duration
	}{{"while its output is read", bound}, {"after reading was given up", 100 * time.Millisecond}} {
		t.Run("child exited before Stop, "+drain.name, func(t *testing.T) {
			spec := testSpec(t, nil)
			spec.DrainGrace = drain.grace
			c := start(t, spec, command(t, "spawn-exit", "group"))
			holder := holderPid(t, c)
			killAtCleanup(t, holder)
			require.Eventually(t, func() bool { return !childtest.Running(c.Pid()) }, bound, 5*time.Millisecond,
				"the child exits by itself")
			givenUp := drain.grace < bound
			if givenUp {
				assert.Equal(t, []int{holder}, waitDone(t, c).HeldBy)
			}

			require.NoError(t, c.Stop(t.Context()))

			assert.Eventually(t, func() bool { return !childtest.Running(holder) }, bound, 10*time.Millisecond,
				"the helper in the child's group was killed")
			if !givenUp {
				assert.Empty(t, c.ExitError().HeldBy, "the output closed when the group was killed, not by giving up")
			}
		})
	}
}

// TestADescendantHoldingThePipeIsNotTheChildRunning: the child is gone
// but a descendant outside its group (which no group kill reaches) keeps
// its output open. The exit is published DrainGrace after it, naming
// the holder; Stop reports no "still running", even when DrainGrace is
// longer than the wait after SIGKILL (the case that once said "still
// running 2s after SIGKILL" of a process that had exited).
func TestADescendantHoldingThePipeIsNotTheChildRunning(t *testing.T) {
	t.Run("child exits by itself", func(t *testing.T) {
		logs := newLogSink(t)
		spec := testSpec(t, logs)
		spec.DrainGrace = 300 * time.Millisecond
		c := start(t, spec, command(t, "spawn-exit", "session"))
		holder := holderPid(t, c)
		killAtCleanup(t, holder)

		ee := waitDone(t, c)

		assert.Equal(t, 0, ee.Status)
		assert.Equal(t, []int{holder}, ee.HeldBy)
		assert.Contains(t, ee.Error(), fmt.Sprintf("pids [%d] still held its output open", holder))
		assert.True(t, childtest.Running(holder), "the holder left our reach; only the test kills it")
		require.NoError(t, c.Stop(t.Context()))
		assert.Contains(t, logs.String(), "exited, but a process it started still holds its output open")
		assert.NotContains(t, logs.String(), "still running")
	})
	t.Run("stopped by SIGKILL", func(t *testing.T) {
		logs := newLogSink(t)
		spec := testSpec(t, logs)
		spec.DrainGrace = 3 * time.Second
		spec.Ladder = Ladder{Kill: 2 * time.Second} // shorter than DrainGrace
		cmd := command(t, "spawn", "session")
		cmd.Env = append(cmd.Env, childtest.Ignore("INT,TERM"))
		c := start(t, spec, cmd)
		holder := holderPid(t, c)
		killAtCleanup(t, holder)
		waitLine(t, c, "ready")

		require.NoError(t, c.Stop(t.Context()), "the child is gone: nothing is still running")

		ee := c.ExitError()
		require.NotNil(t, ee, "Stop waited for the exit to be published")
		assert.Equal(t, "SIGKILL", ee.Signal)
		assert.Equal(t, []int{holder}, ee.HeldBy)
		assert.NotContains(t, logs.String(), "still running")
	})
}

func TestRun(t *testing.T) {
	spec := Spec{Words: Words{Name: "lister"}}
	t.Run("output", func(t *testing.T) {
		out, err := Run(t.Context(), spec, command(t, "lines", "2", "0"))
		require.NoError(t, err)
		assert.Equal(t, "line 0\nline 1\n", out, "stdout and stderr share one pipe, in the order written")
	})
	t.Run("status", func(t *testing.T) {
		out, err := Run(t.Context(), spec, command(t, "lines", "1", "4"))
		assert.EqualError(t, err, "exit status 4")
		assert.Equal(t, "line 0\n", out)
	})
	t.Run("bounded by ctx, group and all", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "holder")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var holder int
		var wg sync.WaitGroup
		wg.Go(func() { // cancel once the holder runs: Run's output comes only at its end
			defer cancel()
			deadline := time.Now().Add(bound)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if b, err := os.ReadFile(pidFile); err == nil {
					holder, _ = strconv.Atoi(string(b))
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		cmd := command(t, "spawn", "group")
		cmd.Env = append(cmd.Env, childPidFileVar+"="+pidFile)
		_, err := Run(ctx, spec, cmd)
		wg.Wait()
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "killed by SIGKILL")
		require.NotZero(t, holder)
		killAtCleanup(t, holder)
		assert.Eventually(t, func() bool { return !childtest.Running(holder) }, bound, 10*time.Millisecond,
			"the command's whole group was killed")
	})
	t.Run("missing binary", func(t *testing.T) {
		_, err := Run(t.Context(), spec, Command{Path: filepath.Join(t.TempDir(), "nope")})
		assert.ErrorContains(t, err, "start lister")
	})
}

func TestOnce(t *testing.T) {
	var o Once
	calls := 0
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	var first error
	wg.Go(func() {
		first = o.Do(t.Context(), "work", func() error {
			calls++
			close(started)
			<-release
			return fmt.Errorf("the result")
		})
	})
	<-started
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, o.Do(ctx, "work", nil), context.Canceled, "a waiter's own ctx bounds its wait")
	assert.ErrorContains(t, o.Do(ctx, "work", nil), "work: waiting for another call")
	close(release)
	wg.Wait()
	assert.EqualError(t, first, "the result")
	assert.EqualError(t, o.Do(t.Context(), "work", nil), "the result")
	assert.Equal(t, 1, calls)
}

func TestLogKeepsTheFirstWriteError(t *testing.T) {
	log, err := OpenLog(filepath.Join(t.TempDir(), "x.log"), false, "pw")
	require.NoError(t, err)
	require.NoError(t, log.file.Close()) // every later write fails
	assert.Equal(t, secret.Redacted+" here", log.Line("pw here"), "the tail still gets the line, scrubbed")
	assert.ErrorContains(t, log.Close(), "write log")
	assert.ErrorContains(t, log.Close(), "write log")

	_, err = OpenLog(filepath.Join(t.TempDir(), "missing", "x.log"), false)
	assert.Error(t, err)
}

func TestLogAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	for _, appendTo := range []bool{false, true} {
		log, err := OpenLog(path, appendTo)
		require.NoError(t, err)
		log.Line("one")
		require.NoError(t, log.Close())
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "one\none\n", string(b))
}

// BenchmarkRecord measures the per-line cost of draining a child's
// output (colour stripping, scrubbing, log write, tail).
func BenchmarkRecord(b *testing.B) {
	log, err := OpenLog(filepath.Join(b.TempDir(), "bench.log"), false, "hunter2", "tok-123")
	require.NoError(b, err)
	defer log.Close()
	c := New(Spec{})
	line := []byte("2026-01-01T00:00:00Z \x1b[32m INFO\x1b[0m ryll::display: surface 0 drawn 1024x768 in 3ms\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		c.record(log, line)
	}
}
