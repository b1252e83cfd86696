// Package qemu boots and owns the QEMU guests of the real SPICE lane:
// a boot-sector guest under TCG with no display, its SPICE server on a
// free loopback port, QMP on a socket in a private directory.
//
// A guest is owned the way harness/ryll owns ryll: Start releases
// everything it acquired on any error path; QEMU runs in its own process
// group with an explicit environment; its output is always drained to a
// log and an in-memory tail that failure messages quote; readiness is
// QMP answering and the SPICE port accepting, bounded by a timeout and
// the child's exit, never a sleep; and Stop is a bounded ladder (QMP
// quit, SIGTERM, SIGKILL) that is safe to call twice and removes the
// private directory.
//
// The SPICE password reaches QEMU through a 0600 file (a secret object),
// never the command line, where any local user could read it in ps.
package qemu
