package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// These tests prove the Server speaks real SPICE with an independent
// client: fakeryll/spice, written from the documents and checked against
// QEMU's spice-server.

func TestRealClientLinksAndGetsTheBusyDesktop(t *testing.T) {
	const window = 8
	srv := startServer(t, ServerConfig{Password: testPassword, AckWindow: window, DrawSize: 2000, Width: 640, Height: 480})
	host, port := hostPort(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	sess, err := spice.Dial(ctx, spice.Config{Host: host, Port: port, Password: testPassword})
	require.NoError(t, err, "the real client links with the password")
	defer sess.Close()
	require.NotZero(t, sess.SessionID(), "MAIN_INIT carried a session id")
	assert.Equal(t, []uint8{0}, sess.Displays(), "CHANNELS_LIST named display channel 0")

	var surface *spice.SurfaceCreated
	draws := 0
	// More draws than the window lets the server send unacknowledged
	// (2*window): they can only come if the client's ACKs count.
	for draws < 5*window {
		select {
		case ev, ok := <-sess.Events():
			require.True(t, ok, "session ended: %v", sess.Err())
			switch e := ev.(type) {
			case spice.SurfaceCreated:
				surface = &e
			case spice.Draw:
				require.NotNil(t, surface, "a draw came before SURFACE_CREATE")
				assert.Equal(t, spice.DisplayDrawCopy, e.Type)
				assert.Equal(t, surface.ID, e.Surface)
				b := e.Box
				assert.True(t, b.Left >= 0 && b.Top >= 0 && b.Left < b.Right && b.Top < b.Bottom &&
					b.Right <= int32(surface.Width) && b.Bottom <= int32(surface.Height), "box %+v inside the %dx%d surface", b, surface.Width, surface.Height)
				draws++
			}
		case <-ctx.Done():
			t.Fatalf("only %d draws before the deadline (server: %+v)", draws, srv.Stats())
		}
	}
	require.NotNil(t, surface)
	assert.Equal(t, uint32(640), surface.Width)
	assert.Equal(t, uint32(480), surface.Height)
	assert.True(t, surface.Primary)
	assert.Equal(t, uint32(32), surface.Format, "32_xRGB")

	st := srv.Stats()
	require.Len(t, st.PerSession, 1)
	assert.Equal(t, sess.SessionID(), st.PerSession[0].Session)
	assert.GreaterOrEqual(t, st.Acks, uint64(3), "the client's ACKs were counted")
	assert.Zero(t, st.LinkFailures)
	assert.Empty(t, st.PerSession[0].Error)
}

func TestRealClientRefusedWithTheWrongPassword(t *testing.T) {
	srv := startServer(t, ServerConfig{Password: testPassword})
	host, port := hostPort(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := spice.Dial(ctx, spice.Config{Host: host, Port: port, Password: secret.NewString("wrong")})
	require.Error(t, err)
	assert.True(t, errors.Is(err, spice.ErrPermissionDenied), "got %v", err)
	assert.NotContains(t, err.Error(), testPassword.Reveal())
	// The server counts the refusal once it has answered it.
	waitFor(t, 10*time.Second, "the server counted the refused link", func() bool { return srv.Stats().LinkFailures == 1 })
	assert.Zero(t, srv.Stats().Sessions)
}

func TestRealClientPingsAnswered(t *testing.T) {
	srv := startServer(t, ServerConfig{BitsPerSecond: 200_000, PingInterval: 5 * time.Millisecond})
	host, port := hostPort(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	sess, err := spice.Dial(ctx, spice.Config{Host: host, Port: port})
	require.NoError(t, err, "no password: any ticket links")
	defer sess.Close()
	waitFor(t, 15*time.Second, "the server got PONGs", func() bool { return srv.Stats().Pongs >= 3 })
	st := srv.Stats()
	assert.GreaterOrEqual(t, st.Pings, st.Pongs)
}
