// Package load is the contract between the ramp (the loadtest's
// steps of load) and whatever makes busy sessions beside the
// measured console: synthetic SPICE sessions of our own, QEMU guests
// running an activity, or more cloud servers behind Kerbside. The ramp
// asks a Source for n sessions, measures the console while they run,
// and reads what they moved and cost from Samples taken at each step's
// start and end.
package load

import (
	"context"
	"net/netip"
	"time"
)

// Source runs busy sessions beside the measured console. Its methods are
// called from one goroutine.
type Source interface {
	// Name says what the sessions are: "synthetic", "qemu" or
	// "openstack"; the records carry it.
	Name() string
	// Set makes exactly n busy sessions run, starting or stopping
	// sessions, and returns once every one of the n is flowing (its
	// client has read display traffic), or with why not. Set(ctx, 0)
	// stops them all.
	Set(ctx context.Context, n int) error
	// Sample reads the source's counters, cumulative since it started:
	// the ramp takes the difference of two samples over a step.
	Sample(ctx context.Context) (Sample, error)
	// Close stops every session and whatever the source started. It is
	// safe to call more than once, and after a failed Set.
	Close(ctx context.Context) error
}

// Sample is what busy sessions moved and cost, cumulative since their
// Source started.
type Sample struct {
	// At is when the sample was taken.
	At time.Time
	// Sessions is how many sessions run now.
	Sessions int
	// Bytes and Messages are display traffic the sessions' clients read
	// (server to client), over all sessions ever started.
	Bytes    int64
	Messages int64
	// AckWait is the time the sessions' servers spent stopped by the
	// SPICE ACK window (zero when the source cannot see its servers).
	AckWait time.Duration
	// Processes are the processes the source runs (a load generator,
	// QEMUs), by role, each with its CPU time and resident memory.
	Processes []Process
}

// Process is one process's usage, read from /proc: CPU time (user +
// system) since it started, and resident memory now.
type Process struct {
	Role string // "generator", "qemu", "proxy", "harness"
	Pid  int
	CPU  time.Duration
	RSS  int64
}

// Router gives a source's session a way to its SPICE server through the
// proxy under test: it returns the address a client dials to reach
// target through the proxy (target itself when there is no proxy). The
// ramp passes it to the sources it makes, so that the measured console
// and every busy session cross the same proxy.
type Router func(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error)
