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
// The shape follows the usual discipline for child processes (see
// hashicorp/go-plugin and etcd's expect package): Start refuses to run
// twice and kills the child on every error path; stdout and stderr are
// always drained (to a scrubbed log file and an in-memory tail);
// readiness is one select over the probe, the child's exit and a
// timeout, never a sleep; and Stop is a ladder of signals with bounded
// waits that is safe to call more than once.
package ryll
