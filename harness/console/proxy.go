package console

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// Proxied is the same guest as a, reached through a SPICE proxy of our
// own (harness/spiceproxy) in the given mode: the B leg of an A/B run
// with LATENCY_B_PROXY (parsed once, by the configuration). It shares
// a's guest (and its key counter) and never stops it: Close stops only
// the proxy.
func Proxied(ctx context.Context, a *Console, m spiceproxy.Mode, logger *slog.Logger) (*Console, error) {
	if a.vm == nil {
		return nil, fmt.Errorf("LATENCY_B_PROXY=%s needs the qemu provider's guest", m)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	target := guestAddr(a.vm)
	p, err := spiceproxy.Start(ctx, spiceproxy.Config{Target: target.String(), Mode: m, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("start the SPICE proxy (LATENCY_B_PROXY=%s): %w", m, err)
	}
	c := &Console{Provider: config.ProviderQemu, logger: logger, proxy: p, shared: a.vm,
		QemuVersion: a.QemuVersion, Accelerator: a.Accelerator, Secrets: append([]string(nil), a.Secrets...)}
	listen, err := address.FromTCPAddr(p.Addr())
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("the SPICE proxy's address: %w", err)
	}
	dir, err := tmpdir.Make("latency-console-")
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("private directory for the proxied .vv file: %w", err)
	}
	c.privateDir = dir
	c.File = filepath.Join(dir, "console.vv")
	if err := os.WriteFile(c.File, []byte(vvFile(listen, a.vm.Password())), 0o600); err != nil {
		_ = c.Close(ctx)
		return nil, fmt.Errorf("write the proxied .vv file: %w", err)
	}
	logger.Info("SPICE proxy in front of the guest", "mode", m.String(), "listen", listen.String(), "target", target.String())
	return c, nil
}
