// Package ryll starts, watches and stops ryll, the SPICE client the
// latency loadtest drives through its control socket.
//
// ryll cannot be trusted to report its own failure: in headless mode a
// SPICE connection that fails or closes makes it exit with status 0. So
// this package never reads an exit status as success. Once started, a
// Process is watched for its whole life: any exit, whatever the status,
// is reported as an *ExitError carrying the last lines ryll printed, and
// Exited lets the loadtest fail a run the moment ryll goes away.
//
// The process itself is owned by harness/childproc, the supervisor of
// every child of the harness (start once, its own process group, output
// drained to a scrubbed log and a tail, exit watch, a bounded stop
// ladder: for ryll SIGINT, SIGTERM, then SIGKILL to the group). This
// package keeps what is ryll's: its arguments and explicit environment,
// its private socket directory, and readiness, which is one select over
// the probe, the child's exit and a timeout, never a sleep. Start kills
// the child and releases everything on every error path.
package ryll
