package qemu

import (
	"fmt"
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

// ExitError describes how QEMU ended. Every exit is one, so a caller
// watching Exited always learns the status and QEMU's last words.
type ExitError struct {
	// Pid is QEMU's process id.
	Pid int
	// Status is the exit status, or -1 if a signal ended the process.
	Status int
	// Signal names the signal that ended it ("SIGKILL"), or is empty.
	Signal string
	// Tail is QEMU's last output lines.
	Tail []string
	// Phase is where in the VM's life the exit happened.
	Phase Phase
}

// Error reads like "QEMU (pid 42) exited mid-run (signal SIGKILL): ...",
// followed by QEMU's last lines, which is where QEMU says why.
func (e *ExitError) Error() string {
	how := fmt.Sprintf("(status %d)", e.Status)
	if e.Signal != "" {
		how = "(signal " + e.Signal + ")"
	}
	var when string
	switch e.Phase {
	case PhaseStarting:
		when = "before QMP and SPICE were ready"
	case PhaseRunning:
		when = "mid-run"
	default:
		when = "on Stop"
	}
	return fmt.Sprintf("QEMU (pid %d) exited %s %s: %s", e.Pid, when, how, formatTail(e.Tail))
}

func formatTail(lines []string) string { return childproc.FormatTail("QEMU", lines) }

func signalName(s syscall.Signal) string { return childproc.SignalName(s) }
