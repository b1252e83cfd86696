package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/config"
	loadapi "github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// Routed is the same guest as a, reached through the proxy under test
// of a load ramp: route gives the address through it (load.Router), via
// describes the proxy for the records. It shares a's guest (and its key
// counter) and never stops it; the proxy belongs to the ramp, so Close
// removes only the console's private .vv file.
func Routed(ctx context.Context, a *Console, route loadapi.Router, via string, logger *slog.Logger) (*Console, error) {
	if a.vm == nil {
		return nil, fmt.Errorf("a load ramp (LATENCY_LOAD) needs the qemu provider's guest")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	target := guestAddr(a.vm)
	ip, err := netip.ParseAddr(target.Host)
	if err != nil {
		return nil, fmt.Errorf("the guest's SPICE address %s: %w", target.String(), err)
	}
	addr, err := route(ctx, netip.AddrPortFrom(ip, target.Port))
	if err != nil {
		return nil, fmt.Errorf("route the measured console through the proxy under test (%s): %w", via, err)
	}
	listen := address.Direct{Host: addr.Addr().String(), Port: addr.Port()}
	c := &Console{Provider: config.ProviderQemu, logger: logger, shared: a.vm, routed: fmt.Sprintf("%s (%s)", addr, via),
		QemuVersion: a.QemuVersion, Accelerator: a.Accelerator, Secrets: append([]string(nil), a.Secrets...)}
	dir, err := tmpdir.Make("latency-console-")
	if err != nil {
		return nil, fmt.Errorf("private directory for the routed .vv file: %w", err)
	}
	c.privateDir = dir
	c.File = filepath.Join(dir, "console.vv")
	if err := os.WriteFile(c.File, []byte(vvFile(listen, a.vm.Password())), 0o600); err != nil {
		_ = c.Close(ctx)
		return nil, fmt.Errorf("write the routed .vv file: %w", err)
	}
	logger.Info("the measured console through the proxy under test", "proxy", via, "listen", listen.String(), "target", target.String())
	return c, nil
}
