package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// DefaultCleanupTimeout bounds a Cleanup (or Sweep) whose context has no
// deadline.
const DefaultCleanupTimeout = 5 * time.Minute

// CleanupContext returns the context to run Cleanup with: it is not
// cancelled with parent (which a signal or a failed Provision may already
// have cancelled) but ends after timeout. It is
// context.WithTimeout(context.WithoutCancel(parent), timeout).
func CleanupContext(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), timeout)
}

// Cleanup deletes the run's server and waits until it is gone (a 404 is
// gone). It also finds a server whose create request was sent but whose
// answer never came, by the run's tag, name and run ID. With KeepServer it
// deletes nothing and logs what it kept.
//
// Call it with a fresh bounded context (see CleanupContext), never the one
// Provision ran under: that one may be cancelled. It is safe to call more
// than once and concurrently; after a success further calls do nothing,
// after a failure they try again.
func (c *Cloud) Cleanup(ctx context.Context) error {
	c.cleanupMu.Lock()
	defer c.cleanupMu.Unlock()

	c.mu.Lock()
	r := c.run
	if r == nil || !r.createSent || r.cleaned {
		c.mu.Unlock()
		return nil
	}
	ids := slices.Clone(r.serverIDs)
	c.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCleanupTimeout)
		defer cancel()
	}
	var errs []error
	found, err := c.findRunServers(ctx, r)
	if err != nil {
		errs = append(errs, fmt.Errorf("look for servers of run %s: %w", r.id, err))
	}
	for _, id := range found {
		if !slices.Contains(ids, id) {
			r.log.Warn("found a server of this run whose create answer was lost", "server_id", id)
			ids = append(ids, id)
		}
	}

	if r.keep {
		r.log.Warn("KeepServer is set: leaving the server running; delete it yourself or run make sweep",
			"server_ids", ids)
		if len(errs) == 0 {
			c.markCleaned(r)
		}
		return errors.Join(errs...)
	}
	for _, id := range ids {
		if err := c.deleteAndWait(ctx, id, r.name, r.log); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("clean up run %s (leftovers can be removed with make sweep): %w", r.id, errors.Join(errs...))
	}
	c.markCleaned(r)
	r.log.Info("cleanup done", "servers_deleted", len(ids))
	return nil
}

func (c *Cloud) markCleaned(r *run) {
	c.mu.Lock()
	r.cleaned = true
	c.mu.Unlock()
}

// deleteAndWait deletes a server and polls until Nova answers 404, within
// ctx. name is for messages; log should already name the server.
func (c *Cloud) deleteAndWait(ctx context.Context, id, name string, log *slog.Logger) error {
	err := servers.Delete(ctx, c.at(baseMV), id).ExtractErr()
	switch {
	case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
		log.Info("server already gone", "server_id", id)
		return nil
	case err != nil:
		return fmt.Errorf("delete server %s (%s): %w", name, id, err)
	}
	log.Info("server delete requested", "server_id", id)
	return c.waitGone(ctx, id, name, log)
}

func (c *Cloud) waitGone(ctx context.Context, id, name string, log *slog.Logger) error {
	start := time.Now()
	status, task := "", ""
	for {
		s, err := servers.Get(ctx, c.at(baseMV), id).Extract()
		switch {
		case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
			log.Info("server deleted", "server_id", id, "took", time.Since(start).Round(time.Millisecond))
			return nil
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("wait for server %s (%s) to be deleted: %w", name, id, err)
		case err == nil:
			status, task = s.Status, s.TaskState
		}
		if !sleep(ctx, c.poll) {
			return fmt.Errorf("server %s (%s) still present after delete (status %s, task state %q): %w",
				name, id, status, task, ctx.Err())
		}
	}
}
