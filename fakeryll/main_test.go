package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// bin is the fakeryll binary built once for these tests.
var (
	bin      string
	buildErr error
)

// wait bounds every wait on the child process; it is a guard against
// hangs, not a statement about speed.
const wait = 20 * time.Second

func TestMain(m *testing.M) {
	dir, err := tmpdir.Make("frbin") // owned: a killed run's is swept by the next
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "fakeryll")
	gotool, err := exec.LookPath("go")
	if err != nil {
		gotool = "/usr/local/go/bin/go"
	}
	if out, err := exec.Command(gotool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build: %v: %s", err, out)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func needBinary(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Skipf("the fakeryll binary could not be built (%v); these tests need the go tool on PATH or at /usr/local/go/bin/go", buildErr)
	}
}

// childEnv is the environment without any FAKERYLL_* knob of our own, plus
// extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FAKERYLL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fr")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// runBin runs fakeryll to completion.
func runBin(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = childEnv(env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		require.NoError(t, err)
	}
	require.NoError(t, ctx.Err(), "fakeryll did not finish: %s", e.String())
	return o.String(), e.String(), code
}

func TestExitCodes(t *testing.T) {
	needBinary(t)
	sock := sockPath(t)
	badVV := filepath.Join(t.TempDir(), "bad.vv")
	require.NoError(t, os.WriteFile(badVV, []byte("[virt-viewer]\nport=5900\npassword=hunter2-secret\n"), 0o600))
	closed := closedPort(t)
	for _, tc := range []struct {
		name   string
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{"help", nil, []string{"--help"}, 0, "-control-socket PATH"},
		{"nothing", nil, nil, 2, "--headless"},
		{"no source", nil, []string{"--headless", "--control-socket", sock}, 1, "Must specify one of --url, --file, or --direct"},
		{"two sources", nil, []string{"--headless", "--control-socket", sock, "--url", "http://h/x", "--file", "f.vv"}, 2, "cannot be used with"},
		{"socket without headless", nil, []string{"--control-socket", sock, "--direct", "h:1"}, 2, "--headless"},
		{"headless without socket", nil, []string{"--headless", "--direct", "h:1"}, 2, "--control-socket"},
		{"unknown flag", nil, []string{"--headless", "--bogus"}, 2, "bogus"},
		{"positional", nil, []string{"--headless", "--control-socket", sock, "--direct", "h:1", "extra"}, 2, "extra"},
		{"bad knob flag", nil, []string{"--headless", "--control-socket", sock, "--direct", "h:1", "--fake-draw-delay", "soon"}, 2, "--fake-draw-delay"},
		{"bad knob env", []string{"FAKERYLL_FLOOD=lots"}, []string{"--headless", "--control-socket", sock, "--direct", "h:1"}, 2, "FAKERYLL_FLOOD"},
		{"bad session env", []string{"FAKERYLL_SESSION=real"}, []string{"--headless", "--control-socket", sock, "--direct", "h:1"}, 2, "FAKERYLL_SESSION"},
		{"bad session flag", nil, []string{"--headless", "--control-socket", sock, "--direct", "h:1", "--fake-session", "qemu"}, 2, "--fake-session"},
		{"spice session with nothing listening", []string{"FAKERYLL_SESSION=spice"}, []string{"--headless", "--control-socket", sock, "--direct", closed}, 0, "SPICE connection failed"},
		{"bad direct", nil, []string{"--headless", "--control-socket", sock, "--direct", "h:port"}, 1, "invalid digit"},
		{"missing file", nil, []string{"--headless", "--control-socket", sock, "--file", filepath.Join(t.TempDir(), "none.vv")}, 1, "Error:"},
		{"bad vv", nil, []string{"--headless", "--control-socket", sock, "--file", badVV}, 1, "Missing 'host' in .vv file"},
		{"fetch fails", nil, []string{"--headless", "-v", "--control-socket", sock, "--url", "http://" + closed + "/c?token=tok-SECRET-123"}, 1, "[redacted]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runBin(t, tc.env, tc.args...)
			assert.Equal(t, tc.code, code, "stderr: %s", stderr)
			assert.Contains(t, stderr, tc.stderr)
			assert.NotContains(t, stderr, "hunter2-secret")
			assert.NotContains(t, stderr, "tok-SECRET-123")
			_, err := os.Lstat(sock)
			assert.ErrorIs(t, err, fs.ErrNotExist, "no socket on a failed start")
		})
	}
}

func TestVersion(t *testing.T) {
	needBinary(t)
	stdout, _, code := runBin(t, nil, "--version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^fakeryll \d+\.\d+\.\d+`, stdout)
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// lockedBuffer collects a child's output from the exec copier goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running fakeryll.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv(env...)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	require.NoError(t, cmd.Start())
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exited waits for the process to end and returns its state.
func (p *proc) exited(t *testing.T) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(wait):
		require.FailNowf(t, "fakeryll did not exit", "log: %s", p.stderr.String())
		return nil
	}
}

// waitFor polls cond while the process runs, failing if it exits first
// or the deadline passes.
func (p *proc) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		select {
		case <-p.done:
			require.FailNowf(t, "fakeryll exited before "+what, "%v: %s", p.err, p.stderr.String())
		default:
		}
		require.False(t, time.Now().After(deadline), "timed out waiting for %s: %s", what, p.stderr.String())
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSocket waits until the control socket accepts a connection.
func (p *proc) waitSocket(t *testing.T, path string) net.Conn {
	t.Helper()
	var nc net.Conn
	p.waitFor(t, "its socket answered", func() bool {
		var err error
		nc, err = net.Dial("unix", path)
		return err == nil
	})
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// waitLog waits until the process has logged text.
func (p *proc) waitLog(t *testing.T, text string) {
	t.Helper()
	p.waitFor(t, "it logged "+text, func() bool { return strings.Contains(p.stderr.String(), text) })
}

// roundTrip writes one request line and returns the next line read.
func roundTrip(t *testing.T, nc net.Conn, br *bufio.Reader, req string) map[string]any {
	t.Helper()
	require.NoError(t, nc.SetDeadline(time.Now().Add(wait)))
	_, err := nc.Write([]byte(req + "\n"))
	require.NoError(t, err)
	line, err := br.ReadBytes('\n')
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(line, &m))
	return m
}

func hello(t *testing.T, nc net.Conn) *bufio.Reader {
	t.Helper()
	br := bufio.NewReader(nc)
	m := roundTrip(t, nc, br, `{"id": 1, "method": "hello", "params": {"client_name": "main_test", "protocol_version": "1.2"}}`)
	require.Equal(t, true, m["ok"], "%v", m)
	return br
}

func TestSIGINTUnlinksAndExitsZero(t *testing.T) {
	needBinary(t)
	sock := sockPath(t)
	p := start(t, nil, "--headless", "-v", "--direct", "spice.example:5900", "--control-socket", sock)
	hello(t, p.waitSocket(t, sock))
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	st := p.exited(t)
	assert.Equal(t, 0, st.ExitCode(), "log: %s", p.stderr.String())
	_, err := os.Lstat(sock)
	assert.ErrorIs(t, err, fs.ErrNotExist, "socket unlinked on SIGINT")
	assert.Contains(t, p.stderr.String(), "Connecting to spice.example:5900 (TLS: false)")
}

// TestRegularFileAtSocketPathRunsOn: like ryll, a regular file at the
// socket path is left alone, an error is logged and the process runs on
// with no socket until SIGINT, then exits 0.
func TestRegularFileAtSocketPathRunsOn(t *testing.T) {
	needBinary(t)
	sock := sockPath(t)
	require.NoError(t, os.WriteFile(sock, []byte("not a socket"), 0o600))
	p := start(t, nil, "--headless", "--direct", "h:5900", "--control-socket", sock)
	p.waitLog(t, "is not a socket")
	assert.Contains(t, p.stderr.String(), "ERROR")
	_, err := net.Dial("unix", sock)
	assert.Error(t, err, "no control socket")
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, 0, p.exited(t).ExitCode(), "log: %s", p.stderr.String())
	b, err := os.ReadFile(sock)
	require.NoError(t, err)
	assert.Equal(t, "not a socket", string(b), "the file is left alone")
}

func TestSIGTERMEndsTheProcess(t *testing.T) {
	needBinary(t)
	sock := sockPath(t)
	p := start(t, nil, "--headless", "--direct", "h:5900", "--control-socket", sock)
	p.waitSocket(t, sock)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	st := p.exited(t)
	assert.False(t, st.Success())
	ws, ok := st.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	assert.True(t, ws.Signaled(), "dies of the signal, as ryll does")
	assert.Equal(t, syscall.SIGTERM, ws.Signal())
}

func TestCrashAfterExitsZeroAndUnlinks(t *testing.T) {
	needBinary(t)
	sock := sockPath(t)
	p := start(t, []string{"FAKERYLL_CRASH_AFTER=300ms"}, "--headless", "--direct", "h:5900", "--control-socket", sock)
	st := p.exited(t)
	assert.Equal(t, 0, st.ExitCode(), "a headless session that ends exits 0, like ryll: %s", p.stderr.String())
	_, err := os.Lstat(sock)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, p.stderr.String(), "session ended")
}

func TestURLSourceKeepsSecrets(t *testing.T) {
	needBinary(t)
	const token, password = "tok-0123456789", "pw-ABCDEFG"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != token {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "[virt-viewer]\ntype=spice\nhost=10.9.8.7\ntls-port=5901\npassword=%s\ndelete-this-file=1\n", password)
	}))
	t.Cleanup(srv.Close)
	sock := sockPath(t)
	p := start(t, nil, "--headless", "--verbose", "--url", srv.URL+"/console?token="+token, "--control-socket", sock)
	hello(t, p.waitSocket(t, sock))
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, 0, p.exited(t).ExitCode())
	log := p.stderr.String()
	assert.Contains(t, log, "Connecting to 10.9.8.7:0 (TLS: true)")
	assert.Contains(t, log, "/[redacted]", "the URL is logged redacted, past scheme and host")
	assert.NotContains(t, log, token)
	assert.NotContains(t, log, password)
}

func TestKnobsFromFlagsAndEnvironment(t *testing.T) {
	needBinary(t)
	sock := sockPath(t)
	dir := t.TempDir()
	vvPath := filepath.Join(dir, "c.vv")
	truth := filepath.Join(dir, "truth.csv")
	require.NoError(t, os.WriteFile(vvPath, []byte("[virt-viewer]\nhost=h\nport=5900\n"), 0o600))
	p := start(t, []string{"FAKERYLL_DISPLAY_REFRESH=0", "FAKERYLL_DRAW_DELAY=50ms", "FAKERYLL_PROTOCOL_VERSION=1.1"},
		"--headless", "--file", vvPath, "--control-socket", sock,
		"--fake-draw-delay", "5ms", "--fake-draws-per-key", "1", "--fake-truth-file", truth)
	nc := p.waitSocket(t, sock)
	br := bufio.NewReader(nc)
	m := roundTrip(t, nc, br, `{"id": 1, "method": "hello", "params": {"client_name": "t", "protocol_version": "1.2"}}`)
	require.Equal(t, true, m["ok"])
	assert.Equal(t, "1.1", m["result"].(map[string]any)["protocol_version"], "environment knob applied")
	m = roundTrip(t, nc, br, `{"id": 2, "method": "subscribe", "params": {"events": ["surface_drawn"]}}`)
	require.Equal(t, true, m["ok"])
	m = roundTrip(t, nc, br, `{"id": 3, "method": "send_key", "params": {"scancode": 28, "state": "press"}}`)
	require.Equal(t, true, m["ok"])
	for {
		line, err := br.ReadBytes('\n')
		require.NoError(t, err)
		var ev struct {
			Event string `json:"event"`
			Data  struct {
				WallclockUS int64 `json:"wallclock_us"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(line, &ev))
		if ev.Event == "surface_drawn" && ev.Data.WallclockUS > 0 {
			rows, err := sim.ReadTruthFile(truth)
			require.NoError(t, err)
			if len(rows) > 0 { // not the session's first paint
				require.Len(t, rows, 1)
				assert.Equal(t, 5*time.Millisecond, rows[0].FirstDraw(), "the flag wins over the environment")
				assert.Equal(t, ev.Data.WallclockUS, rows[0].FirstDrawUS)
				break
			}
		}
	}
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, 0, p.exited(t).ExitCode())
}

// TestREADMEListsEveryKnob keeps the README's knob table factual.
func TestREADMEListsEveryKnob(t *testing.T) {
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	for _, k := range append(sim.Knobs(), sessionKnob) {
		def := "`" + k.Default + "`"
		if k.Default == "" {
			def = "none"
		}
		row := "| `" + k.Name + "` | `" + k.EnvName() + "` | " + def
		assert.Contains(t, readme, row, "README row for knob %s", k.Name)
	}
}
