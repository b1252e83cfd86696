// Package qemu boots and owns the QEMU guests of the real SPICE lane:
// a boot-sector guest under TCG with no display, its SPICE server on a
// free loopback port, QMP on a socket in a private directory.
//
// The process is owned by harness/childproc, the supervisor of every
// child of the harness, as ryll is: its own process group, tied to the
// harness, an explicit environment, its output always drained to a log
// and an in-memory tail that failure messages quote, an exit watch, and a
// bounded stop ladder (QMP quit, SIGTERM, SIGKILL to the group) that is
// safe to call twice. This package keeps what is QEMU's: its arguments,
// the private directory, QMP, and readiness (QMP answering and the SPICE
// port accepting, bounded by a timeout and the child's exit, never a
// sleep). Start releases everything it acquired on any error path.
//
// The SPICE password reaches QEMU through a 0600 file (a secret object),
// never the command line, where any local user could read it in ps.
package qemu
