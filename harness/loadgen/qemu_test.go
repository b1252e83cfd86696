package loadgen

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// The load client against QEMU's own spice-server: what it expects of a
// SPICE client (link and ticket, ATTACH_CHANNELS, DISPLAY_INIT, ACK_SYNC,
// an ACK every window messages) the Client must do, or spice-server stops
// sending after about 40 messages.
func TestClientAgainstQEMUSpiceServer(t *testing.T) {
	if _, err := qemu.LookBinary(""); err != nil {
		if errors.Is(err, qemu.ErrNotFound) {
			t.Skipf("the real spice-server check needs QEMU: %v", err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	pw := qemu.NewPassword()
	vm, err := qemu.Start(ctx, qemu.Spec{Image: guest.Image, Password: pw, LogPath: filepath.Join(t.TempDir(), "qemu.log")})
	require.NoError(t, err, "boot the guest")
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		assert.NoError(t, vm.Stop(sctx))
	}()
	host, port := vm.SpiceAddr()
	addr := net.JoinHostPort(host, strconv.Itoa(port))

	_, err = Dial(ctx, ClientConfig{Addr: addr, Password: secret.NewString("not-it")})
	assert.ErrorIs(t, err, ErrPermissionDenied, "spice-server refuses a wrong ticket")

	cl, err := Dial(ctx, ClientConfig{Addr: addr, Password: pw})
	require.NoError(t, err, "link to spice-server")
	defer cl.Close()
	waitFor(t, 30*time.Second, "the guest's first paint", func() bool { return cl.Stats().Draws > 0 })

	// Each key repaints the screen (about 23 draws): 8 keys are several
	// times the 40 messages spice-server sends unacknowledged.
	for range 8 {
		key := map[string]any{"keys": []map[string]string{{"type": "qcode", "data": "spc"}}}
		require.NoError(t, vm.Execute(ctx, "send-key", key, nil))
		before := cl.Stats().Draws
		waitFor(t, 20*time.Second, "the key's repaint", func() bool { return cl.Stats().Draws > before })
	}
	waitFor(t, 20*time.Second, "over 100 draws", func() bool { return cl.Stats().Draws > 100 })
	st := cl.Stats()
	assert.NotZero(t, st.Session)
	assert.GreaterOrEqual(t, st.Acks, uint64(3), "ACKs sent every window (20) messages")
	require.NoError(t, cl.Err())
}
