package loadgen

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// testPassword is the ticket every test server wants.
var testPassword = secret.NewString("s3cret-ticket")

// startServer starts a Server on loopback, closed at the test's end.
func startServer(tb testing.TB, cfg ServerConfig) *Server {
	tb.Helper()
	s, err := Listen(tb.Context(), "127.0.0.1:0", cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, s.Close()) })
	return s
}

func hostPort(tb testing.TB, s *Server) (string, int) {
	tb.Helper()
	host, port, err := net.SplitHostPort(s.Addr().String())
	require.NoError(tb, err)
	p, err := strconv.Atoi(port)
	require.NoError(tb, err)
	return host, p
}

// waitFor polls cond until it holds, failing the test after limit. It is
// for states the code under test reaches by itself (a writer that has
// stopped on the window), never for timing a measured value.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), limit)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			tb.Fatalf("%s: not within %s", what, limit)
		}
	}
}

// session returns the Server's only session.
func onlySession(tb testing.TB, s *Server) *srvSession {
	tb.Helper()
	var ss *srvSession
	waitFor(tb, 10*time.Second, "the server has a session with a display channel", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.all) != 1 {
			return false
		}
		ss = s.all[0]
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.win != nil
	})
	return ss
}
