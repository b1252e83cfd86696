// Package guestload makes busy sessions out of real guests, beside the
// measured console and through the same proxy (issue 21, "Load sessions
// and the ramp", "Remote consoles"). It has two load.Sources:
//
//   - Qemu ("qemu"): local QEMU guests running an activity
//     (harness/guest), each watched by a loadgen Client, harness/loadgen's
//     cheap real SPICE client that reads and ACKs the display traffic and
//     discards the pixels. The client dials the guest through the
//     load.Router it was given, so every busy session crosses the proxy
//     under test as the measured console does.
//   - Cloud ("openstack"): more servers booted through harness/cloud
//     (named latency-<run>-l<i>, tagged and carrying the run's metadata
//     like the measured console's server, so make sweep finds any that a
//     crash left), each with its own spice-direct console fetched through
//     Kerbside: the .vv's tls-port, CA, host-subject and one-time
//     password are what its Client links with. An openstack load ramp
//     (LATENCY_LOAD with LATENCY_PROVIDER=openstack; harness/loadtest's
//     cloudRig) makes its busy sessions with it, from CloudConfigFrom,
//     with a Router only when LATENCY_LINK puts a link in front of them.
//
// Both share one pool of sessions (pool.go): Set starts sessions in
// parallel with a bound and returns once each has read a draw, or rolls
// back every session it started and says why the first failed; it stops
// sessions newest first, in parallel, each stop bounded. Close stops
// everything, also after a failed Set, and what a bounded teardown could
// not finish (a server whose delete failed) is retried by Close. Sample
// sums what every session ever read and reads each QEMU's CPU time and
// resident memory (harness/procstat); a session that ended by itself makes Sample
// fail loudly rather than report fewer sessions as if all were well.
//
// A .vv is read here (vv.go) rather than with fakeryll's reader, which a
// harness package may not import (architecture_test.go): ryll's keys,
// kept small. Its TLS (the CA, host-subject as spice-common matches it)
// is harness/spicetls's, which fakeryll's SPICE client uses too.
package guestload
