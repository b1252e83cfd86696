package guest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
)

// TestDiskQCOW2QemuImg: qemu-img reads our qcow2 as a clean image of the
// right size whose guest data is the raw disk's.
func TestDiskQCOW2QemuImg(t *testing.T) {
	qimg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed: apt-get install -y qemu-utils")
	}
	dir := t.TempDir()
	q := writeDisk(t, dir, guest.FormatQCOW2)
	raw := writeDisk(t, dir, guest.FormatRaw)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), qimg, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	info := run("info", "--output=json", q)
	for _, want := range []string{`"format": "qcow2"`, fmt.Sprintf(`"virtual-size": %d`, guest.DiskSize), `"compat": "0.10"`} {
		if !strings.Contains(info, want) {
			t.Errorf("qemu-img info lacks %s:\n%s", want, info)
		}
	}
	if out := run("check", q); !strings.Contains(out, "No errors were found") {
		t.Errorf("qemu-img check:\n%s", out)
	}
	if out := run("compare", "-f", "qcow2", "-F", "raw", q, raw); !strings.Contains(out, "Images are identical") {
		t.Errorf("qemu-img compare with the raw disk:\n%s", out)
	}
}

// TestDiskBoots boots each format as QEMU's first IDE hard disk under
// SeaBIOS (as a cloud's hypervisor would), waits for the guest's own
// screen, presses three keys and reads the guest's key counter and the
// screen's size.
func TestDiskBoots(t *testing.T) {
	bin, err := qemu.LookBinary("")
	if err != nil {
		t.Skipf("QEMU not installed (%v): apt-get install -y qemu-system-x86", err)
	}
	for _, format := range guest.Formats {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			disk := writeDisk(t, dir, format)
			sock := filepath.Join(dir, "qmp.sock")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			var log bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, "-nodefaults", "-no-user-config", "-accel", "tcg", "-m", "16",
				"-drive", "format="+format+",file="+disk+",if=ide,index=0,media=disk", "-boot", "c",
				"-vga", "std", "-display", "none", "-nic", "none", "-qmp", "unix:"+sock+",server=on,wait=off")
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("qemu output:\n%s", log.String())
				}
			})
			// QEMU exiting (an image it refuses) ends every wait at once.
			ctx, stop := context.WithCancelCause(ctx)
			defer stop(nil)
			go func() {
				select {
				case <-exited:
					stop(fmt.Errorf("QEMU exited"))
				case <-ctx.Done():
				}
			}()
			q := dialQMP(ctx, t, sock)
			defer func() { _ = q.Close() }()
			hmp := func(line string) string {
				t.Helper()
				var out string
				if err := q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": line}, &out); err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return out
			}
			// The guest's first paint puts '>' at the top left (SeaBIOS's
			// screen starts with "SeaBIOS").
			waitFor(ctx, t, "the guest's own screen", func() bool {
				return strings.HasSuffix(strings.TrimSpace(hmp("xp /1xb 0xb8000")), "0x3e")
			})
			for range 3 {
				hmp("sendkey a")
			}
			var n uint32
			waitFor(ctx, t, "3 keys counted", func() bool {
				var err error
				n, err = guest.ParseCounter(hmp(guest.CounterCommand()))
				if err != nil {
					t.Fatal(err)
				}
				return n >= 3
			})
			if n != 3 {
				t.Errorf("the guest counted %d keys, want 3", n)
			}
			_, ascii, err := guest.ParseLastKey(hmp(guest.LastKeyCommand()))
			if err != nil || ascii != 'a' {
				t.Errorf("last key %q (%v), want 'a'", ascii, err)
			}
			ppm := filepath.Join(dir, "screen.ppm")
			if err := q.Execute(ctx, "screendump", map[string]string{"filename": ppm}, nil); err != nil {
				t.Fatal(err)
			}
			w, h := ppmSize(t, ppm)
			if w != guest.ScreenWidth || h != guest.ScreenHeight {
				t.Errorf("screen %dx%d, want the guest's %dx%d", w, h, guest.ScreenWidth, guest.ScreenHeight)
			}
		})
	}
}

func writeDisk(t *testing.T, dir, format string) string {
	t.Helper()
	img, err := guest.Disk(guest.Image, format)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "guest."+format)
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dialQMP connects once QEMU has made its socket.
func dialQMP(ctx context.Context, t *testing.T, sock string) *qemu.QMP {
	t.Helper()
	var q *qemu.QMP
	waitFor(ctx, t, "QMP", func() bool {
		var err error
		q, err = qemu.DialQMP(ctx, sock)
		return err == nil
	})
	return q
}

// waitFor polls cond every 50 ms until it holds or ctx ends (a bound, not
// a timed assertion).
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("no %s: %v", what, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ppmSize(t *testing.T, path string) (w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var magic string
	if _, err := fmt.Fscan(bufio.NewReader(f), &magic, &w, &h); err != nil || magic != "P6" {
		t.Fatalf("screendump %s: %q %v", path, magic, err)
	}
	return w, h
}
