// Package sim simulates a headless ryll session behind its control socket.
//
// The loadtest must be exercised on machines without OpenStack, Kerbside or
// QEMU, so this package stands in for ryll: it serves the control-socket
// protocol (docs/control-socket-protocol.md in shakenfist/ryll, v1.2) on a
// Unix socket, behaving like ryll's code where code and document differ,
// and models the signals the loadtest measures. Each key-down repaints a
// simulated screen in a burst of draws: the first after a modelled delay,
// on the next tick of a QEMU-like display refresh timer, the rest spread
// over a few milliseconds and the last ones optionally stalled, as a proxy
// without TCP_NODELAY stalls them. Background draws no key caused, a
// spice-server-like PING cadence, floods, crashes, hangs and a late inputs
// channel are knobs too (see Knobs), and a truth file records, press by
// press, the modelled first draw and end of each repaint, so the
// loadtest's own measurement error can be checked row by row.
//
// The package has two halves. Server is the control-socket server itself
// (hello, subscriptions, the per-client queue, busy, the socket file) and
// knows nothing of SPICE: it asks a Session for status, keys, pastes and
// screenshots, and the Session hands it events with Emit. Sim is the
// simulated Session plus a Server; fakeryll/live is a real one, so the
// same protocol server fronts both.
//
// The session never waits for the control client: events go into
// a bounded per-client queue that, like ryll's, refuses the newest event
// when full (or, with queue-drop=oldest, drops the oldest as the protocol
// document says).
package sim
