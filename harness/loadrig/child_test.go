package loadrig

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/procstat"
)

// rawChild runs this binary as role with pipes of the test's own, to
// speak the wire by hand.
type rawChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startRaw(t *testing.T, role string) *rawChild {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = []string{RoleVar + "=" + role}
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	return &rawChild{cmd: cmd, in: in, out: sc}
}

// ask writes line and returns the next answer, skipping log lines.
func (c *rawChild) ask(t *testing.T, line string) answer {
	t.Helper()
	_, err := io.WriteString(c.in, line+"\n")
	require.NoError(t, err)
	for c.out.Scan() {
		text := c.out.Text()
		if !strings.HasPrefix(text, "{") {
			continue
		}
		var a answer
		require.NoError(t, json.Unmarshal([]byte(text), &a), "the child's answers are JSON: %s", text)
		return a
	}
	t.Fatalf("the child's output ended before an answer to %q: %v", line, c.out.Err())
	return answer{}
}

// TestChildSpeaksTheWire: every command gets an answer with its id;
// lines that are not commands (garbled, hostile, too long, for another
// build) get an error that says what was wrong, and the child goes on;
// closing its stdin ends it with status 0.
func TestChildSpeaksTheWire(t *testing.T) {
	c := startRaw(t, "proxy")
	for _, tc := range []struct {
		line string
		id   uint64
		says string
	}{
		{"hello", 0, "line 1 is not a command"},
		{`{"id": 5, "op": "route", "args": {"target": "127.0.0.1:1"}}`, 5, "route before config"},
		{`{"id": 6}`, 6, "no op"},
		{`{"id": 7, "op": "config", "args": {"mode": "fast"}}`, 7, `not a spice proxy mode: "fast"`},
		{`{"id": 8, "op": "config", "args": {"mode": "nodelay", "color": "red"}}`, 8, `unknown field "color"`},
		{strings.Repeat("x", maxLine+10), 0, "longer than"},
		{`{"id": 9, "op": "config", "args": {"mode": "nodelay"}}`, 9, ""},
		{`{"id": 10, "op": "config", "args": {"mode": "nodelay"}}`, 10, "already configured"},
		{`{"id": 11, "op": "launch"}`, 11, `unknown op "launch"`},
		{`{"id": 12, "op": "route", "args": {"target": "nowhere"}}`, 12, "route nowhere"},
		{`{"id": 13, "op": "totals"}`, 13, ""},
	} {
		a := c.ask(t, tc.line)
		assert.Equal(t, tc.id, a.ID, "answer to %.60q", tc.line)
		if tc.says == "" {
			assert.Empty(t, a.Error, "answer to %.60q", tc.line)
			assert.NotEmpty(t, a.Result)
		} else {
			assert.Contains(t, a.Error, tc.says, "answer to %.60q", tc.line)
		}
	}
	require.NoError(t, c.in.Close())
	assert.NoError(t, c.cmd.Wait(), "a closed stdin ends the child cleanly")
}

func TestUnknownRole(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = []string{RoleVar + "=juggler"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, string(out), "unknown loadrig child role")
}

// TestParentSeesAHostileChild: a line that is not an answer, an answer
// to no command, or an exit nobody asked for breaks the child: the call
// fails saying so, every later call fails at once, and Close reports it.
func TestParentSeesAHostileChild(t *testing.T) {
	for _, tc := range []struct {
		op, says string
	}{
		{"garble", "wrote a line that is not an answer"},
		{"stranger", "answered a command that is not waiting (id 999): an answer nobody asked for"},
		{"exit", "exited unasked"},
	} {
		t.Run(tc.op, func(t *testing.T) {
			p, err := startProc(t.Context(), "hostile", ChildConfig{}, nil, nil)
			require.NoError(t, err)
			err = p.call(t.Context(), tc.op, nil, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrChildGone)
			assert.Contains(t, err.Error(), tc.says)
			if tc.op == "exit" {
				assert.Contains(t, err.Error(), "exiting unasked", "the child's last words are quoted")
			}
			err = p.call(t.Context(), "config", nil, nil)
			assert.ErrorIs(t, err, ErrChildGone, "a broken child is not asked again")
			cerr := p.close(t.Context())
			require.Error(t, cerr, "Close reports the broken child")
			assert.Contains(t, cerr.Error(), tc.says)
			assertGone(t, p.Pid())
		})
	}
}

// TestDeadParentEndsChild: a process that started a proxy child is
// killed (SIGKILL: no cleanup of its own runs); the proxy child ends
// anyway.
func TestDeadParentEndsChild(t *testing.T) {
	var res parentResult
	p, err := startProc(t.Context(), "parent", ChildConfig{}, nil, &res)
	require.NoError(t, err)
	require.NotZero(t, res.ProxyPid)
	_, err = procstat.Read(res.ProxyPid)
	require.NoError(t, err, "the proxy child runs")
	require.NoError(t, syscall.Kill(res.Pid, syscall.SIGKILL))
	waitGone(t, res.ProxyPid, 10*time.Second)
	select {
	case <-p.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the parent's death was not noticed")
	}
	err = p.close(t.Context())
	assert.ErrorIs(t, err, ErrChildGone, "the killed parent is reported as gone")
}

// assertGone checks that pid no longer runs (reaped, or a zombie
// waiting for a reaper that is not ours).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	u, err := procstat.Read(pid)
	if err == nil {
		assert.Equal(t, "Z", u.State, "pid %d still runs", pid)
		return
	}
	assert.True(t, errors.Is(err, procstat.ErrNoProcess), "%v", err)
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		u, err := procstat.Read(pid)
		if errors.Is(err, procstat.ErrNoProcess) || (err == nil && u.State == "Z") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pid %d still runs %s later", pid, within)
}
