// Package sim simulates a headless ryll session behind its control socket.
//
// The loadtest must be exercised on machines without OpenStack, Kerbside or
// QEMU, so this package stands in for ryll: it serves the control-socket
// protocol (docs/control-socket-protocol.md in shakenfist/ryll, v1.2) on a
// Unix socket and models the two signals the loadtest measures. Key-downs
// repaint a simulated screen after a modelled delay that lands on the next
// tick of a QEMU-like display refresh timer, and a spice-server-like PING
// cadence produces latency events. Every behaviour is tunable through
// knobs (see Knobs) so tests can reproduce slow guests, noise, floods,
// crashes and hangs, and a truth file records the modelled delays so the
// loadtest's own measurement error can be checked line by line.
//
// The simulated session never waits for the control client: events go into
// a bounded per-client queue that drops the oldest entry when full, exactly
// as the protocol's backpressure section describes.
package sim
