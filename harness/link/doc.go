// Package link puts a network link between a client and the server it
// dials: a TCP forwarder that, on every connection and in both
// directions, adds a one-way delay (RTT/2 each way), jitter, a rate limit
// and a bounded queue, as a WAN between a person and their console
// would. It is the link the loadtest puts in front of a console
// (LATENCY_LINK, LATENCY_B_LINK; harness/console's PutLink) on machines
// whose kernel has no netem (facts.md, "Links, load and the kernel here"), so the
// delay is made here, in user space. It uses only the standard library.
//
// toxiproxy (github.com/Shopify/toxiproxy/v2) was measured against it
// before it was written to stay: on one-way delay both are within about
// 0.5 ms at the median; toxiproxy's rate was 2-7 % slow at 1 Mbit/s
// (this link's under 0.5 %), it closes a connection on a half-close (the
// server's answer is lost), its latency is whole milliseconds and its
// rate whole KB/s, it has no queue bound and no per-direction counts; it
// costs 3-4 times less CPU per MiB, because it writes whole reads where
// this link writes each 1500-byte packet when it is due.
//
// # The model
//
// Each direction of each connection is a link of its own, like one
// direction of a cable:
//
//   - the link reads what the sender wrote and cuts it into packets of at
//     most PacketSize bytes;
//   - with a rate, the packets wait in a FIFO bottleneck queue and are
//     sent one after another, each taking len*8/rate (a serialisation
//     delay per byte, not a token bucket: no burst goes faster than the
//     rate). The queue holds at most Profile.Queue bytes; when it is full
//     the link stops reading, so the sender's TCP window closes and its
//     writes block, as behind a real bottleneck (nothing is dropped: TCP
//     over a lossy link retransmits, which only adds delay, and a
//     drop-tail queue's losses are not modelled);
//   - every packet then crosses the wire: it is due at the receiver
//     RTT/2 after it was sent, plus a jitter drawn uniformly within
//     ±Jitter for each packet, but never before the packet ahead of it,
//     so bytes are never reordered within a connection;
//   - the sender's end of stream (a half-close) crosses the link like a
//     byte and half-closes the receiver when due; the other direction
//     runs on. A failed socket ends the connection at once, both ways.
//
// The kernel's buffers add a queue of their own: the bytes the kernel
// holds before the link reads them, and the sender's send buffer. Over
// loopback both grow to megabytes (a 64 KiB MSS makes Linux size a send
// buffer as for a fast path), a queue no real path would have and the
// profile could not bound. So the link caps its sockets' receive buffers
// (Config.ReadBuffer, 64 KiB) and gives them an Ethernet path's MSS
// (Config.MSS, 1460), which their peers learn in the handshake. A sender
// still buffers more than on a real path (0.4-0.9 MiB measured behind a
// 1 Mbit/s link, against 4 MiB with loopback's MSS; a sender's own
// buffer is not the link's to set): TestBackPressureReachesTheSender
// logs it. SPICE's ACK window stops spice-server well before that.
//
// # Profiles
//
// Parse reads a named profile (lan, wan-20ms-50mbit, wan-80ms-10mbit,
// wan-80ms-1mbit), an explicit one such as
// rtt=80ms,rate=10mbit,jitter=5ms,queue=64KiB, or a name with parts that
// override it. lan adds nothing: the baseline crosses the same forwarder
// as the WAN profiles, so an A/B compares only what the profile adds.
//
// # What it states
//
// Stats and Conns say what the link did, per direction: bytes, reads and
// writes, the queue's high-water mark, the time bytes stood queued, the
// longest wait, and the time the sender was pushed back. Their JSON is
// ready for the sidecar.
//
// The listener and the open connections (accept, abort on shutdown, the
// bounded wait of Close) are owned by harness/tcpserve, as the SPICE
// proxy's are; this package keeps the profile, the shaping and the
// figures.
//
// # Accuracy
//
// Delays are made with Go timers, which wake within about a millisecond
// on an idle machine and later on a busy one: a link can only add more
// than its profile, never less. BenchmarkLinkDelayAccuracy and
// BenchmarkLinkRateAccuracy report the error (p50, p99) on the machine
// they run on.
package link
