package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bootTimeout bounds one boot in a test: generous, since two shared
// cores may be busy with other test binaries.
const bootTimeout = 60 * time.Second

// needQEMU skips a test that needs the real QEMU when it is not there.
func needQEMU(t testing.TB) {
	t.Helper()
	if _, err := LookBinary(""); err != nil {
		t.Skip("qemu-system-x86_64 not found: apt-get install -y qemu-system-x86")
	}
}

var nameSeq atomic.Int64

// testSpec is a Spec booting the stand-in guest under a name unique to
// this test process, so leftover checks cannot see another test's QEMU.
func testSpec(t testing.TB) Spec {
	t.Helper()
	return Spec{
		Image:   standinImage(),
		LogPath: filepath.Join(t.TempDir(), "qemu.log"),
		Name:    fmt.Sprintf("kl-test-%d-%d", os.Getpid(), nameSeq.Add(1)),
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// startVM boots spec and stops the VM at cleanup.
func startVM(t testing.TB, spec Spec) *VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	vm, err := Start(ctx, spec)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, vm.Stop(ctx))
	})
	return vm
}

// privateTMPDIR points TMPDIR at a fresh short directory, so a test can
// check that Start left no private directory in it.
func privateTMPDIR(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qt-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	t.Setenv("TMPDIR", dir)
	return dir
}

// qemuPids lists running processes whose command line carries -name name.
func qemuPids(t testing.TB, name string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	needle := []byte("\x00-name\x00" + name + "\x00")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, needle) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertNoLeftovers checks that nothing of a VM named name remains.
func assertNoLeftovers(t testing.TB, name string, tmpdir string) {
	t.Helper()
	assert.Empty(t, qemuPids(t, name), "QEMU processes left running")
	if tmpdir != "" {
		left, err := filepath.Glob(filepath.Join(tmpdir, "qemu-*"))
		require.NoError(t, err)
		assert.Empty(t, left, "private directories left in TMPDIR")
	}
}

// assertGone checks that a stopped VM left no process and no directory.
func assertGone(t testing.TB, vm *VM) {
	t.Helper()
	_, err := os.Stat(vm.dir)
	assert.ErrorIs(t, err, fs.ErrNotExist, "private directory left behind")
	assert.ErrorIs(t, syscall.Kill(vm.Pid(), 0), syscall.ESRCH, "QEMU still running")
	assertNoLeftovers(t, vm.spec.Name, "")
}

func TestStartStop(t *testing.T) {
	needQEMU(t)
	spec := testSpec(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	vm, err := Start(ctx, spec)
	require.NoError(t, err)

	host, port := vm.SpiceAddr()
	assert.Equal(t, "127.0.0.1", host)
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
	require.NoError(t, err, "SPICE port must accept once Start returns")
	_ = c.Close()

	info := vm.Version()
	assert.Regexp(t, `^\d+\.\d+\.\d+$`, info.QEMU)
	assert.Equal(t, "tcg", info.Accel)
	assert.True(t, vm.Password().IsZero())

	st, err := os.Stat(vm.dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	img, err := os.ReadFile(filepath.Join(vm.dir, imageName))
	require.NoError(t, err)
	assert.Equal(t, spec.Image, img, "QEMU boots a private copy of the image")
	assert.Equal(t, []int{vm.Pid()}, qemuPids(t, spec.Name))
	assert.NoError(t, vm.ExitErr())
	select {
	case <-vm.Exited():
		t.Fatal("Exited fired while QEMU runs")
	default:
	}

	require.NoError(t, vm.Stop(t.Context()))
	require.NoError(t, vm.Stop(t.Context()), "a second Stop returns the first result")
	assertGone(t, vm)

	var ee *ExitError
	require.ErrorAs(t, vm.ExitErr(), &ee)
	assert.Equal(t, PhaseStopping, ee.Phase)
	assert.Equal(t, 0, ee.Status, "QMP quit ends QEMU with status 0: %v", ee)
	assert.Empty(t, ee.Signal, "QEMU should have quit over QMP, not by a signal")
	log, err := os.ReadFile(spec.LogPath)
	require.NoError(t, err)
	assert.Contains(t, string(log), "boot attempt 1")
}

// TestPasswordStaysOffTheCommandLine: the password reaches QEMU only
// through a 0600 file, and SPICE then demands a ticket.
func TestPasswordStaysOffTheCommandLine(t *testing.T) {
	needQEMU(t)
	spec := testSpec(t)
	spec.Password = NewPassword()
	pw := spec.Password.Reveal()
	vm := startVM(t, spec)

	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", vm.Pid()))
	require.NoError(t, err)
	assert.NotContains(t, string(cmdline), pw)
	assert.Contains(t, string(cmdline), "password-secret=spicepw")

	file := filepath.Join(vm.dir, secretName)
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, pw, string(got), "no trailing newline: QEMU reads the file whole")

	var spice struct {
		Enabled bool   `json:"enabled"`
		Auth    string `json:"auth"`
		Port    int    `json:"port"`
	}
	require.NoError(t, vm.Execute(t.Context(), "query-spice", nil, &spice))
	assert.True(t, spice.Enabled)
	assert.Equal(t, "spice", spice.Auth, "SPICE must demand the ticket")
	_, port := vm.SpiceAddr()
	assert.Equal(t, port, spice.Port)
	assert.Equal(t, pw, vm.Password().Reveal())
	assert.Equal(t, secret.Redacted, fmt.Sprint(vm.Password()))

	require.NoError(t, vm.Stop(t.Context()))
	_, err = os.Stat(file)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	log, err := os.ReadFile(spec.LogPath)
	require.NoError(t, err)
	assert.NotContains(t, string(log), pw)
}

func TestNoPasswordMeansNoTicket(t *testing.T) {
	needQEMU(t)
	vm := startVM(t, testSpec(t))
	var spice struct{ Auth string }
	require.NoError(t, vm.Execute(t.Context(), "query-spice", nil, &spice))
	assert.Equal(t, "none", spice.Auth)
	_, err := os.Stat(filepath.Join(vm.dir, secretName))
	assert.ErrorIs(t, err, fs.ErrNotExist, "no password file without a password")
}

// TestKilledExternally: a QEMU that dies mid-run fires Exited at once,
// and ExitErr says how it ended.
func TestKilledExternally(t *testing.T) {
	needQEMU(t)
	vm := startVM(t, testSpec(t))
	require.NoError(t, syscall.Kill(vm.Pid(), syscall.SIGKILL))
	select {
	case <-vm.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("Exited did not fire after QEMU was killed")
	}
	var ee *ExitError
	require.ErrorAs(t, vm.ExitErr(), &ee)
	assert.Equal(t, PhaseRunning, ee.Phase)
	assert.Equal(t, "SIGKILL", ee.Signal)
	assert.Equal(t, -1, ee.Status)
	assert.Contains(t, ee.Error(), "mid-run (signal SIGKILL)")

	_, err := vm.ReadCounter(t.Context(), standinCounter, 2)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrQMPClosed)
	assert.ErrorAs(t, err, &ee, "a call after the exit says how QEMU ended")

	require.NoError(t, vm.Stop(t.Context()))
	assertGone(t, vm)
}

func TestStopWithEndedContextStillCleansUp(t *testing.T) {
	needQEMU(t)
	vm := startVM(t, testSpec(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, vm.Stop(ctx))
	assertGone(t, vm)
	var ee *ExitError
	require.ErrorAs(t, vm.ExitErr(), &ee)
	assert.Equal(t, "SIGKILL", ee.Signal, "no time for QMP quit: straight to SIGKILL")
	assert.Equal(t, PhaseStopping, ee.Phase)
}

func TestConcurrentStops(t *testing.T) {
	needQEMU(t)
	vm := startVM(t, testSpec(t))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = vm.Stop(t.Context()) })
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assertGone(t, vm)
}

func TestBadBinary(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		spec := testSpec(t)
		spec.Binary = "/nonexistent/qemu-system-x86_64"
		_, err := Start(t.Context(), spec)
		require.ErrorIs(t, err, ErrNotFound)
		assert.Contains(t, err.Error(), "QEMU not found: apt-get install -y qemu-system-x86, or set LATENCY_QEMU")
		_, err = Version(t.Context(), spec.Binary)
		require.ErrorIs(t, err, ErrNotFound)
	})
	t.Run("not QEMU", func(t *testing.T) {
		tmp := privateTMPDIR(t)
		spec := testSpec(t)
		spec.Binary = "true"
		_, err := Start(t.Context(), spec)
		var ee *ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, PhaseStarting, ee.Phase)
		assert.Contains(t, err.Error(), "QEMU exited (status 0) before QMP and SPICE were ready")
		assertNoLeftovers(t, spec.Name, tmp)

		_, err = Version(t.Context(), "true")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is not a QEMU system emulator")
		_, err = Version(t.Context(), "false")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "exit status 1")
	})
}

func TestVersion(t *testing.T) {
	needQEMU(t)
	v, err := Version(t.Context(), "")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v, "QEMU emulator version "), v)
}

// TestEarlyExitQuotesStderr: QEMU refusing its command line fails Start
// with QEMU's own words, and leaves nothing behind.
func TestEarlyExitQuotesStderr(t *testing.T) {
	needQEMU(t)
	tmp := privateTMPDIR(t)
	spec := testSpec(t)
	spec.ExtraArgs = []string{"-no-such-option"}
	_, err := Start(t.Context(), spec)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, PhaseStarting, ee.Phase)
	assert.Equal(t, 1, ee.Status)
	assert.Contains(t, err.Error(), "-no-such-option: invalid option")
	assertNoLeftovers(t, spec.Name, tmp)
	log, rerr := os.ReadFile(spec.LogPath)
	require.NoError(t, rerr)
	assert.Contains(t, string(log), "invalid option", "the log keeps QEMU's output")
}

func TestStartBoundedByContext(t *testing.T) {
	needQEMU(t)
	t.Run("already ended", func(t *testing.T) {
		tmp := privateTMPDIR(t)
		spec := testSpec(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Start(ctx, spec)
		require.ErrorIs(t, err, context.Canceled)
		assertNoLeftovers(t, spec.Name, tmp)
	})
	t.Run("ends mid-boot", func(t *testing.T) {
		tmp := privateTMPDIR(t)
		spec := testSpec(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		_, err := Start(ctx, spec)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assertNoLeftovers(t, spec.Name, tmp)
	})
	t.Run("ready timeout", func(t *testing.T) {
		tmp := privateTMPDIR(t)
		spec := testSpec(t)
		spec.ReadyTimeout = time.Nanosecond
		_, err := Start(t.Context(), spec)
		require.ErrorIs(t, err, ErrReadyTimeout)
		assert.Contains(t, err.Error(), "within 1ns")
		assertNoLeftovers(t, spec.Name, tmp)
	})
}

// TestTakenPortIsRetried: a SPICE port taken between picking and binding
// makes QEMU exit; Start boots again on another port.
func TestTakenPortIsRetried(t *testing.T) {
	needQEMU(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	t.Run("once", func(t *testing.T) {
		spec := testSpec(t)
		picks := 0
		pick := func() (int, error) {
			picks++
			if picks == 1 {
				return takenPort, nil
			}
			return freePort()
		}
		ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
		defer cancel()
		vm, err := start(ctx, spec, pick)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, vm.Stop(context.Background())) })
		_, port := vm.SpiceAddr()
		assert.NotEqual(t, takenPort, port)
		assert.Equal(t, 2, picks)
		log, err := os.ReadFile(spec.LogPath)
		require.NoError(t, err)
		assert.Contains(t, string(log), "binding socket to")
		assert.Contains(t, string(log), "boot attempt 2")
	})
	t.Run("always", func(t *testing.T) {
		tmp := privateTMPDIR(t)
		spec := testSpec(t)
		picks := 0
		pick := func() (int, error) { picks++; return takenPort, nil }
		_, err := start(t.Context(), spec, pick)
		var ee *ExitError
		require.ErrorAs(t, err, &ee)
		assert.Contains(t, err.Error(), "Failed to open SPICE sockets")
		assert.Equal(t, portAttempts, picks)
		assertNoLeftovers(t, spec.Name, tmp)
	})
}

// waitCounter polls the stand-in's counter until it reaches want or the
// deadline passes, and returns the last value read.
func waitCounter(t *testing.T, vm *VM, want uint64) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		got, err := vm.ReadCounter(ctx, standinCounter, 2)
		require.NoError(t, err)
		if got >= want {
			return got
		}
		select {
		case <-ctx.Done():
			return got
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitGuestRunning waits for the stand-in's magic word: keys sent before
// the boot sector runs might be dropped by the BIOS.
func waitGuestRunning(t *testing.T, vm *VM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		v, err := vm.ReadCounter(ctx, standinMagicAddr, 2)
		require.NoError(t, err)
		if v == standinMagic {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stand-in guest never ran (word at 0x%x is 0x%x)", standinMagicAddr, v)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func sendKey(t *testing.T, vm *VM, qcode string) {
	t.Helper()
	args := map[string]any{"keys": []map[string]string{{"type": "qcode", "data": qcode}}}
	require.NoError(t, vm.Execute(t.Context(), "send-key", args, nil))
}

func TestReadCounter(t *testing.T) {
	needQEMU(t)
	vm := startVM(t, testSpec(t))
	waitGuestRunning(t, vm)
	got, err := vm.ReadCounter(t.Context(), standinCounter, 2)
	require.NoError(t, err)
	assert.Equal(t, uint64(0), got)

	for _, k := range []string{"a", "b", "c", "ret", "spc"} {
		sendKey(t, vm, k)
	}
	assert.Equal(t, uint64(5), waitCounter(t, vm, 5), "every key reaches the guest exactly once")

	// Both words at once, as a 32-bit read: magic high, counter low.
	both, err := vm.ReadCounter(t.Context(), standinCounter, 4)
	require.NoError(t, err)
	assert.Equal(t, uint64(standinMagic<<16|5), both)

	_, err = vm.ReadCounter(t.Context(), 0xffffffffff0, 2)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Cannot access memory")
	_, err = vm.ReadCounter(t.Context(), standinCounter, 3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "size 3")
}

func TestScreendump(t *testing.T) {
	needQEMU(t)
	vm := startVM(t, testSpec(t))
	img, err := vm.Screendump(t.Context())
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(img, []byte("P6\n")), "a PPM image, got % x", img[:min(len(img), 8)])
	entries, err := os.ReadDir(vm.dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), "screen-"), "screendump file left: %s", e.Name())
	}
}

// TestManyAtOnce: guests booted together get their own ports,
// directories and processes, and each counts its own keys.
func TestManyAtOnce(t *testing.T) {
	needQEMU(t)
	const n = 3
	vms := make([]*VM, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	for i := range n {
		spec := testSpec(t)
		wg.Go(func() { vms[i], errs[i] = Start(ctx, spec) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, vm := range vms {
			if vm != nil {
				wg.Go(func() { assert.NoError(t, vm.Stop(context.Background())) })
			}
		}
		wg.Wait()
		for _, vm := range vms {
			if vm != nil {
				assertGone(t, vm)
			}
		}
	})
	for _, err := range errs {
		require.NoError(t, err)
	}
	ports, dirs, pids := map[int]bool{}, map[string]bool{}, map[int]bool{}
	for _, vm := range vms {
		_, port := vm.SpiceAddr()
		ports[port], dirs[vm.dir], pids[vm.Pid()] = true, true, true
	}
	assert.Len(t, ports, n)
	assert.Len(t, dirs, n)
	assert.Len(t, pids, n)

	for i, vm := range vms {
		waitGuestRunning(t, vm)
		for range i + 1 {
			sendKey(t, vm, "a")
		}
	}
	for i, vm := range vms {
		assert.Equal(t, uint64(i+1), waitCounter(t, vm, uint64(i+1)), "guest %d", i)
	}
}

// BenchmarkBoot measures Start to SPICE-ready (ms-to-ready; ns/op is the
// same), QEMU's resident memory once ready, and Stop (QMP quit to
// reaped and removed), which is outside the timed part.
func BenchmarkBoot(b *testing.B) {
	needQEMU(b)
	var ready, stop time.Duration
	var rssKB int64
	n := 0
	for b.Loop() {
		spec := testSpec(b)
		spec.Logger = nil
		start := time.Now()
		vm, err := Start(b.Context(), spec)
		if err != nil {
			b.Fatal(err)
		}
		ready += time.Since(start)
		b.StopTimer()
		rssKB += readRSSKB(b, vm.Pid())
		n++
		start = time.Now()
		if err := vm.Stop(b.Context()); err != nil {
			b.Fatal(err)
		}
		stop += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(ready.Milliseconds())/float64(n), "ms-to-ready")
	b.ReportMetric(float64(stop.Milliseconds())/float64(n), "ms-to-stop")
	b.ReportMetric(float64(rssKB)/float64(n)/1024, "MB-rss")
}

// readRSSKB is VmRSS from /proc/PID/status.
func readRSSKB(b *testing.B, pid int) int64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// TestStopLadder: a QEMU that cannot act on quit or SIGTERM (stopped by
// SIGSTOP) is still ended by SIGKILL, within the graces.
func TestStopLadder(t *testing.T) {
	needQEMU(t)
	spec := testSpec(t)
	spec.Grace = Grace{Quit: 100 * time.Millisecond, Terminate: 100 * time.Millisecond, Kill: 5 * time.Second}
	vm := startVM(t, spec)
	require.NoError(t, syscall.Kill(vm.Pid(), syscall.SIGSTOP))
	require.NoError(t, vm.Stop(t.Context()))
	assertGone(t, vm)
	var ee *ExitError
	require.ErrorAs(t, vm.ExitErr(), &ee)
	assert.Equal(t, "SIGKILL", ee.Signal)
}

// TestStopWithBrokenQMP: with the QMP connection gone, Stop moves on to
// SIGTERM at once, which QEMU handles by shutting down in order, rather
// than waiting out the quit grace.
func TestStopWithBrokenQMP(t *testing.T) {
	needQEMU(t)
	spec := testSpec(t)
	spec.Grace.Quit = time.Hour
	vm := startVM(t, spec)
	require.NoError(t, vm.qmp.Close())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, vm.Stop(ctx))
	assertGone(t, vm)
	var ee *ExitError
	require.ErrorAs(t, vm.ExitErr(), &ee)
	assert.Empty(t, ee.Signal, "QEMU should have ended on SIGTERM by itself: %v", ee)
	assert.Contains(t, strings.Join(ee.Tail, "\n"), "terminating on signal 15")
}

// BenchmarkBootMany boots N guests at once, as LATENCY_CONSOLES=N will:
// ms-to-all-ready is from the first Start to the last ready, MB-rss-each
// is QEMU's resident memory per guest once all are up.
func BenchmarkBootMany(b *testing.B) {
	needQEMU(b)
	for _, n := range []int{1, 10, 25} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var all time.Duration
			var rssKB int64
			runs := 0
			for b.Loop() {
				vms := make([]*VM, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				start := time.Now()
				for i := range n {
					spec := testSpec(b)
					spec.Logger = nil
					wg.Go(func() { vms[i], errs[i] = Start(b.Context(), spec) })
				}
				wg.Wait()
				all += time.Since(start)
				b.StopTimer()
				for i, vm := range vms {
					if errs[i] == nil {
						rssKB += readRSSKB(b, vm.Pid())
						wg.Go(func() { _ = vm.Stop(context.Background()) })
					}
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
				runs++
				b.StartTimer()
			}
			b.ReportMetric(float64(all.Milliseconds())/float64(runs), "ms-to-all-ready")
			b.ReportMetric(float64(rssKB)/float64(runs*n)/1024, "MB-rss-each")
		})
	}
}
