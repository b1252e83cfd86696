package loadgen

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/qemu/qemutest"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// The load client against QEMU's own spice-server: what it expects of a
// SPICE client (link and ticket, ATTACH_CHANNELS, DISPLAY_INIT, ACK_SYNC,
// an ACK every window messages) the Client must do, or spice-server stops
// sending after about 40 messages.
func TestClientAgainstQEMUSpiceServer(t *testing.T) {
	pw := qemu.NewPassword()
	vm := qemutest.Boot(t, "the real spice-server check", qemu.Spec{Image: guest.Image, Password: pw})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	host, port := vm.SpiceAddr()
	addr := net.JoinHostPort(host, strconv.Itoa(port))

	_, err := Dial(ctx, ClientConfig{Addr: addr, Password: secret.NewString("not-it")})
	assert.ErrorIs(t, err, ErrPermissionDenied, "spice-server refuses a wrong ticket")

	cl, err := Dial(ctx, ClientConfig{Addr: addr, Password: pw})
	require.NoError(t, err, "link to spice-server")
	defer cl.Close()
	waitFor(t, 30*time.Second, "the guest's first paint", func() bool { return cl.Stats().Draws > 0 })

	press := func() {
		key := map[string]any{"keys": []map[string]string{{"type": "qcode", "data": "spc"}}}
		require.NoError(t, vm.Execute(ctx, "send-key", key, nil))
	}
	// Each key repaints the screen (about 23 draws, fewer when
	// spice-server merges draws that cover each other). Keys until well
	// past the 40 messages spice-server sends unacknowledged: each one's
	// repaint can only come if the client's ACKs count.
	for keys := 0; cl.display.sinceSetAck.Load() <= 3*DefaultAckWindow; keys++ {
		require.Less(t, keys, 100, "100 keys and still not 60 messages: %+v", cl.Stats())
		before := cl.Stats().Draws
		press()
		waitFor(t, 20*time.Second, "the key's repaint", func() bool { return cl.Stats().Draws > before })
	}
	st := cl.Stats()
	assert.NotZero(t, st.Session)
	assert.GreaterOrEqual(t, st.Acks, uint64(3), "ACKs sent every window (20) messages")
	require.NoError(t, cl.Err())
	require.NoError(t, cl.Close())

	// The rule the Server copies, seen on spice-server itself: a client
	// that never ACKs gets exactly 2*window messages after SET_ACK.
	mute, err := Dial(ctx, ClientConfig{Addr: addr, Password: pw, noAck: true})
	require.NoError(t, err, "link a client that never ACKs")
	defer mute.Close()
	const keys = 8
	keys0, err := vm.ReadCounter(ctx, guest.CounterAddr, guest.CounterSize)
	require.NoError(t, err)
	for range keys {
		press()
	}
	waitFor(t, 30*time.Second, "the guest counted the keys", func() bool {
		n, err := vm.ReadCounter(ctx, guest.CounterAddr, guest.CounterSize)
		return err == nil && n == keys0+keys
	})
	waitFor(t, 30*time.Second, "40 messages after SET_ACK", func() bool { return mute.display.sinceSetAck.Load() >= 40 })
	// The guest has repainted eight times (some 180 draws); spice-server
	// has had a second more to send them, and sent none past the window.
	time.Sleep(time.Second)
	assert.Equal(t, uint32(2*DefaultAckWindow), mute.display.sinceSetAck.Load(),
		"spice-server stops at 2*window unacknowledged messages, SET_ACK counted as one")
}
