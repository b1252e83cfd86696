package console

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// QemuLogName is QEMU's whole output for a run: qemu-<run>.log.
func QemuLogName(run string) string { return "qemu-" + run + ".log" }

// openQemu boots the repaint-on-key guest in a local QEMU with SPICE on a
// free loopback port and a random password. ryll gets the console as a
// 0600 .vv file in a private directory, because --direct carries no
// password and a password never goes on a command line.
func (c *Console) openQemu(ctx context.Context, cfg *config.Config) error {
	pw := qemu.NewPassword()
	c.Secrets = append(c.Secrets, pw.Reveal())
	c.QemuLog = filepath.Join(cfg.ResultsDir, QemuLogName(cfg.RunID))
	img, err := guest.ImageFor(cfg.Activity)
	if err != nil {
		return fmt.Errorf("the guest for LATENCY_ACTIVITY: %w", err)
	}
	vm, err := qemu.Start(ctx, qemu.Spec{
		Binary:   cfg.Qemu,
		Image:    img,
		Password: pw,
		Name:     "latency-" + cfg.RunID,
		LogPath:  c.QemuLog,
		Logger:   c.logger,
	})
	if err != nil {
		return fmt.Errorf("boot the guest in QEMU (LATENCY_QEMU=%s): %w", cfg.Qemu, err)
	}
	c.vm = vm
	if err := waitForGuestScreen(ctx, vm, cfg.ReadyTimeout, c.logger); err != nil {
		return err
	}
	info := vm.Version()
	c.QemuVersion, c.Accelerator = info.QEMU, info.Accel
	spice := guestAddr(vm)
	if cfg.Activity != "" && cfg.Activity != guest.ActivityIdle {
		c.logger.Info("measuring the guest's display traffic at a SPICE client", "activity", cfg.Activity,
			"warmup", probeWarmup, "span", probeSpan)
		p, err := probeActivity(ctx, spice, pw, probeWarmup, probeSpan)
		if err != nil {
			return fmt.Errorf("measure the %s guest's display traffic: %w", cfg.Activity, err)
		}
		c.ActivityProbe = &p
		c.logger.Info("the guest's activity at a SPICE client", "activity", cfg.Activity, "messages_per_s", p.MessagesPerS(),
			"draws_per_s", p.DrawsPerS(), "bytes_per_s", p.BytesPerS(), "span", p.Duration.Round(time.Millisecond))
	}
	dir, err := tmpdir.Make("latency-console-")
	if err != nil {
		return fmt.Errorf("private directory for the guest's .vv file: %w", err)
	}
	c.privateDir = dir
	c.File = filepath.Join(dir, "console.vv")
	if err := os.WriteFile(c.File, []byte(vvFile(spice, pw)), 0o600); err != nil {
		return fmt.Errorf("write the guest's .vv file: %w", err)
	}
	c.logger.Info("guest booted in QEMU", "qemu", info.QEMU, "accel", info.Accel, "spice", spice.String(),
		"pid", vm.Pid(), "log", c.QemuLog)
	return nil
}

// guestPoll is how often the guest's screen is looked at while it boots;
// guestProgress how often a wait for it says so (a TCG boot under load
// took over 10 s).
const (
	guestPoll     = 50 * time.Millisecond
	guestProgress = 5 * time.Second
)

// waitForGuestScreen waits until the guest shows its own screen rather
// than the BIOS's: a key pressed earlier never reaches it, and the boot's
// draws would be taken for background or for a key's repaint.
func waitForGuestScreen(ctx context.Context, vm *qemu.VM, timeout time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start, said := time.Now(), time.Now()
	last := "no screen yet"
	for {
		if time.Since(said) >= guestProgress {
			said = time.Now()
			logger.Info("waiting for the guest's screen", "elapsed", time.Since(start).Round(time.Second),
				"timeout", timeout, "last", last)
		}
		if b, err := vm.Screendump(ctx); err == nil {
			w, h, err := ppmSize(b)
			if err == nil && w == guest.ScreenWidth && h == guest.ScreenHeight {
				return nil
			}
			if err == nil {
				last = fmt.Sprintf("the screen is %dx%d", w, h)
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the guest did not show its %dx%d screen within LATENCY_READY_TIMEOUT=%s (%s): is the image the latency guest?",
				guest.ScreenWidth, guest.ScreenHeight, timeout, last)
		case <-vm.Exited():
			return fmt.Errorf("QEMU exited while the guest booted: %w", vm.ExitErr())
		case <-time.After(guestPoll):
		}
	}
}

// ppmSize reads the width and height of a binary PPM (QEMU's screendump).
func ppmSize(b []byte) (w, h int, err error) {
	var magic string
	if _, err := fmt.Sscan(string(b[:min(len(b), 64)]), &magic, &w, &h); err != nil || magic != "P6" {
		return 0, 0, fmt.Errorf("not a PPM screen dump")
	}
	return w, h, nil
}

// vvFile is a virt-viewer file for a plain SPICE port with a password.
func vvFile(d address.Direct, pw secret.String) string {
	return fmt.Sprintf("[virt-viewer]\ntype=spice\nhost=%s\nport=%d\npassword=%s\ndelete-this-file=1\ntitle=kerbside-latency guest\n",
		d.Host, d.Port, pw.Reveal())
}

// guestAddr is where the guest's SPICE server listens, typed once.
func guestAddr(vm *qemu.VM) address.Direct {
	host, port := vm.SpiceAddr()
	return address.Direct{Host: host, Port: uint16(port)}
}

// Exited fires when the console's own process ends (QEMU for the qemu
// provider); nil for consoles with no process of ours.
func (c *Console) Exited() <-chan struct{} {
	if vm := c.guest(); vm != nil {
		return vm.Exited()
	}
	return nil
}

// guest is the QEMU behind the console, its own or a shared one.
func (c *Console) guest() *qemu.VM {
	if c.vm != nil {
		return c.vm
	}
	return c.shared
}

// ExitErr says why the console's process ended (nil while it runs).
func (c *Console) ExitErr() error {
	if vm := c.guest(); vm != nil {
		return vm.ExitErr()
	}
	return nil
}

// CountsKeys reports whether KeysSeen can say what the guest received.
func (c *Console) CountsKeys() bool { return c.guest() != nil }

// KeysSeen reads the guest's own key counter: how many key presses
// reached it since it booted. The loadtest compares it with the presses
// it sent, so a key that never reached the guest is a failure, not a miss.
func (c *Console) KeysSeen(ctx context.Context) (int, error) {
	vm := c.guest()
	if vm == nil {
		return 0, fmt.Errorf("the %s console has no key counter", c.Provider)
	}
	n, err := vm.ReadCounter(ctx, guest.CounterAddr, guest.CounterSize)
	if err != nil {
		return 0, fmt.Errorf("read the guest's key counter: %w", err)
	}
	return int(n), nil
}

// Pid is the console's own process (QEMU), or 0.
func (c *Console) Pid() int {
	if c.vm == nil {
		return 0
	}
	return c.vm.Pid()
}
