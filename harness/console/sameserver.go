package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/shakenfist/kerbside-latency/harness/config"
)

// SameServer is the server that a booted (openstack provider), reached
// through Nova's spice-direct console, that is through Kerbside: the B
// leg of an A/B whose A leg is the server's direct leg. It boots nothing
// and never deletes the server (a owns it). Every Refresh asks Nova for a
// new console and fetches its .vv, because Kerbside's .vv passwords are
// one-time.
func SameServer(ctx context.Context, a *Console, opts Options) (*Console, error) {
	if a.cloud == nil || a.ServerID == "" {
		return nil, errors.New("the B leg on the same server needs the A leg to have booted one (the openstack provider)")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Console{Provider: config.ProviderOpenStack, ServerID: a.ServerID, ServerName: a.ServerName,
		Secrets: append([]string(nil), a.Secrets...), logger: logger, same: a}
	if err := b.Refresh(ctx, opts); err != nil {
		_ = b.Close(ctx)
		return nil, err
	}
	return b, nil
}

// Refresh gets a fresh console for consoles that need one per
// connection (SameServer); for every other console it does nothing.
func (c *Console) Refresh(ctx context.Context, opts Options) error {
	if c.same == nil {
		return nil
	}
	u, err := c.same.cloud.SpiceDirect(ctx, c.ServerID)
	if err != nil {
		return fmt.Errorf("a spice-direct console for server %s (the B leg, through Kerbside): %w", c.ServerName, err)
	}
	c.URL, c.File = u, ""
	c.Secrets = append(c.Secrets, urlSecrets(u)...)
	if err := c.fetchVV(ctx, opts.HTTPClient); err != nil {
		return err
	}
	return c.relink(ctx) // the new .vv may name another port
}
