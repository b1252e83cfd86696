package console

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/secret"
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
	vm, err := qemu.Start(ctx, qemu.Spec{
		Binary:   cfg.Qemu,
		Image:    guest.Image,
		Password: pw,
		Name:     "latency-" + cfg.RunID,
		LogPath:  c.QemuLog,
		Logger:   c.logger,
	})
	if err != nil {
		return fmt.Errorf("boot the guest in QEMU (LATENCY_QEMU=%s): %w", cfg.Qemu, err)
	}
	c.vm = vm
	info := vm.Version()
	c.QemuVersion, c.Accelerator = info.QEMU, info.Accel
	host, port := vm.SpiceAddr()
	dir, err := os.MkdirTemp("", "latency-console-")
	if err != nil {
		return fmt.Errorf("private directory for the guest's .vv file: %w", err)
	}
	c.privateDir = dir
	c.File = filepath.Join(dir, "console.vv")
	if err := os.WriteFile(c.File, []byte(vvFile(host, port, pw)), 0o600); err != nil {
		return fmt.Errorf("write the guest's .vv file: %w", err)
	}
	c.logger.Info("guest booted in QEMU", "qemu", info.QEMU, "accel", info.Accel, "spice", fmt.Sprintf("%s:%d", host, port),
		"pid", vm.Pid(), "log", c.QemuLog)
	return nil
}

// vvFile is a virt-viewer file for a plain SPICE port with a password.
func vvFile(host string, port int, pw secret.String) string {
	return fmt.Sprintf("[virt-viewer]\ntype=spice\nhost=%s\nport=%d\npassword=%s\ndelete-this-file=1\ntitle=kerbside-latency guest\n",
		host, port, pw.Reveal())
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
