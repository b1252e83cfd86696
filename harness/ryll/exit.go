package ryll

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
)

// Phase says where in a Process's life ryll exited, because the same exit
// means different things: before readiness it is a failed start, after it
// a failed run, and during Stop it is what was asked for.
type Phase int

const (
	// PhaseStarting is before WaitReady succeeded.
	PhaseStarting Phase = iota
	// PhaseRunning is after WaitReady succeeded and before Stop.
	PhaseRunning
	// PhaseStopping is after Stop was called.
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

// formatTail renders output lines for an error message, one per
// indented line so a JUnit report stays readable.
func formatTail(lines []string) string {
	if len(lines) == 0 {
		return "no output from ryll"
	}
	return fmt.Sprintf("last %d lines of output:\n\t%s", len(lines), strings.Join(lines, "\n\t"))
}

// signalName gives the conventional SIGxxx name for the signals this
// package sends, and Go's description for any other.
func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	}
	return fmt.Sprintf("%d (%s)", int(s), s)
}

// tailBuffer keeps the last n lines. Safe for concurrent use, because
// stdout and stderr are drained by separate goroutines.
type tailBuffer struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tailBuffer) snapshot() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}
