// Package spiceproxy is a SPICE proxy that can misbehave on purpose, so
// that a loadtest (or a user in front of any console) can see what a
// proxy's way of forwarding does to the latency a person feels. It is
// the B leg of the loadtest's A/B comparison (LATENCY_B_PROXY), and a
// tool in its own right; it uses only the standard library.
//
// It never changes what it forwards: every mode delivers each byte, in
// order, and passes each side's end of stream on (a half-close), or
// closes both sides when one fails. Only the timing and the cutting of
// the stream into writes differ:
//
//   - nodelay: a well-behaved proxy. Bytes are written as they are
//     read, with TCP_NODELAY on both sockets (Go's default, set
//     explicitly).
//   - nagle: what the measured Python Kerbside did (facts.md, "What a
//     proxy does to a repaint"). The client-facing socket keeps Nagle's
//     algorithm (TCP_NODELAY off) and every server-to-client SPICE message
//     goes out with its own write, so the small trailing messages of a
//     repaint wait for the client's delayed ACK. The server-facing socket
//     keeps TCP_NODELAY on, and client-to-server bytes are forwarded as
//     they come.
//   - delay:DUR: a slow link. Both directions hold every byte, and the
//     end of the stream, for DUR after the proxy read it, in order, so a
//     key costs DUR on its way to the server and its draws DUR on their
//     way back: about 2*DUR on keypress-to-first-draw and on
//     keypress-to-repaint alike (delay:30ms measured +60 ms). Holding only
//     the server's bytes is not what a link does, and it runs into SPICE's
//     ACK flow control: the client acknowledges messages only once the
//     delayed ones have reached it, spice-server stops after about 40
//     unacknowledged messages, and repaints arrived split (facts.md, "What
//     a proxy does to a repaint"). A failed socket is not delayed: it ends
//     the connection at once.
//   - cpu:DUR: a proxy that costs CPU. As nodelay (TCP_NODELAY on both
//     sockets), but every server-to-client SPICE message is framed as in
//     nagle mode and costs DUR of busy CPU time (the thread's own CPU
//     clock, not the wall clock, so a busy host never makes it cheaper)
//     before it is written. A proxy process capped at one core
//     (GOMAXPROCS=1) then carries at most 1/DUR messages a second over all
//     its sessions: past that, every session's draws queue behind the
//     others', which is how a proxy that runs out of CPU shows. On a link
//     it cannot follow it forwards unframed and costs nothing.
//
// # Framing in nagle and cpu modes
//
// SPICE opens one TCP connection per channel (main, display, inputs,
// cursor, ...); each accepted connection dials the target and is proxied
// on its own. To write one message per write the proxy must know where
// messages end, so it follows the link exchange in lock step, forwarding
// every part as soon as it has read it: the client's SpiceLinkHeader
// ("REDQ", major, minor, size) and SpiceLinkMess, the server's header
// and SpiceLinkReply, and, when both offered AUTH_SELECTION, the
// client's auth mechanism. From the common capabilities of both it
// learns the data header: the 6-byte mini header (u16 type, u32 size)
// when both offered MINI_HEADER, else the 18-byte full header (u64
// serial, u16 type, u32 size, u32 sub_list). After the server's u32 link
// result each message (header and body) is read whole and written with
// one write. ConnStats.Messages counts them.
//
// Limits: a link the proxy cannot follow (a magic that is not "REDQ",
// a TLS port, a reply that does not parse, a refused link or ticket, a
// SASL mechanism) is forwarded byte for byte as it comes, and said so in
// the log and in ConnStats.Framing: on such a connection nagle mode only
// keeps Nagle's algorithm on the client socket. A message larger than
// 4 MiB is not held: its body is written as it arrives. A proxy that
// frames needs plaintext, so on a TLS port (Kerbside's tls-port) nagle
// mode cannot cut messages; it would have to terminate TLS, which this
// package does not do. nodelay and delay forward TLS unchanged, as they
// forward anything.
//
// # Bounds
//
// Each dial of the target is bounded (Config.DialTimeout); a target that
// cannot be reached closes the client's connection and logs the error.
// A delaying direction holds at most Config.DelayBuffer bytes and then
// stops reading, so TCP pushes back on the sender. Close closes every
// connection and waits, at most CloseTimeout, for every goroutine: the
// listener and the open connections are owned by harness/tcpserve, as
// the link's are; this package keeps the modes and what they count.
package spiceproxy
