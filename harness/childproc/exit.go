package childproc

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Phase says where in a child's life it exited, because the same exit
// means different things: before readiness it is a failed start, after it
// a loss mid-run, and during a stop it is what was asked for.
type Phase int

const (
	// PhaseStarting is before the child was ready.
	PhaseStarting Phase = iota
	// PhaseRunning is after it was ready and before it was stopped.
	PhaseRunning
	// PhaseStopping is after its stop was asked for.
	PhaseStopping
)

// String names the phase for logs.
func (p Phase) String() string {
	switch p {
	case PhaseStarting:
		return "starting"
	case PhaseRunning:
		return "running"
	case PhaseStopping:
		return "stopping"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Words are how messages about a child name it and its life, so one
// supervisor speaks of ryll and of QEMU each in its own terms.
type Words struct {
	// Name names the child: "ryll", "QEMU".
	Name string
	// Ready is what readiness means for it, completing "exited before
	// ...": "the control socket was ready". Empty means "it was ready".
	Ready string
	// ZeroNote, when set, is added to the message of an exit with status
	// 0 that was not asked for, for a child whose status 0 does not mean
	// success ("ryll exits 0 when its SPICE session fails").
	ZeroNote string
}

// ExitError describes how a child ended. Every exit is one, even status
// 0, so a caller watching Done always learns the status and the child's
// last words. Callers that asked for the exit (Stop) can tell by Phase ==
// PhaseStopping.
type ExitError struct {
	// Pid is the child's process id.
	Pid int
	// Status is the exit status, or -1 if a signal ended the process.
	Status int
	// Signal names the signal that ended the process ("SIGKILL"), or is
	// empty if it exited by itself.
	Signal string
	// Tail is the child's last output lines, as its Sink returned them
	// (scrubbed of secrets).
	Tail []string
	// Phase is where in the child's life the exit happened.
	Phase Phase
	// HeldBy lists the processes that still held the child's output open
	// DrainGrace after it exited (descendants that outlived it), when
	// reading stopped there. Empty when the output closed with the child.
	HeldBy []int

	words Words
}

// Error reads like "ryll exited mid-run (status 0): ..." followed by the
// child's last output lines, which is usually where the cause is.
func (e *ExitError) Error() string { return e.Message(e.words) }

// Message is Error in the given words, for an owner whose own ExitError
// type is built from this one.
func (e *ExitError) Message(w Words) string {
	name := w.Name
	if name == "" {
		name = "child"
	}
	how := fmt.Sprintf("(status %d)", e.Status)
	if e.Signal != "" {
		how = "(signal " + e.Signal + ")"
	}
	var b strings.Builder
	switch e.Phase {
	case PhaseStarting:
		ready := w.Ready
		if ready == "" {
			ready = "it was ready"
		}
		fmt.Fprintf(&b, "%s exited %s before %s", name, how, ready)
	case PhaseRunning:
		fmt.Fprintf(&b, "%s exited mid-run %s", name, how)
	default:
		fmt.Fprintf(&b, "%s exited on Stop %s", name, how)
	}
	if w.ZeroNote != "" && e.Signal == "" && e.Status == 0 && e.Phase != PhaseStopping {
		fmt.Fprintf(&b, " (%s)", w.ZeroNote)
	}
	if len(e.HeldBy) > 0 {
		fmt.Fprintf(&b, " (after it exited, pids %v still held its output open)", e.HeldBy)
	}
	b.WriteString(": ")
	b.WriteString(formatTail(name, e.Pid, e.Tail))
	return b.String()
}

// FormatTail renders a child's last output lines for an error message,
// one per indented line so a JUnit report stays readable; who names the
// child when it printed nothing.
func FormatTail(who string, lines []string) string { return formatTail(who, 0, lines) }

func formatTail(who string, pid int, lines []string) string {
	of := ""
	if pid > 0 {
		of = fmt.Sprintf(" (pid %d)", pid)
	}
	if len(lines) == 0 {
		return "no output from " + who + of
	}
	return fmt.Sprintf("last %d lines of output%s:\n\t%s", len(lines), of, strings.Join(lines, "\n\t"))
}

// SignalName is "SIGKILL" and the like.
func SignalName(s syscall.Signal) string {
	if name := unix.SignalName(s); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(s))
}
