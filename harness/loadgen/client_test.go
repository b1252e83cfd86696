package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

func TestClientLinksReadsAndAcks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		full   bool
		header uint64
	}{{"mini header", false, miniHeaderSize}, {"full header", true, fullHeaderSize}} {
		t.Run(tc.name, func(t *testing.T) {
			const window = 6
			srv := startServer(t, ServerConfig{Password: testPassword, AckWindow: window, DrawSize: 1000})
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cl, err := Dial(ctx, ClientConfig{Addr: srv.Addr().String(), Password: testPassword, fullHeader: tc.full})
			require.NoError(t, err)
			defer cl.Close()
			// Many times the window: only a client whose ACKs count gets these.
			waitFor(t, 15*time.Second, "the client read 20 windows of draws", func() bool { return cl.Stats().Draws >= 20*window })
			require.NoError(t, cl.Close())
			require.NoError(t, cl.Err(), "a closed session is not a failed one")
			ss := onlySession(t, srv)
			waitFor(t, 10*time.Second, "the server saw the session end", func() bool {
				ss.c.mu.Lock()
				defer ss.c.mu.Unlock()
				return !ss.c.ended.IsZero()
			})

			c, s := cl.Stats(), srv.Stats()
			assert.Equal(t, s.PerSession[0].Session, c.Session, "the client's session is the server's")
			assert.GreaterOrEqual(t, s.PerSession[0].Messages, c.Messages, "the client read no more than the server sent")
			assert.GreaterOrEqual(t, c.Acks, c.Messages/window-1, "an ACK every window messages")
			assert.Equal(t, uint64(3), c.Messages-c.Draws, "SET_ACK, SURFACE_CREATE and MARK besides the draws")
			draw := uint64(srv.DrawMessageSize()) - miniHeaderSize + tc.header
			assert.Equal(t, draw*c.Draws+3*tc.header+8+20, c.Bytes, "bytes are whole messages, headers included")
		})
	}
}

func TestClientRefusedWithTheWrongPassword(t *testing.T) {
	srv := startServer(t, ServerConfig{Password: testPassword})
	_, err := Dial(t.Context(), ClientConfig{Addr: srv.Addr().String(), Password: secret.NewString("nope")})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrPermissionDenied)
	var refused *LinkRefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, uint32(linkErrPermission), refused.Code)
	// The server counts the refusal once it has answered it.
	waitFor(t, 10*time.Second, "the server counted the refused link", func() bool { return srv.Stats().LinkFailures == 1 })
}

func TestServerRefusesAChannelOfAnUnknownSession(t *testing.T) {
	srv := startServer(t, ServerConfig{Password: testPassword})
	_, _, err := (&Client{}).link(t.Context(), srv.Addr().String(), 12345, chanDisplay, testPassword.Reveal())
	var refused *LinkRefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, uint32(linkErrBadConnection), refused.Code)
}

func TestClientHoldsNoMoreThanTheRate(t *testing.T) {
	// 400 kbit/s, 50 000 bytes/s; about 40 KB in all.
	const rate = 400_000
	srv := startServer(t, ServerConfig{BitsPerSecond: rate, DrawSize: 4000})
	t0 := time.Now()
	cl, err := Dial(t.Context(), ClientConfig{Addr: srv.Addr().String()})
	require.NoError(t, err)
	defer cl.Close()
	waitFor(t, 20*time.Second, "the client read 10 draws", func() bool { return cl.Stats().Draws >= 10 })
	elapsed := time.Since(t0)
	got := cl.Stats().Bytes
	// Every message leaves only when the ones before it have had their
	// time at the rate (less the pacer's small credit), so the bytes
	// read, less the last message, took at least their time. Delays only
	// add to elapsed.
	least := time.Duration(float64(got-uint64(srv.DrawMessageSize()))*8/rate*float64(time.Second)) - pacerCredit
	assert.GreaterOrEqual(t, elapsed, least, "%d bytes at %d bit/s", got, rate)
}

func TestGroupStartsAndStopsTogether(t *testing.T) {
	srv := startServer(t, ServerConfig{Password: testPassword, BitsPerSecond: 100_000, DrawSize: 500})
	g, err := Start(t.Context(), ClientConfig{Addr: srv.Addr().String(), Password: testPassword}, 12, 4)
	require.NoError(t, err)
	waitFor(t, 15*time.Second, "every session drew", func() bool {
		for _, s := range g.Stats().PerSession {
			if s.Draws == 0 {
				return false
			}
		}
		return true
	})
	st := g.Stop()
	assert.Equal(t, 12, st.Sessions)
	assert.Zero(t, st.Failed)
	for _, c := range g.clients {
		select {
		case <-c.Done():
		default:
			t.Error("a session's goroutines outlived Stop")
		}
	}
	assert.Equal(t, st, g.Stop(), "Stop twice returns the same figures")

	// The sidecar shape: snake_case, seconds as _s floats.
	b, err := json.Marshal(st)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"sessions", "failed", "messages", "bytes", "ack_waits", "ack_wait_s", "duration_s", "per_session"} {
		assert.Contains(t, m, k)
	}
	assert.Equal(t, 12, srv.Stats().Sessions)
}

func TestGroupEndsWithItsContext(t *testing.T) {
	srv := startServer(t, ServerConfig{BitsPerSecond: 100_000})
	ctx, cancel := context.WithCancel(t.Context())
	g, err := Start(ctx, ClientConfig{Addr: srv.Addr().String()}, 5, 0)
	require.NoError(t, err)
	cancel()
	for _, c := range g.clients {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a session outlived its context")
		}
	}
	st := g.Stop()
	assert.Zero(t, st.Failed, "a stop is not a failure")
}

func TestGroupSaysWhenTheServerGoesAway(t *testing.T) {
	srv, err := Listen(t.Context(), "127.0.0.1:0", ServerConfig{BitsPerSecond: 100_000})
	require.NoError(t, err)
	g, err := Start(t.Context(), ClientConfig{Addr: srv.Addr().String()}, 3, 0)
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	waitFor(t, 10*time.Second, "every session saw the server go", func() bool { return g.Failed() == 3 })
	st := g.Stop()
	assert.Equal(t, 3, st.Failed, "sessions the server ended are failures, loudly")
	for _, s := range st.PerSession {
		assert.NotEmpty(t, s.Error)
	}
}

func TestGroupStartFailsWholeAndCleansUp(t *testing.T) {
	srv := startServer(t, ServerConfig{Password: testPassword})
	_, err := Start(t.Context(), ClientConfig{Addr: srv.Addr().String(), Password: secret.NewString("bad")}, 6, 2)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrPermissionDenied), "the first real cause is named: %v", err)
	assert.Contains(t, err.Error(), "of 6 sessions linked")
}
