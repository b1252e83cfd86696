package ryll

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// bound is the most any single wait in these tests may take before the
// test fails instead of hanging. It is a guard, not an assertion on speed.
const bound = 30 * time.Second

// childSpec describes a stand-in ryll (this test binary) in mode.
// Stop graces are long so only a child that really ignores a signal
// escalates; a child that exits ends the wait at once.
func childSpec(t testing.TB, mode string, extraEnv ...string) Spec {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return Spec{
		Binary:  exe,
		Direct:  address.Direct{Host: "127.0.0.1", Port: 5900},
		LogPath: filepath.Join(t.TempDir(), "ryll.log"),
		// GORACE: a -race child otherwise sleeps a second on exit.
		ExtraEnv: append([]string{childModeVar + "=" + mode, "GORACE=atexit_sleep_ms=0"}, extraEnv...),
		Logger:   slog.New(slog.NewTextHandler(t.Output(), nil)),
		Grace:    Grace{Interrupt: bound, Terminate: bound, Kill: bound},
	}
}

// startChild starts spec and registers a bounded Stop.
func startChild(t testing.TB, spec Spec) *Process {
	t.Helper()
	p, err := Start(t.Context(), spec)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		assert.NoError(t, p.Stop(ctx))
	})
	return p
}

// dialProbe is the tests' readiness probe: the socket answers "hello".
func dialProbe(ctx context.Context, sock string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintln(c, "hello"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("hello answered %q", line)
	}
	return nil
}

func probeFor(p *Process) func(context.Context) error {
	return func(ctx context.Context) error { return dialProbe(ctx, p.SocketPath()) }
}

func waitExited(t testing.TB, p *Process) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(bound):
		t.Fatalf("ryll stand-in did not exit within %s", bound)
	}
}

func readLog(t testing.TB, spec Spec) string {
	t.Helper()
	b, err := os.ReadFile(spec.LogPath)
	require.NoError(t, err)
	return string(b)
}

func TestReadyThenStopCleansUp(t *testing.T) {
	spec := childSpec(t, "serve")
	p := startChild(t, spec)

	require.NoError(t, p.WaitReady(t.Context(), probeFor(p), bound))

	sock := p.SocketPath()
	dir := filepath.Dir(sock)
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "socket directory must be private")
	assert.LessOrEqual(t, len(sock), maxSocketPath)
	info, err = os.Stat(sock)
	require.NoError(t, err)
	assert.NotZero(t, info.Mode()&os.ModeSocket)
	assert.Nil(t, p.ExitErr(), "still running")

	require.NoError(t, p.Stop(t.Context()))

	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist, "Stop removes the socket directory")
	var ee *ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	assert.Equal(t, PhaseStopping, ee.Phase)
	assert.Equal(t, 0, ee.Status)
	assert.Empty(t, ee.Signal, "SIGINT was handled, no escalation")
	assert.Contains(t, readLog(t, spec), "got SIGINT, unlinking control socket")
	assert.Contains(t, p.Tail(), "got SIGINT, unlinking control socket")
}

func TestStartRefusesTwice(t *testing.T) {
	p, err := New(childSpec(t, "serve"))
	require.NoError(t, err)
	require.NoError(t, p.Start(t.Context()))
	t.Cleanup(func() { assert.NoError(t, p.Stop(context.Background())) })

	assert.ErrorIs(t, p.Start(t.Context()), ErrAlreadyStarted)
	require.NoError(t, p.Stop(t.Context()))
	assert.ErrorIs(t, p.Start(t.Context()), ErrAlreadyStarted)
}

func TestStartAfterStopIsRefused(t *testing.T) {
	p, err := New(childSpec(t, "serve"))
	require.NoError(t, err)
	require.NoError(t, p.Stop(t.Context()), "stopping an unstarted process is a no-op")
	assert.ErrorIs(t, p.Start(t.Context()), ErrStopped)
	assert.ErrorIs(t, p.WaitReady(t.Context(), func(context.Context) error { return nil }, time.Second), ErrNotStarted)
}

func TestExitZeroBeforeReadyIsAFailure(t *testing.T) {
	spec := childSpec(t, "exit0")
	p := startChild(t, spec)

	err := p.WaitReady(t.Context(), probeFor(p), bound)

	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 0, ee.Status)
	assert.Equal(t, PhaseStarting, ee.Phase)
	assert.Contains(t, err.Error(), "ryll exited (status 0) before the control socket was ready")
	assert.Contains(t, err.Error(), "ERROR spice connection failed: connection refused", "quotes the tail, colours stripped")
	assert.Contains(t, err.Error(), "connecting to spice server", "stdout is in the tail too")
	assert.Equal(t, []string{"connecting to spice server", "ERROR spice connection failed: connection refused"},
		sortedLike(p.Tail(), "connecting"))
	status, exited := p.ExitStatus()
	assert.True(t, exited)
	assert.Equal(t, 0, status)
	assert.Contains(t, readLog(t, spec), "spice connection failed")
}

// sortedLike puts the line starting with first at the front: stdout and
// stderr are separate pipes, so their relative order is not defined.
func sortedLike(lines []string, first string) []string {
	out := append([]string(nil), lines...)
	for i, l := range out {
		if strings.HasPrefix(l, first) {
			out[0], out[i] = out[i], out[0]
		}
	}
	return out
}

func TestReadyTimeoutNamesTimeoutProbeErrorAndTail(t *testing.T) {
	p := startChild(t, childSpec(t, "hang"))
	// Wait (polling, not sleeping) until the child's line is in the tail,
	// so the error below must quote it.
	require.Eventually(t, func() bool { return len(p.Tail()) > 0 }, bound, 10*time.Millisecond)

	err := p.WaitReady(t.Context(), probeFor(p), 300*time.Millisecond)

	require.ErrorIs(t, err, ErrReadyTimeout)
	assert.Contains(t, err.Error(), "300ms")
	assert.Contains(t, err.Error(), "last probe error: dial unix")
	assert.Contains(t, err.Error(), "waiting for spice")
	assert.Nil(t, p.ExitErr(), "a timeout does not stop ryll; Stop does")
}

func TestWaitReadyHonoursContext(t *testing.T) {
	p := startChild(t, childSpec(t, "hang"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := p.WaitReady(ctx, probeFor(p), bound)
	assert.ErrorIs(t, err, context.Canceled)

	// What ended the wait is named: a signal during ryll's start said
	// only "context canceled", and the leg's sidecar lost the cause.
	signal := errors.New("received terminated")
	ctx, cancelCause := context.WithCancelCause(t.Context())
	cancelCause(signal)
	err = p.WaitReady(ctx, probeFor(p), bound)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, signal)

	// The product's interrupt is a cause that itself wraps Canceled.
	ctx, cancelCause = context.WithCancelCause(t.Context())
	cancelCause(wrapsCanceled{"interrupted: received terminated"})
	err = p.WaitReady(ctx, probeFor(p), bound)
	assert.ErrorContains(t, err, "received terminated")
}

// wrapsCanceled is a cancel cause that unwraps to context.Canceled, as
// the harness's interrupt does.
type wrapsCanceled struct{ msg string }

func (e wrapsCanceled) Error() string { return e.msg }
func (e wrapsCanceled) Unwrap() error { return context.Canceled }

func TestWaitReadyRejectsBadArguments(t *testing.T) {
	p := startChild(t, childSpec(t, "serve"))
	assert.ErrorContains(t, p.WaitReady(t.Context(), nil, time.Second), "nil readiness probe")
	assert.ErrorContains(t, p.WaitReady(t.Context(), probeFor(p), 0), "not positive")
}

func TestExitMidRunFiresExited(t *testing.T) {
	for _, status := range []int{0, 3} {
		t.Run(fmt.Sprintf("status %d", status), func(t *testing.T) {
			p := startChild(t, childSpec(t, "serve"))
			require.NoError(t, p.WaitReady(t.Context(), probeFor(p), bound))

			c, err := net.Dial("unix", p.SocketPath())
			require.NoError(t, err)
			defer c.Close()
			_, err = fmt.Fprintf(c, "exit %d\n", status)
			require.NoError(t, err)
			waitExited(t, p)

			var ee *ExitError
			require.ErrorAs(t, p.ExitErr(), &ee)
			assert.Equal(t, status, ee.Status)
			assert.Equal(t, PhaseRunning, ee.Phase)
			assert.Contains(t, ee.Error(), fmt.Sprintf("ryll exited mid-run (status %d)", status))
			assert.Contains(t, ee.Error(), fmt.Sprintf("exiting with status %d by request", status))
			got, exited := p.ExitStatus()
			assert.True(t, exited)
			assert.Equal(t, status, got)
			// WaitReady after the exit reports it instead of probing.
			assert.ErrorAs(t, p.WaitReady(t.Context(), probeFor(p), bound), &ee)
		})
	}
}

func TestStopLadder(t *testing.T) {
	short := 200 * time.Millisecond
	cases := []struct {
		name   string
		ignore string
		grace  Grace
		signal string
	}{
		{"SIGINT is enough", "", Grace{Interrupt: bound, Terminate: bound, Kill: bound}, ""},
		{"ignores SIGINT gets SIGTERM", "INT", Grace{Interrupt: short, Terminate: bound, Kill: bound}, "SIGTERM"},
		{"ignores both gets SIGKILL", "INT,TERM", Grace{Interrupt: short, Terminate: short, Kill: bound}, "SIGKILL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := childSpec(t, "serve", childIgnoreVar+"="+tc.ignore)
			spec.Grace = tc.grace
			p := startChild(t, spec)
			// Ready means the child's signal handling is in force.
			require.NoError(t, p.WaitReady(t.Context(), probeFor(p), bound))

			require.NoError(t, p.Stop(t.Context()))

			var ee *ExitError
			require.ErrorAs(t, p.ExitErr(), &ee)
			assert.Equal(t, tc.signal, ee.Signal)
			assert.Equal(t, PhaseStopping, ee.Phase)
			if tc.signal != "" {
				assert.Equal(t, -1, ee.Status)
				assert.Contains(t, ee.Error(), "ryll exited on Stop (signal "+tc.signal+")")
			}
			_, err := os.Stat(filepath.Dir(p.SocketPath()))
			assert.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

func TestStopWithEndedContextGoesStraightToSIGKILL(t *testing.T) {
	spec := childSpec(t, "serve", childIgnoreVar+"=INT,TERM")
	spec.Grace = Grace{Interrupt: time.Hour, Terminate: time.Hour, Kill: bound}
	p := startChild(t, spec)
	require.NoError(t, p.WaitReady(t.Context(), probeFor(p), bound))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, p.Stop(ctx))

	var ee *ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	assert.Equal(t, "SIGKILL", ee.Signal)
}

func TestStopTwiceAndConcurrently(t *testing.T) {
	p := startChild(t, childSpec(t, "serve"))
	require.NoError(t, p.WaitReady(t.Context(), probeFor(p), bound))

	const callers = 4
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() { errs <- p.Stop(t.Context()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.NoError(t, p.Stop(t.Context()), "a later Stop returns the first result")
	select {
	case <-p.Exited():
	default:
		t.Error("Exited not closed after Stop")
	}
}

func TestStopAfterExitStillCleansUp(t *testing.T) {
	p := startChild(t, childSpec(t, "exit0"))
	waitExited(t, p)
	dir := filepath.Dir(p.SocketPath())
	_, err := os.Stat(dir)
	require.NoError(t, err, "the directory outlives ryll until Stop")

	require.NoError(t, p.Stop(t.Context()))

	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist)
	var ee *ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	assert.Equal(t, PhaseStarting, ee.Phase, "the exit is recorded as it happened, not as a Stop")
}

func TestSecretsNeverLeak(t *testing.T) {
	const token = "tok-5f2c9e1d"
	const password = "hunter2-pw"
	u, err := secret.ParseURL("http://127.0.0.1:1/console.vv?token=" + token)
	require.NoError(t, err)

	spec := childSpec(t, "secret", childSecretVar+"="+password)
	spec.Direct = address.Direct{}
	spec.URL = u
	spec.Secrets = []string{password}
	var managerLog bytes.Buffer
	spec.Logger = slog.New(slog.NewTextHandler(&managerLog, nil))
	p := startChild(t, spec)

	err = p.WaitReady(t.Context(), probeFor(p), bound)
	require.Error(t, err)
	require.NoError(t, p.Stop(t.Context()))

	logText := readLog(t, spec)
	outputs := map[string]string{
		"error":       err.Error(),
		"tail":        strings.Join(p.Tail(), "\n"),
		"log file":    logText,
		"manager log": managerLog.String(),
	}
	for name, out := range outputs {
		assert.NotContains(t, out, token, name)
		assert.NotContains(t, out, password, name)
	}
	for _, name := range []string{"error", "tail", "log file"} {
		assert.Contains(t, outputs[name], "fetching console from "+secret.Redacted, name)
		assert.Contains(t, outputs[name], "ticket "+secret.Redacted, name)
		assert.Contains(t, outputs[name], "vv password="+secret.Redacted, name)
	}
	assert.Contains(t, managerLog.String(), "127.0.0.1:1/"+secret.Redacted+" ", "args are logged redacted, past scheme and host")
}

func TestChildGetsExplicitEnvironmentArgsAndOwnGroup(t *testing.T) {
	t.Setenv("OS_PASSWORD", "parent-password")
	t.Setenv("OS_AUTH_URL", "http://keystone.example/v3")
	t.Setenv("RYLL_TEST_UNRELATED", "parent-only")
	t.Setenv("RUST_LOG", "debug")
	spec := childSpec(t, "dump", "FAKERYLL_MODE=slow")
	spec.Verbose = true
	p := startChild(t, spec)
	waitExited(t, p)

	lines := strings.Split(readLog(t, spec), "\n")
	var env, args []string
	var group string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "env: "):
			env = append(env, strings.TrimPrefix(l, "env: "))
		case strings.HasPrefix(l, "arg: "):
			args = append(args, strings.TrimPrefix(l, "arg: "))
		case strings.HasPrefix(l, "pgid: "):
			group = l
		}
	}
	assert.Contains(t, env, "FAKERYLL_MODE=slow")
	assert.Contains(t, env, "RUST_LOG=debug")
	assert.Contains(t, env, "PATH="+os.Getenv("PATH"))
	for _, kv := range env {
		assert.False(t, strings.HasPrefix(kv, "OS_"), "OpenStack variable reached ryll: %s", strings.SplitN(kv, "=", 2)[0])
		assert.False(t, strings.HasPrefix(kv, "RYLL_TEST_UNRELATED="), "non-allow-listed variable reached ryll")
	}
	assert.NotContains(t, readLog(t, spec), "parent-password")
	assert.Equal(t, []string{"--headless", "--direct", "127.0.0.1:5900", "--control-socket", p.SocketPath(), "-v"}, args)
	assert.Equal(t, fmt.Sprintf("pgid: %d pid: %d", p.Pid(), p.Pid()), group, "ryll leads its own process group")
}

func TestSocketPathTooLong(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	require.NoError(t, os.Mkdir(long, 0o700))
	t.Setenv("TMPDIR", long)

	_, err := Start(t.Context(), childSpec(t, "serve"))

	require.Error(t, err)
	assert.Contains(t, err.Error(), "over the 103-byte limit")
	assert.Contains(t, err.Error(), "TMPDIR")
	left, err := os.ReadDir(long)
	require.NoError(t, err)
	assert.Empty(t, left, "the socket directory is removed on failure")
}

func TestStartFailuresReleaseEverything(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"missing binary", func(s *Spec) { s.Binary = filepath.Join(t.TempDir(), "no-such-ryll") }, "find ryll binary"},
		{"log directory missing", func(s *Spec) { s.LogPath = filepath.Join(t.TempDir(), "missing", "ryll.log") }, "open ryll log"},
		{"not executable", func(s *Spec) {
			f := filepath.Join(t.TempDir(), "ryll")
			require.NoError(t, os.WriteFile(f, []byte("not a program"), 0o600))
			s.Binary = f
		}, "find ryll binary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := childSpec(t, "serve")
			tc.edit(&spec)
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp) // after the TempDir calls above, so it holds only ours

			p, err := Start(t.Context(), spec)

			assert.Nil(t, p)
			assert.ErrorContains(t, err, tc.want)
			left, err := os.ReadDir(tmp)
			require.NoError(t, err)
			assert.Empty(t, left, "no socket directory left behind")
		})
	}
}

func TestStartHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Start(ctx, childSpec(t, "serve"))
	assert.ErrorIs(t, err, context.Canceled)
}

// TestExitErrorSpeaksOfRyll: the messages name ryll, its readiness and
// why its status 0 is no success (the wording is childproc's).
func TestExitErrorSpeaksOfRyll(t *testing.T) {
	ee := &ExitError{Status: 0, Tail: []string{"line one"}, Phase: PhaseStarting}
	assert.Contains(t, ee.Error(), "ryll exited (status 0) before the control socket was ready (ryll exits 0 when its SPICE session fails): last 1 lines of output:\n\tline one")
	ee = &ExitError{Status: -1, Signal: "SIGKILL", Phase: PhaseStopping}
	assert.Equal(t, "ryll exited on Stop (signal SIGKILL): no output from ryll", ee.Error())
}

func TestWaitReadyStopsAtAPermanentError(t *testing.T) {
	spec := childSpec(t, "hang")
	p, err := Start(t.Context(), spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	cause := errors.New("server speaks 2.0")
	probes := 0
	err = p.WaitReady(t.Context(), func(context.Context) error {
		probes++
		return Permanent(cause)
	}, time.Hour)
	require.ErrorIs(t, err, cause)
	assert.True(t, IsPermanent(err))
	assert.Equal(t, 1, probes, "no retry after a permanent error")
	assert.NotErrorIs(t, err, ErrReadyTimeout)
}

// TestStopWhenADescendantHoldsThePipe: ryll is gone, but a process it
// started in a session of its own (out of reach of the group kill) keeps
// its output open. Stop must not call that "still running after
// SIGKILL" (it once did, and advised make sweep, which deletes cloud
// servers), and must not wait on the pipe for ever.
func TestStopWhenADescendantHoldsThePipe(t *testing.T) {
	spec := childSpec(t, "spawn", childIgnoreVar+"=INT,TERM")
	// The wait after SIGKILL is shorter than the drain's (2s).
	spec.Grace = Grace{Interrupt: time.Hour, Terminate: time.Hour, Kill: time.Second}
	p, err := Start(t.Context(), spec)
	require.NoError(t, err)
	require.NoError(t, p.WaitReady(t.Context(), probeFor(p), bound))
	var holder int
	for _, l := range p.Tail() {
		if _, err := fmt.Sscanf(l, "holder %d", &holder); err == nil {
			break
		}
	}
	require.NotZero(t, holder, "the child names its grandchild: %q", p.Tail())
	t.Cleanup(func() { _ = syscall.Kill(holder, syscall.SIGKILL) })

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // straight to SIGKILL, whose wait is shorter than the drain's
	err = p.Stop(ctx)

	require.NoError(t, err)
	var ee *ExitError
	require.ErrorAs(t, p.ExitErr(), &ee, "Stop returns once the exit is known")
	assert.Equal(t, "SIGKILL", ee.Signal)
	_, err = os.Stat(filepath.Dir(p.SocketPath()))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
