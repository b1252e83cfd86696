// Package spice is a SPICE client: enough of the protocol to open a real
// session with a SPICE server (QEMU's spice-server, or a proxy such as
// Kerbside in front of one), see every draw the server sends and type
// keys into the guest.
//
// fakeryll uses it to stand in for ryll against a real server: it serves
// ryll's control socket from a Session, turning each Draw into a
// surface_drawn event stamped on receipt and the gaps between main-channel
// Ping events into latency events. No Go SPICE module is available, so the
// wire protocol is written here from spice-protocol's headers
// (/usr/include/spice-1/spice/) and spice-common's spice.proto, with only
// the standard library.
//
// What a Session does:
//   - links the main, display and inputs channels (mini or full data
//     header, AUTH_SPICE ticket, TLS with a CA and host-subject check by harness/spicetls's rule, and
//     a move to the TLS port when the plain port answers NEED_SECURED);
//   - answers SET_ACK, ACK windows and PINGs on every channel from the
//     channel's reader goroutine, so a slow consumer never stalls the
//     server's flow control;
//   - reports surfaces and every draw message (surface and damaged box,
//     read without decoding any image) as events;
//   - sends KEY_DOWN/KEY_UP with PC set-1 scancodes, 0xE0-prefixed keys
//     encoded the way ryll 1.2 does;
//   - ends, and says why, when the server closes or misbehaves: Done and
//     Err. Bad input never panics and never hangs: message sizes are
//     bounded (MaxMessageSize) and the link is bounded by the context and
//     Config.LinkTimeout.
//
// The password is held as a secret.String and never logged or quoted.
package spice
