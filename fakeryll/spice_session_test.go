package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/control/controltest"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/qemu/qemutest"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// These tests run fakeryll --fake-session spice against a real QEMU
// booting the repaint-on-key guest, and drive its control socket with the
// project's own client.

// keyA is the AT set-1 make code of 'a'.
const keyA = 0x1E

// bootGuest boots the guest (with a SPICE password when pw is set) and
// stops it at cleanup.
func bootGuest(t *testing.T, pw secret.String) *qemu.VM {
	t.Helper()
	return qemutest.Boot(t, "fakeryll's SPICE client against the guest under QEMU", qemu.Spec{Image: guest.Image, Password: pw})
}

func spiceAddr(vm *qemu.VM) string {
	host, port := vm.SpiceAddr()
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// startSPICE runs fakeryll in spice mode, verbose, so that any leak of a
// secret would show in its log.
func startSPICE(t *testing.T, source ...string) (*proc, string) {
	t.Helper()
	sock := sockPath(t)
	args := append([]string{"--headless", "-v", "--control-socket", sock}, source...)
	return start(t, []string{"FAKERYLL_SESSION=spice"}, args...), sock
}

// controlClient does hello over the control socket.
func controlClient(t *testing.T, p *proc, sock string) *control.Client {
	t.Helper()
	c := control.NewClient(p.waitSocket(t, sock), control.Options{ClientName: "fakeryll-spice-test"})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	_, err := c.Hello(ctx)
	require.NoError(t, err)
	return c
}

// guestScreen is the boot-sector guest's text mode under -vga std.
// SeaBIOS shows a 640x480 surface first, so a surface alone does not
// mean the guest is waiting for keys.
var guestScreen = control.Surface{ChannelID: 0, SurfaceID: 0, Width: 720, Height: 400}

// waitGuest polls status until the guest's own screen exists, then waits
// until quiet passes without an event, so that the boot's last draws are
// not taken for a key's.
func waitGuest(t *testing.T, p *proc, c *control.Client) control.Status {
	t.Helper()
	var st control.Status
	p.waitFor(t, "the guest's 720x400 screen appeared", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		var err error
		st, err = c.Status(ctx)
		require.NoError(t, err)
		return len(st.Surfaces) == 1 && st.Surfaces[0] == guestScreen
	})
	quiet := time.NewTimer(500 * time.Millisecond)
	defer quiet.Stop()
	deadline := time.After(wait)
	for {
		select {
		case <-c.Events():
			quiet.Reset(500 * time.Millisecond)
		case <-quiet.C:
			return st
		case <-deadline:
			require.FailNow(t, "the guest's screen never went quiet")
		}
	}
}

// drawsAfter lets the screen go quiet for quiet, sends one key press and
// collects the surface_drawn events of its repaint: every draw until
// quiet passes with none. A draw fakeryll stamped before the send is the
// tail of an earlier paint (a TCG guest on a loaded host paints its boot
// screen in pieces further apart than any quiet wait), not this key's:
// it is left out and logged. A client stamping its draws early would
// leave out the key's own repaint, which the caller's count catches.
func drawsAfter(t *testing.T, c *control.Client, quiet time.Duration) (sent time.Time, draws []control.SurfaceDrawn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	settle := time.NewTimer(quiet)
	defer settle.Stop()
	for settled := false; !settled; {
		select {
		case <-c.Events():
			settle.Reset(quiet)
		case <-settle.C:
			settled = true
		case <-ctx.Done():
			require.FailNow(t, "the screen never went quiet before the key")
		}
	}
	sent, err := c.SendKey(ctx, keyA, control.KeyPress)
	require.NoError(t, err)
	first := time.NewTimer(wait) // the repaint's first draw may take a while on a busy host
	defer first.Stop()
	timeout := first.C
	for {
		select {
		case ev := <-c.Events():
			if ev.Name != control.EventSurfaceDrawn {
				continue
			}
			d, err := ev.SurfaceDrawn()
			require.NoError(t, err)
			if d.Wallclock().Before(sent.Truncate(time.Microsecond)) {
				t.Logf("a draw stamped %v before the key was sent: an earlier paint's tail, not this key's", sent.Sub(d.Wallclock()))
				continue
			}
			draws = append(draws, d)
			first.Reset(quiet)
		case <-timeout:
			return sent, draws
		case <-c.Done():
			require.FailNow(t, "control connection ended", "%v", c.Err())
		}
	}
}

func readCounter(t *testing.T, vm *qemu.VM) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	n, err := vm.ReadCounter(ctx, guest.CounterAddr, guest.CounterSize)
	require.NoError(t, err)
	return n
}

// gate is a TCP proxy in front of the SPICE server that holds every
// connection until open is called, so a test can subscribe before the
// session links and see what the server sends at connect.
type gate struct {
	ln     net.Listener
	target string
	opened chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &gate{ln: ln, target: target, opened: make(chan struct{})}
	g.wg.Go(g.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		g.open()
		g.wg.Wait()
	})
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }
func (g *gate) open()        { g.once.Do(func() { close(g.opened) }) }

func (g *gate) serve() {
	for {
		in, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.wg.Go(func() {
			defer in.Close()
			<-g.opened
			out, err := net.DialTimeout("tcp", g.target, wait)
			if err != nil {
				return
			}
			defer out.Close()
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.(*net.TCPConn).CloseWrite()
				done <- struct{}{}
			}
			go pipe(out, in)
			go pipe(in, out)
			<-done
			<-done
		})
	}
}

func TestSPICESessionServesTheControlSocket(t *testing.T) {
	needBinary(t)
	vm := bootGuest(t, secret.String{})
	g := newGate(t, spiceAddr(vm))
	p, sock := startSPICE(t, "--direct", g.addr())
	c := controlClient(t, p, sock)

	// The socket answers before the SPICE session is up, as ryll's does.
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.True(t, st.SpiceConnected, "ryll's spice_connected starts out true")
	assert.Empty(t, st.Surfaces, "no surface before the link")
	subscribed, err := c.Subscribe(ctx, control.EventSurfaceDrawn, control.EventLatency)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{control.EventSurfaceDrawn, control.EventLatency}, subscribed)
	g.open()

	// spice-server pings three times at connect: two latency samples,
	// near zero, each stamped after its PONG.
	var lat []control.Latency
	deadline := time.After(wait)
	for len(lat) < 2 {
		select {
		case ev := <-c.Events():
			if ev.Name == control.EventLatency {
				l, err := ev.Latency()
				require.NoError(t, err)
				lat = append(lat, l)
			}
		case <-deadline:
			require.FailNow(t, "fewer than two latency events", "got %v: %s", lat, p.stderr.String())
		}
	}
	for _, l := range lat {
		assert.GreaterOrEqual(t, l.SampleMS, 0.0)
		assert.Less(t, l.SampleMS, 5000.0, "the PINGs at connect come close together")
		assert.WithinDuration(t, time.Now(), l.Wallclock(), time.Minute)
	}

	st = waitGuest(t, p, c)
	assert.Equal(t, []control.Surface{guestScreen}, st.Surfaces)

	const keys = 3
	for i := range keys {
		sent, draws := drawsAfter(t, c, 300*time.Millisecond)
		require.NotEmpty(t, draws, "key %d drew nothing", i+1)
		t.Logf("key %d: %d draws, first %v after the send", i+1, len(draws), draws[0].Wallclock().Sub(sent))
		// 720 pixels in 32-pixel strips: 23 when the repaint lands in one
		// display refresh, twice that when a refresh splits it, and up to
		// three times on a loaded host, where the TCG guest's repaint
		// spans three refreshes (49 beside a second make test). A key
		// handled twice is the counter's to catch, below.
		assert.GreaterOrEqual(t, len(draws), 23, "a whole-screen repaint")
		assert.LessOrEqual(t, len(draws), 3*23, "one repaint, not several")
		for _, d := range draws {
			assert.Equal(t, uint8(0), d.DisplayChannelID)
			assert.Equal(t, uint32(0), d.SurfaceID)
			assert.Positive(t, d.ProducedAtSecs)
		}
	}
	assert.Equal(t, uint64(keys), readCounter(t, vm), "every key reached the guest exactly once")

	require.NoError(t, c.Close()) // one client at a time
	_, err = controltest.Call(ctx, sock, "screenshot", map[string]string{"format": "png"})
	var pe *control.ProtocolError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "not_implemented", pe.Code)

	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, 0, p.exited(t).ExitCode(), "log: %s", p.stderr.String())
	_, err = os.Lstat(sock)
	assert.ErrorIs(t, err, fs.ErrNotExist, "socket unlinked on SIGINT")
}

// writeVV writes a 0600 .vv file for the VM with password pw.
func writeVV(t *testing.T, vm *qemu.VM, pw string) string {
	t.Helper()
	host, port := vm.SpiceAddr()
	path := filepath.Join(t.TempDir(), "console.vv")
	body := fmt.Sprintf("[virt-viewer]\ntype=spice\nhost=%s\nport=%d\npassword=%s\n", host, port, pw)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestSPICEPasswordFromVVFile(t *testing.T) {
	needBinary(t)
	pw := qemu.NewPassword()
	vm := bootGuest(t, pw)

	t.Run("right password", func(t *testing.T) {
		p, sock := startSPICE(t, "--file", writeVV(t, vm, pw.Reveal()))
		c := controlClient(t, p, sock)
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		_, err := c.Subscribe(ctx, control.EventSurfaceDrawn)
		require.NoError(t, err)
		waitGuest(t, p, c)
		before := readCounter(t, vm)
		_, draws := drawsAfter(t, c, 300*time.Millisecond)
		assert.NotEmpty(t, draws)
		assert.Equal(t, before+1, readCounter(t, vm))
		require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
		assert.Equal(t, 0, p.exited(t).ExitCode())
		assert.NotContains(t, p.stderr.String(), pw.Reveal(), "the password is in no log line")
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-password-0451"
		p, sock := startSPICE(t, "--file", writeVV(t, vm, wrong))
		st := p.exited(t)
		log := p.stderr.String()
		assert.Equal(t, 0, st.ExitCode(), "a failed headless connection exits 0, like ryll: %s", log)
		assert.Contains(t, log, "PERMISSION_DENIED")
		assert.Contains(t, log, "SPICE connection failed")
		assert.NotContains(t, log, wrong)
		assert.NotContains(t, log, pw.Reveal())
		_, err := os.Lstat(sock)
		assert.ErrorIs(t, err, fs.ErrNotExist, "socket closed and unlinked")
	})
}

func TestSPICEServerQuitEndsFakeryll(t *testing.T) {
	needBinary(t)
	vm := bootGuest(t, secret.String{})
	p, sock := startSPICE(t, "--direct", spiceAddr(vm))
	c := controlClient(t, p, sock)
	waitGuest(t, p, c)

	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	require.NoError(t, vm.Stop(ctx))
	st := p.exited(t)
	assert.Equal(t, 0, st.ExitCode(), "the session closed: exit 0 like ryll: %s", p.stderr.String())
	assert.Contains(t, p.stderr.String(), "SPICE session ended")
	_, err := os.Lstat(sock)
	assert.ErrorIs(t, err, fs.ErrNotExist, "socket unlinked when the session ended")
	select {
	case <-c.Done():
		assert.True(t, errors.Is(c.Err(), control.ErrClosed) || c.Err() != nil)
	case <-time.After(wait):
		t.Fatal("the control connection stayed open after fakeryll exited")
	}
}
