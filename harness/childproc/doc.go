// Package childproc holds what every child process of the harness (ryll,
// QEMU) shares: it is started tied to the harness, so that it dies with
// it even on SIGKILL (a CI runner's cancel must not leave a guest or a
// client running with PPID 1); the last lines of its output are kept for
// error messages; and its exit is told apart by where in its life it
// came (a failed start, a loss mid-run, or the stop that was asked for).
package childproc
