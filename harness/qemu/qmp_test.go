package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
)

// greeting is what QEMU 7.2 sends first (captured from Debian's build).
const greeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}`

// fakeQMP is the far side of a QMP connection, scripted per test. It
// speaks from QEMU's documented wire format (one JSON object per line
// ending in "\r\n"), not from what our client sends.
type fakeQMP struct {
	conn net.Conn
	r    *bufio.Reader
}

// command reads the next command; it reports a failure as an error
// because it runs on the server goroutine, where t.Fatal is not allowed.
func (f *fakeQMP) command() (cmd string, id json.RawMessage, args map[string]any, err error) {
	line, err := f.r.ReadBytes('\n')
	if err != nil {
		return "", nil, nil, fmt.Errorf("fake qmp: read command: %w", err)
	}
	var m struct {
		Execute   string          `json:"execute"`
		ID        json.RawMessage `json:"id"`
		Arguments map[string]any  `json:"arguments"`
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return "", nil, nil, fmt.Errorf("fake qmp: command %q is not JSON: %w", line, err)
	}
	return m.Execute, m.ID, m.Arguments, nil
}

func (f *fakeQMP) send(line string) error {
	_, err := f.conn.Write([]byte(line + "\r\n"))
	return err
}

func (f *fakeQMP) answer(id json.RawMessage, ret string) error {
	return f.send(fmt.Sprintf(`{"return": %s, "id": %s}`, ret, id))
}

// handshake sends the greeting and answers qmp_capabilities.
func (f *fakeQMP) handshake() error {
	if err := f.send(greeting); err != nil {
		return err
	}
	cmd, id, _, err := f.command()
	if err != nil {
		return err
	}
	if cmd != "qmp_capabilities" {
		return fmt.Errorf("fake qmp: first command %q, want qmp_capabilities", cmd)
	}
	return f.answer(id, "{}")
}

// serveQMP is serveRaw with the greeting and capability negotiation done
// before script runs.
func serveQMP(t *testing.T, script func(f *fakeQMP) error) string {
	t.Helper()
	return serveRaw(t, func(f *fakeQMP) error {
		if err := f.handshake(); err != nil {
			return err
		}
		return script(f)
	})
}

// serveRaw listens on a fresh socket and runs script on the first
// connection. The script's error fails the test at cleanup; the server is
// closed and waited for.
func serveRaw(t *testing.T, script func(f *fakeQMP) error) string {
	t.Helper()
	// A short path: t.TempDir() can push a socket over sun_path's limit.
	dir, err := os.MkdirTemp("", "qmpt-")
	require.NoError(t, err)
	path := filepath.Join(dir, "qmp.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var scriptErr error
	var conn net.Conn
	var mu sync.Mutex
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return // closed before a client came
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		scriptErr = script(&fakeQMP{conn: c, r: bufio.NewReader(c)})
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		if conn != nil {
			_ = conn.Close()
		}
		mu.Unlock()
		wg.Wait()
		if scriptErr != nil && !errors.Is(scriptErr, net.ErrClosed) && !strings.Contains(scriptErr.Error(), "EOF") {
			t.Errorf("fake QMP server: %v", scriptErr)
		}
		_ = os.RemoveAll(dir)
	})
	return path
}

// hold keeps the server's side open until the client goes away.
func hold(f *fakeQMP) error {
	_, _ = f.r.ReadBytes(0)
	return nil
}

func dial(t *testing.T, path string) *QMP {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func TestQMPExecuteSkipsEvents(t *testing.T) {
	path := serveQMP(t, func(f *fakeQMP) error {
		cmd, id, args, err := f.command()
		if err != nil {
			return err
		}
		if cmd != "human-monitor-command" || args["command-line"] != "xp /1xh 0x500" {
			return fmt.Errorf("got %s %v", cmd, args)
		}
		// Events may come at any time, before and between answers.
		for _, ev := range []string{
			`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESET", "data": {"guest": true, "reason": "guest-reset"}}`,
			`{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "SPICE_CONNECTED", "data": {}}`,
		} {
			if err := f.send(ev); err != nil {
				return err
			}
		}
		if err := f.answer(id, `"0000000000000500: 0x0007\r\n"`); err != nil {
			return err
		}
		return hold(f)
	})
	q := dial(t, path)
	assert.Equal(t, "7.2.22", q.Greeting().String())
	assert.Equal(t, "Debian 1:7.2+dfsg-7+deb12u18+b3", q.Greeting().Package)

	var out string
	err := q.Execute(t.Context(), "human-monitor-command", map[string]string{"command-line": "xp /1xh 0x500"}, &out)
	require.NoError(t, err)
	assert.Equal(t, "0000000000000500: 0x0007\r\n", out)
	assert.Equal(t, uint64(2), q.Events())
	assert.NoError(t, q.Err())
}

func TestQMPErrorIsTyped(t *testing.T) {
	path := serveQMP(t, func(f *fakeQMP) error {
		_, id, _, err := f.command()
		if err != nil {
			return err
		}
		if err := f.send(fmt.Sprintf(`{"id": %s, "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}`, id)); err != nil {
			return err
		}
		// The connection stays usable after a refused command.
		_, id, _, err = f.command()
		if err != nil {
			return err
		}
		if err := f.answer(id, `{"status": "running", "running": true}`); err != nil {
			return err
		}
		return hold(f)
	})
	q := dial(t, path)
	err := q.Execute(t.Context(), "nosuch", nil, nil)
	var qe *QMPError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, "nosuch", qe.Command)
	assert.Equal(t, "CommandNotFound", qe.Class)
	assert.Contains(t, err.Error(), "has not been found")
	assert.NotErrorIs(t, err, ErrQMPClosed)

	var st struct{ Status string }
	require.NoError(t, q.Execute(t.Context(), "query-status", nil, &st))
	assert.Equal(t, "running", st.Status)
}

// TestQMPBadLinesEndTheConnection: whatever the peer sends, a call ends
// with an error wrapping ErrQMPClosed that names the cause, never a panic
// or a hang, and later calls fail at once.
func TestQMPBadLinesEndTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
	}{
		{"malformed JSON", `{"return": {}, "id": `, "malformed line"},
		{"not an object", `[1, 2, 3]`, "malformed line"},
		{"neither answer nor event", `{"id": "k2"}`, "neither an answer nor an event"},
		{"answer without id", `{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword"}}`, "answer without an id (GenericError: JSON parse error"},
		{"id we never sent", `{"return": {}, "id": {"a": 1}}`, "id we never sent"},
		{"second greeting", greeting, "second greeting"},
		{"line too long", `"` + strings.Repeat("x", maxQMPLine+10) + `"`, "longer than"},
		{"cut off mid-line", `{"return": {}`, "mid-line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := serveQMP(t, func(f *fakeQMP) error {
				if _, _, _, err := f.command(); err != nil {
					return err
				}
				if tc.want == "mid-line" {
					_, err := f.conn.Write([]byte(tc.line))
					_ = f.conn.Close()
					return err
				}
				if err := f.send(tc.line); err != nil {
					return err
				}
				return hold(f)
			})
			q := dial(t, path)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := q.Execute(ctx, "query-status", nil, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrQMPClosed)
			assert.Contains(t, err.Error(), tc.want)
			assert.NoError(t, ctx.Err(), "the call must end because of the line, not the timeout")

			select {
			case <-q.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done did not close after a protocol error")
			}
			assert.ErrorIs(t, q.Err(), ErrQMPClosed)
			err = q.Execute(t.Context(), "query-status", nil, nil)
			assert.ErrorIs(t, err, ErrQMPClosed)
		})
	}
}

func TestQMPDialRefusesBadGreeting(t *testing.T) {
	for _, tc := range []struct{ name, line, want string }{
		{"not JSON", "hello there", "greeting is not JSON"},
		{"not a greeting", `{"return": {}}`, "not a QMP greeting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := serveRaw(t, func(f *fakeQMP) error {
				if err := f.send(tc.line); err != nil {
					return err
				}
				return hold(f)
			})
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := DialQMP(ctx, path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestQMPDialRefusedCapabilities(t *testing.T) {
	path := serveRaw(t, func(f *fakeQMP) error {
		if err := f.send(greeting); err != nil {
			return err
		}
		_, id, _, err := f.command()
		if err != nil {
			return err
		}
		if err := f.send(fmt.Sprintf(`{"id": %s, "error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}`, id)); err != nil {
			return err
		}
		return hold(f)
	})
	_, err := DialQMP(t.Context(), path)
	var qe *QMPError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, "qmp_capabilities", qe.Command)
}

func TestQMPSilenceIsBoundedByContext(t *testing.T) {
	t.Run("no greeting", func(t *testing.T) {
		path := serveRaw(t, hold)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := DialQMP(ctx, path)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "read greeting")
	})
	t.Run("no answer", func(t *testing.T) {
		path := serveQMP(t, hold) // reads the command and never answers
		q := dial(t, path)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err := q.Execute(ctx, "query-status", nil, nil)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "no answer")
		assert.NoError(t, q.Err(), "a call giving up does not end the connection")
	})
}

// TestQMPLateAnswerIsDropped: the answer to a call that gave up must not
// be handed to the next call.
func TestQMPLateAnswerIsDropped(t *testing.T) {
	release := make(chan struct{})
	path := serveQMP(t, func(f *fakeQMP) error {
		_, slowID, _, err := f.command()
		if err != nil {
			return err
		}
		<-release
		_, id, _, err := f.command()
		if err != nil {
			return err
		}
		if err := f.answer(slowID, `"late"`); err != nil {
			return err
		}
		if err := f.answer(id, `"fresh"`); err != nil {
			return err
		}
		return hold(f)
	})
	q := dial(t, path)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var out string
	require.ErrorIs(t, q.Execute(ctx, "slow", nil, &out), context.DeadlineExceeded)
	close(release)
	require.NoError(t, q.Execute(t.Context(), "fast", nil, &out))
	assert.Equal(t, "fresh", out)
}

// TestQMPConcurrentCalls: answers go to their own callers whatever order
// they come in.
func TestQMPConcurrentCalls(t *testing.T) {
	const n = 8
	path := serveQMP(t, func(f *fakeQMP) error {
		type call struct {
			id   json.RawMessage
			name string
		}
		var calls []call
		for range n {
			cmd, id, _, err := f.command()
			if err != nil {
				return err
			}
			calls = append(calls, call{id, cmd})
		}
		for i := len(calls) - 1; i >= 0; i-- {
			if err := f.answer(calls[i].id, fmt.Sprintf("%q", calls[i].name)); err != nil {
				return err
			}
		}
		return hold(f)
	})
	q := dial(t, path)
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = q.Execute(t.Context(), fmt.Sprintf("cmd-%d", i), nil, &got[i])
		})
	}
	wg.Wait()
	for i := range n {
		assert.NoError(t, errs[i])
		assert.Equal(t, fmt.Sprintf("cmd-%d", i), got[i])
	}
}

// TestQMPPeerGoneFailsPendingCalls: a QEMU that exits mid-call (answers
// quit, or dies) ends the call with ErrQMPClosed, and an answer that
// came just before the close still counts.
func TestQMPPeerGoneFailsPendingCalls(t *testing.T) {
	t.Run("closed without answer", func(t *testing.T) {
		path := serveQMP(t, func(f *fakeQMP) error {
			if _, _, _, err := f.command(); err != nil {
				return err
			}
			return f.conn.Close()
		})
		q := dial(t, path)
		err := q.Execute(t.Context(), "query-status", nil, nil)
		assert.ErrorIs(t, err, ErrQMPClosed)
		assert.Contains(t, err.Error(), "EOF")
	})
	t.Run("answered then closed", func(t *testing.T) {
		path := serveQMP(t, func(f *fakeQMP) error {
			_, id, _, err := f.command()
			if err != nil {
				return err
			}
			if err := f.answer(id, "{}"); err != nil {
				return err
			}
			if err := f.send(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}`); err != nil {
				return err
			}
			return f.conn.Close()
		})
		q := dial(t, path)
		assert.NoError(t, q.Execute(t.Context(), "quit", nil, nil))
	})
	// QEMU killed: the command's write can fail (EPIPE) before the reader
	// sees the end. The call still says the connection closed, and the
	// next one does too.
	t.Run("a write refused before the reader sees the end", func(t *testing.T) {
		shut, release := make(chan struct{}), make(chan struct{})
		path := serveQMP(t, func(f *fakeQMP) error {
			if err := f.conn.(*net.UnixConn).CloseRead(); err != nil {
				return err
			}
			close(shut)
			<-release
			return nil
		})
		q := dial(t, path)
		defer close(release)
		<-shut
		err := q.Execute(t.Context(), "query-status", nil, nil)
		require.ErrorIs(t, err, ErrQMPClosed)
		assert.ErrorIs(t, err, syscall.EPIPE)
		assert.ErrorIs(t, q.Execute(t.Context(), "query-status", nil, nil), ErrQMPClosed, "the connection stays closed")
	})
}

func TestQMPCloseTwiceAndAfter(t *testing.T) {
	path := serveQMP(t, hold)
	q := dial(t, path)
	require.NoError(t, q.Close())
	require.NoError(t, q.Close())
	assert.ErrorIs(t, q.Err(), ErrQMPClosed)
	assert.ErrorIs(t, q.Execute(t.Context(), "query-status", nil, nil), ErrQMPClosed)
}

func TestQMPBadResultShape(t *testing.T) {
	path := serveQMP(t, func(f *fakeQMP) error {
		_, id, _, err := f.command()
		if err != nil {
			return err
		}
		if err := f.answer(id, `{"qemu": "seven"}`); err != nil {
			return err
		}
		return hold(f)
	})
	q := dial(t, path)
	var v QMPVersion
	err := q.Execute(t.Context(), "query-version", nil, &v)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "decode answer")
	assert.NoError(t, q.Err(), "an answer of the wrong shape does not end the connection")
}

func TestQMPDialNoSocket(t *testing.T) {
	_, err := DialQMP(t.Context(), filepath.Join(t.TempDir(), "none.sock"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to qmp")
}
