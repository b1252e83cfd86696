package ryll

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
)

// Phase says where in a child's life it exited (childproc.Phase).
type Phase = childproc.Phase

// The phases.
const (
	PhaseStarting = childproc.PhaseStarting
	PhaseRunning  = childproc.PhaseRunning
	PhaseStopping = childproc.PhaseStopping
)

// ExitError describes how ryll ended. Every exit of ryll is an
// *ExitError, even status 0: ryll exits 0 when its SPICE session fails or
// closes, so the status alone never means the run went well. Callers
// that asked for the exit (Stop) can tell by Phase == PhaseStopping.
type ExitError struct {
	// Status is the exit status, or -1 if a signal ended the process.
	Status int
	// Signal names the signal that ended the process ("SIGKILL"), or is
	// empty if it exited by itself.
	Signal string
	// Tail is the last lines ryll printed, already scrubbed of secrets.
	Tail []string
	// Phase is where in the Process's life the exit happened.
	Phase Phase
}

// Error reads like "ryll exited mid-run (status 0): ..." followed by the
// last lines of ryll's output, which is usually where the cause is.
func (e *ExitError) Error() string {
	how := fmt.Sprintf("(status %d)", e.Status)
	if e.Signal != "" {
		how = "(signal " + e.Signal + ")"
	}
	var b strings.Builder
	switch e.Phase {
	case PhaseStarting:
		fmt.Fprintf(&b, "ryll exited %s before the control socket was ready", how)
	case PhaseRunning:
		fmt.Fprintf(&b, "ryll exited mid-run %s", how)
	default:
		fmt.Fprintf(&b, "ryll exited on Stop %s", how)
	}
	if e.Signal == "" && e.Status == 0 && e.Phase != PhaseStopping {
		b.WriteString(" (ryll exits 0 when its SPICE session fails)")
	}
	b.WriteString(": ")
	b.WriteString(formatTail(e.Tail))
	return b.String()
}

func formatTail(lines []string) string { return childproc.FormatTail("ryll", lines) }

func signalName(s syscall.Signal) string { return childproc.SignalName(s) }
