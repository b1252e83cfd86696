package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// SweepOptions selects what Sweep removes.
type SweepOptions struct {
	// OlderThan keeps servers younger than this (by Nova's created time);
	// zero sweeps every loadtest server, including a run in progress
	// elsewhere.
	OlderThan time.Duration
	// DryRun lists what would be deleted and deletes nothing.
	DryRun bool
}

// Sweep deletes servers left by earlier runs and waits for them to go. It
// chooses servers ONLY by the loadtest tag AND the loadtest metadata (a
// run ID included), never by name, so no other server in the project can
// match; this Cloud's own run is skipped. It returns the IDs deleted (or,
// with DryRun, that would be), even when some deletions failed.
func (c *Cloud) Sweep(ctx context.Context, opts SweepOptions) ([]string, error) {
	if opts.OlderThan < 0 {
		return nil, fmt.Errorf("sweep: OlderThan %s is negative", opts.OlderThan)
	}
	if c.maxMicroversion.known() && !c.maxMicroversion.atLeast(minListTagMV) {
		return nil, fmt.Errorf("sweep: %w: the tags filter needs 2.26, this cloud's maximum is %s", ErrMicroversion, c.maxMicroversion)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCleanupTimeout)
		defer cancel()
	}
	c.mu.Lock()
	ownRun := ""
	if c.run != nil {
		ownRun = c.run.id
	}
	c.mu.Unlock()

	lc := c.at(minListTagMV)
	pages, err := servers.List(lc, servers.ListOpts{Tags: Tag}).AllPages(ctx)
	if err != nil {
		return nil, computeErr(lc, "sweep: list servers tagged "+Tag, err)
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, fmt.Errorf("sweep: read server list: %w", err)
	}
	now := time.Now()
	type victim struct{ id, name string }
	var chosen []victim
	for _, s := range all {
		runID := s.Metadata[MetaRunID]
		// The list was filtered by tag already; check again in case the
		// cloud ignored the filter, and require our metadata too.
		if s.Tags == nil || !slices.Contains(*s.Tags, Tag) || s.Metadata[MetaLoadtest] != MetaLoadtestValue || runID == "" {
			continue
		}
		if runID == ownRun {
			continue
		}
		age := now.Sub(s.Created)
		if opts.OlderThan > 0 && (s.Created.IsZero() || age < opts.OlderThan) {
			continue
		}
		c.log.Info("sweep candidate", "server_id", s.ID, "server", s.Name, "run_id", runID,
			"started_at", s.Metadata[MetaStarted], "age", age.Round(time.Second), "status", s.Status, "dry_run", opts.DryRun)
		chosen = append(chosen, victim{s.ID, s.Name})
	}
	ids := make([]string, len(chosen))
	for i, v := range chosen {
		ids[i] = v.id
	}
	if opts.DryRun || len(chosen) == 0 {
		c.log.Info("sweep finished", "servers", len(ids), "dry_run", opts.DryRun)
		return ids, nil
	}
	// Ask for every deletion first, then wait: the waits overlap.
	var errs []error
	var pending []victim
	for _, v := range chosen {
		err := servers.Delete(ctx, c.at(baseMV), v.id).ExtractErr()
		switch {
		case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
			c.log.Info("server already gone", "server_id", v.id, "server", v.name)
		case err != nil:
			errs = append(errs, fmt.Errorf("delete server %s (%s): %w", v.name, v.id, err))
		default:
			c.log.Info("server delete requested", "server_id", v.id, "server", v.name)
			pending = append(pending, v)
		}
	}
	for _, v := range pending {
		if err := c.waitGone(ctx, v.id, v.name, c.log.With("server", v.name)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return ids, fmt.Errorf("sweep: %w", errors.Join(errs...))
	}
	c.log.Info("sweep finished", "servers_deleted", len(ids))
	return ids, nil
}
