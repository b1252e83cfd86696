// Package childproc is the one owner of every child process the harness
// starts (ryll, QEMU, their `--version` runs), in the manner of
// hashicorp/go-plugin's client, which owns its child from start to kill:
//
//   - Start refuses to run twice, or after Stop.
//   - The child is tied to the harness (StartTied), so it dies with it
//     even on SIGKILL: a CI runner's cancel must not leave a guest or a
//     client running with PPID 1.
//   - It leads its own process group: a terminal's Ctrl-C reaches the
//     harness, not the child behind its back, and the last rung of Stop
//     kills the whole group, so nothing the child spawned survives it.
//   - Its stdout and stderr are always drained (a child whose pipe fills
//     up blocks), line by line, to the caller's Sink (typically a Log:
//     the whole output, secrets scrubbed, in the results directory) and
//     to an in-memory Tail that failure messages quote.
//   - Its exit is watched for its whole life: Done closes and Err says
//     how it ended (an *ExitError, told apart by the Phase it came in: a
//     failed start, a loss mid-run, or the stop that was asked for).
//     Reading its output after the exit is bounded (DrainGrace): a
//     descendant that inherited the pipes and outlived the child is
//     named in a warning, never mistaken for the child still running.
//   - Stop is a ladder of bounded, context-aware rungs (for ryll SIGINT,
//     SIGTERM; for QEMU QMP quit, SIGTERM), always ending with SIGKILL to
//     the process group; it is safe to call more than once and
//     concurrently, and returns only once its goroutines are done.
//
// What is not shared stays with the owners: arguments, environment,
// readiness, QMP and sockets.
package childproc
