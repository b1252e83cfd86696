// Package loadgen makes synthetic busy SPICE sessions: the load that the
// loadtest's synthetic load source (issue 21; not yet read by the
// configuration) puts beside the measured console, so that one host can
// push hundreds of sessions through a proxy under test.
//
// A Server is a SPICE server of our own. It speaks the real wire
// protocol (spice-protocol 0.14, version 2.2; layouts from spice-common's
// spice.proto, written here from the documents with the standard library
// only): the link handshake with a 1024-bit RSA key sent as a 162-byte
// DER public key and an RSA-OAEP (SHA-1) ticket, the main channel
// (MAIN_INIT with a session id, CHANNELS_LIST in answer to
// ATTACH_CHANNELS), a display channel and an inputs channel that ignores
// what it is sent. The display channel is a busy desktop: SET_ACK,
// SURFACE_CREATE for a primary surface, MARK, then DRAW_COPY messages of
// a set size (a raw 32-bit bitmap strip, each with a valid box that
// walks over the surface) at a set bit rate, and a PING now and then.
//
// It honours the ACK window as spice-server does (red-channel-client.c):
// SET_ACK {generation, window} starts a count of the messages sent; the
// server stops sending while more than 2*window messages are
// unacknowledged; an ACK counts only after the client's ACK_SYNC has
// named the current generation, and takes window messages off the count.
// (So a window of 20, spice-server's CLIENT_ACK_WINDOW, lets 40 messages
// be in flight: facts.md's "about 40 unacknowledged messages".) The time
// the server spends stopped is the session's ack_wait_s.
//
// A Client is the other end, as cheap as it can be for hundreds of
// sessions: it links the main and display channels, answers SET_ACK with
// ACK_SYNC, ACKs every window messages, answers PINGs, and counts
// messages and bytes while discarding the pixels unread. The measured
// console keeps its own client (ryll); a Client is a busy session's
// viewer. Start runs a Group of Clients that start and stop together
// under one context.
//
// Both sides count per session (SessionStats) and in total (Stats), in a
// shape ready for a JSON sidecar.
//
// What the Server is not: a security boundary (one RSA key serves every
// link, where spice-server makes one per link; there is no TLS), a
// faithful image encoder (the bitmaps are raw and constant), or a full
// spice-server (no cursor, sound, agent or migration).
package loadgen
