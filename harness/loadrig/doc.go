// Package loadrig runs the load side of the loadtest (issue 21) as
// processes of their own: the proxy under test, and a generator of
// synthetic busy SPICE sessions. The ramp must report the CPU of the
// proxy, the load generator, QEMU and the harness apart, and show a
// proxy that runs out of CPU; in one process they could not be told
// apart, and the harness's own timers would share the proxy's cores.
//
// # Children
//
// The loadtest re-executes its own binary (os.Executable) with
// LATENCY_CHILD_ROLE=proxy or generator and an otherwise empty
// environment (GOMAXPROCS when a core cap is asked for). Child, the first
// thing suite.Main (and this package's TestMain) does, runs the role and
// exits. Parent and child speak JSON lines (see wire.go): commands on the
// child's stdin, answers with the command's id on its stdout, where the
// child's own log lines (slog text, never starting with '{') go too. The
// child answers a line it cannot read with an error and goes on; the
// parent treats a line that is not an answer, or an answer nobody waits
// for, as a broken child: that call and every later one fail
// (ErrChildGone), and Close reports it. Every call is bounded
// (CallTimeout, Set's SetTimeout). harness/childproc owns each child: it
// dies with the loadtest even on SIGKILL (parent-death signal), its
// output is drained to the caller's Sink and kept for error messages, and
// Close climbs a ladder: stdin closed (the child ends by itself at the
// end of its commands), SIGTERM, SIGKILL.
//
// # The proxy
//
// StartProxy runs harness/spiceproxy in a process: each route is a
// loopback listener forwarding to one target, added on first use by the
// Router (load.Router), all in one Mode (nodelay, nagle, delay:DUR or
// cpu:DUR, the last spending DUR of busy CPU per server message, so that
// with GOMAXPROCS=1 the proxy runs out of CPU at 1/DUR messages a
// second). Totals are its bytes each way and, in the framing modes,
// messages; Process its CPU time and RSS from /proc (harness/procstat).
//
// # The synthetic source
//
// StartSynthetic runs harness/loadgen in a generator process: Servers
// (one per SessionsPerServer sessions, each routed once through the
// Router) and, per session, a Client that dials its server through the
// proxy, reads the display and ACKs. Synthetic is a load.Source (Name
// "synthetic"): Set(ctx, n) returns once every new session has read a
// draw; Sample gives the clients' bytes and messages, the servers' time
// stopped by the ACK window and the generator's usage, cumulative;
// sessions that ended by themselves are replaced by the next Set and
// make every later Sample fail with ErrSessionsLost (the Sample still
// filled in). Activities (Typing, Scroll, Video) set the draws' size and
// rate; BitsPerSecond overrides the rate.
//
// # What a session costs
//
// BenchmarkSyntheticSessions, once on 2026-12-05 on the 2-core
// development host while five other engineers' builds and tests kept its
// load average at 19-20 (so the processes got far less than their caps):
// sessions at 1 Mbit/s (4 KiB draws, 30 a second) through a nodelay
// proxy process, the generator under one core (GOMAXPROCS=1).
//
//	sessions  Mbit/s/session  generator cores  mcores/session  RSS KiB/session  proxy cores  mcores/session  RSS KiB/session
//	      50            0.98             0.06             1.1               91         0.05             0.9               80
//	     100            1.00             0.14             1.4               79         0.14             1.4               68
//	     200            0.95             0.18             0.9               77         0.14             0.7               63
//	     300            0.97             0.29             1.0               76         0.22             0.7               60
//	     400            0.88             0.31             0.8               81         0.24             0.6               59
//
// So 300 sessions were carried at their rate (within 5 %) and 400 fell
// to 0.88 Mbit/s with neither process near its cap: the busy host ran
// out, not the generator (about 1 mcore per session: a core of its own
// would carry several hundred) nor the proxy (under 1 mcore and about
// 60 KiB per session). No session was lost and the ACK window never
// stopped a server. On a quiet host expect more.
package loadrig
