// Package control is a client for ryll's control socket, protocol v1.x.
//
// ryll, run with --headless (or --web) and --control-socket PATH, listens
// on a Unix stream socket and speaks line-delimited JSON: requests
// {"id","method","params"}, responses {"id","ok","result"|"error"} and
// unsolicited events {"event","data"}. The loadtest drives the guest's
// keyboard through it and times keypress-to-screen from its
// surface_drawn events, so this client is built around two timestamps:
// the wall clock just before a send_key line is written (SendKey's
// sentAt) and the wall clock at which each line is read (Event.Received
// and the Received field of results).
//
// Shape:
//
//   - Dial connects and performs the hello handshake, retrying while the
//     server answers busy (ryll serves one client at a time).
//   - A Client is safe for concurrent use. Each call takes an id from an
//     atomic counter, waits for its own response, and honours its
//     context; one reader goroutine owns the read side, and writes are
//     serialised so every request is one complete line.
//   - Events reach Events() through a bounded queue so that a slow event
//     consumer never delays responses; events the queue had to drop are
//     counted (DroppedEvents), never lost silently.
//   - Bad input from the server (malformed JSON, a line over MaxLineBytes,
//     a response nobody waits for) is logged, counted in Stats, and
//     skipped; it never panics or hangs the client.
//
// Errors: answers the server refused are *ProtocolError (use errors.As
// and the Code* constants); local failures are the Err* sentinels (use
// errors.Is); a major-version disagreement is *VersionMismatchError.
package control
