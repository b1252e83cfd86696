package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// asMain makes the test binary run latency-run's main, so the tests run
// the real program as a process of its own (signals, sessions, a parent
// that dies) without building it.
const asMain = "LATENCY_RUN_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// bound stops a broken test from hanging; it is never what is asserted.
const bound = 30 * time.Second

// syncBuffer is output read while the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs latency-run with args in a new session (as a runner's job),
// its command's output in out.
func start(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	return startArgv(t, append([]string{self}, args...)...)
}

// startArgv is start for any command line (latency-run inside it is the
// test binary with asMain set).
func startArgv(t *testing.T, argv ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), asMain+"=1", "TMPDIR="+t.TempDir())
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

// exitOf waits (bounded) for cmd and returns its status as a shell shows it.
func exitOf(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	case <-time.After(bound):
		require.FailNow(t, "latency-run did not exit (bound)")
		return -1
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, bound, 10*time.Millisecond, what)
}

// loadtestScript stands in for the loadtest: it announces its pid the way
// latency_test.go does, says "ready", and on SIGTERM says so and exits 1.
const loadtestScript = `echo $$ > "$LATENCY_PID_FILE.tmp" && mv "$LATENCY_PID_FILE.tmp" "$LATENCY_PID_FILE"
trap 'echo "loadtest: got TERM"; exit 1' TERM
echo ready
while :; do sleep 0.05; done`

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 2, run(nil, &out, &out))
	assert.Contains(t, out.String(), "usage: latency-run")
	assert.Equal(t, 2, run([]string{"-grace", "0s", "--", "true"}, &out, &out))
	assert.Equal(t, 2, run([]string{"--", "/nonexistent/command"}, &out, &out))
	assert.Contains(t, out.String(), "start /nonexistent/command")
}

func TestExitStatusIsTheCommands(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -KILL $$", 128 + 9},
	} {
		cmd, out := start(t, "--", "sh", "-c", tc.script)
		assert.Equal(t, tc.want, exitOf(t, cmd), "%s: %s", tc.script, out)
	}
}

// TestStopReachesTheLoadtestOnly: a group SIGTERM to latency-run's job
// reaches the process named in the pid file, not the rest of the command
// (a sibling standing in for gotestsum records what it got); the sibling
// the command leaves behind is stopped after (it ignores SIGINT, as a
// shell's background job does, so the grace's SIGKILL ends it), and the
// exit is non-zero.
func TestStopReachesTheLoadtestOnly(t *testing.T) {
	dir := t.TempDir()
	marks, pidFile := filepath.Join(dir, "sibling"), filepath.Join(dir, "sibling.pid")
	// The pid file is written once the trap is in place: its presence is
	// the sibling's readiness.
	sibling := `trap 'echo TERM >> "` + marks + `"' TERM; echo $$ > "` + pidFile + `.tmp" && mv "` + pidFile + `.tmp" "` + pidFile + `"; while :; do sleep 0.05; done`
	cmd, out := start(t, "-grace", "3s", "--", "sh", "-c", `sh -c '`+strings.ReplaceAll(sibling, `'`, `'\''`)+`' > /dev/null 2>&1 & `+loadtestScript)
	waitFor(t, "the stand-in loadtest starts", func() bool { return strings.Contains(out.String(), "ready") })
	waitFor(t, "the sibling installs its trap", func() bool { _, err := os.Stat(pidFile); return err == nil })
	require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM))
	code := exitOf(t, cmd)
	assert.Equal(t, 1, code, "the command's status: %s", out)
	assert.Contains(t, out.String(), "loadtest: got TERM")
	assert.Contains(t, out.String(), "latency-run: received terminated: sent SIGTERM to the loadtest (pid ")
	b, _ := os.ReadFile(marks)
	assert.NotContains(t, string(b), "TERM", "the sibling never got the SIGTERM")
	assert.Contains(t, out.String(), "processes of its group run on")
	assert.Contains(t, out.String(), "killing process group")
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	waitFor(t, "nothing of the command is left", func() bool { return !alive(pid) })
}

// TestBeforeThePIDFileTheGroupGetsSIGINT: a command that has not written
// the pid file yet is stopped with SIGINT to its group.
func TestBeforeThePIDFileTheGroupGetsSIGINT(t *testing.T) {
	cmd, out := start(t, "--", "sh", "-c", `trap 'echo "got INT"; exit 5' INT; echo ready; while :; do sleep 0.05; done`)
	waitFor(t, "the command starts", func() bool { return strings.Contains(out.String(), "ready") })
	require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM))
	assert.Equal(t, 5, exitOf(t, cmd), "%s", out)
	assert.Contains(t, out.String(), "got INT")
	assert.Contains(t, out.String(), "the loadtest has not started; sent SIGINT")
}

// TestAStopNeverExitsZero: a command that exits 0 although it was told
// to stop does not make the run look passed.
func TestAStopNeverExitsZero(t *testing.T) {
	cmd, out := start(t, "--", "sh", "-c", `trap 'exit 0' INT; echo ready; while :; do sleep 0.05; done`)
	waitFor(t, "the command starts", func() bool { return strings.Contains(out.String(), "ready") })
	require.NoError(t, syscall.Kill(cmd.Process.Pid, syscall.SIGINT))
	assert.Equal(t, 1, exitOf(t, cmd), "%s", out)
	assert.Contains(t, out.String(), "exited 0 after a stop request; exiting 1")
}

// TestGraceKillsAStuckRun: a run that ignores the stop is killed after
// -grace, and says so.
func TestGraceKillsAStuckRun(t *testing.T) {
	cmd, out := start(t, "-grace", "500ms", "--", "sh", "-c", `trap '' TERM INT; `+strings.Replace(loadtestScript, `trap 'echo "loadtest: got TERM"; exit 1' TERM`, "", 1))
	waitFor(t, "the command starts", func() bool { return strings.Contains(out.String(), "ready") })
	require.NoError(t, syscall.Kill(cmd.Process.Pid, syscall.SIGTERM))
	assert.Equal(t, 128+9, exitOf(t, cmd), "%s", out)
	assert.Contains(t, out.String(), "did not finish within -grace=500ms")
}

// TestParentDeathStopsTheRun: killing latency-run's parent alone (make,
// a runner's shell) stops the run rather than orphaning it.
func TestParentDeathStopsTheRun(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	marks := filepath.Join(t.TempDir(), "loadtest")
	script := strings.Replace(loadtestScript, `echo "loadtest: got TERM"`, `echo TERM > "`+marks+`"`, 1)
	cmd, out := startArgv(t, "sh", "-c", `"$0" -- sh -c "$1"; echo "shell: after"`, self, script)
	waitFor(t, "the stand-in loadtest starts", func() bool { return strings.Contains(out.String(), "ready") })
	require.NoError(t, syscall.Kill(cmd.Process.Pid, syscall.SIGKILL), "the parent dies without a word")
	exitOf(t, cmd)
	waitFor(t, "the loadtest is told to stop", func() bool {
		b, _ := os.ReadFile(marks)
		return strings.Contains(string(b), "TERM")
	})
}

// TestDeadOutputKillsNothing: when latency-run's output has no reader any
// more, the command runs to its end and its status comes through.
func TestDeadOutputKillsNothing(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, "--", "sh", "-c", `sleep 0.2; i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; exit 4`)
	cmd.Env = append(os.Environ(), asMain+"=1", "TMPDIR="+t.TempDir())
	r, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	require.NoError(t, r.Close()) // the reader goes away
	assert.Equal(t, 4, exitOf(t, cmd))
}

// alive reports whether pid runs (a zombie waiting for its reaper does
// not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	rest := strings.TrimSpace(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return !strings.HasPrefix(rest, "Z")
}

// TestALateStopSignalsNobody: a stop that comes once the loadtest has
// exited, while gotestsum and test2json write the report, is not passed
// on as a SIGINT to them (it once was: "the loadtest has not started").
func TestALateStopSignalsNobody(t *testing.T) {
	dir := t.TempDir()
	marks := filepath.Join(dir, "report")
	// The loadtest announces itself and exits; the "report writer" then
	// takes its time, recording any SIGINT it gets.
	script := `sh -c 'echo $$ > "$LATENCY_PID_FILE.tmp" && mv "$LATENCY_PID_FILE.tmp" "$LATENCY_PID_FILE"'
trap 'echo INT >> "` + marks + `"' INT
echo finished-loadtest
i=0; while [ $i -lt 40 ]; do sleep 0.05; i=$((i+1)); done
echo written >> "` + marks + `"`
	cmd, out := start(t, "--", "sh", "-c", script)
	waitFor(t, "the stand-in loadtest has finished", func() bool { return strings.Contains(out.String(), "finished-loadtest") })
	require.NoError(t, syscall.Kill(cmd.Process.Pid, syscall.SIGTERM))
	code := exitOf(t, cmd)
	assert.Equal(t, 1, code, "a stop request never exits 0: %s", out)
	assert.Contains(t, out.String(), "has finished; gotestsum and test2json are writing the report, left alone")
	assert.NotContains(t, out.String(), "has not started")
	b, err := os.ReadFile(marks)
	require.NoError(t, err)
	assert.Equal(t, "written\n", string(b), "the report writer got no signal and finished")
}

// TestALauncherKilledOutright: SIGKILL to latency-run's whole group (a
// runner's hard cancel). The command, out of the group's reach, hears it
// through the lifeline, and its report writer, whose output latency-run
// can no longer read, writes on without dying of SIGPIPE.
func TestALauncherKilledOutright(t *testing.T) {
	dir := t.TempDir()
	junit, cut := filepath.Join(dir, "junit"), filepath.Join(dir, "cut")
	// The lifeline is opened before "ready": a reader that opened it
	// only after the launcher died would wait for a writer for ever.
	script := `exec 3<"$LATENCY_LIFELINE"
echo ready
cat <&3
echo cut > "` + cut + `"
i=0; while [ $i -lt 2000 ]; do echo "report line $i"; i=$((i+1)); done
echo written > "` + junit + `"`
	cmd, out := start(t, "--", "sh", "-c", script)
	waitFor(t, "the command starts", func() bool { return strings.Contains(out.String(), "ready") })
	require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
	assert.Equal(t, 128+9, exitOf(t, cmd))
	waitFor(t, "the command hears the launcher's death and writes its report", func() bool {
		b, _ := os.ReadFile(junit)
		return string(b) == "written\n"
	})
	b, err := os.ReadFile(cut)
	require.NoError(t, err)
	assert.Equal(t, "cut\n", string(b))
}

// TestEachRunKeepsItsJUnitFile: with -junit, each run writes its own
// file, named for its run id, and the stable name is the latest run's.
func TestEachRunKeepsItsJUnitFile(t *testing.T) {
	dir := t.TempDir()
	stable := filepath.Join(dir, "results", "junit.xml")
	writeRun := `echo "run $LATENCY_RUN_ID" > "$1"`
	var ids []string
	for range 2 {
		cmd, out := start(t, "-junit", stable, "--", "sh", "-c", writeRun, "sh", JUnitArg)
		require.Equal(t, 0, exitOf(t, cmd), "%s", out)
		b, err := os.ReadFile(stable)
		require.NoError(t, err, "the stable name leads to the latest report")
		id := strings.TrimPrefix(strings.TrimSpace(string(b)), "run ")
		require.NotEmpty(t, id, "latency-run gave the loadtest a run id")
		ids = append(ids, id)
	}
	require.NotEqual(t, ids[0], ids[1])
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(dir, "results", "junit-"+id+".xml"))
		require.NoError(t, err, "run %s kept its own report", id)
		assert.Equal(t, "run "+id+"\n", string(b))
	}
	target, err := os.Readlink(stable)
	require.NoError(t, err)
	assert.Equal(t, "junit-"+ids[1]+".xml", target)

	// A run id the user chose names the file, and is passed on untouched.
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, "-junit", stable, "--", "sh", "-c", writeRun, "sh", JUnitArg)
	cmd.Env = append(os.Environ(), asMain+"=1", "TMPDIR="+t.TempDir(), "LATENCY_RUN_ID=mine-1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, "results", "junit-mine-1.xml"))
	require.NoError(t, err)
	assert.Equal(t, "run mine-1\n", string(b))
}
