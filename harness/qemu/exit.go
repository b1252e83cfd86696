package qemu

import (
	"fmt"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Phase says where in a VM's life QEMU exited, because the same exit
// means different things: before readiness it is a failed boot, after it
// a guest lost mid-run, and during Stop it is what was asked for.
type Phase int

const (
	// PhaseStarting is before QMP answered and the SPICE port accepted.
	PhaseStarting Phase = iota
	// PhaseRunning is after readiness and before Stop.
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

// formatTail renders output lines for an error message, one per indented
// line so a JUnit report stays readable.
func formatTail(lines []string) string {
	if len(lines) == 0 {
		return "no output from QEMU"
	}
	return fmt.Sprintf("last %d lines of output:\n\t%s", len(lines), strings.Join(lines, "\n\t"))
}

// signalName is "SIGKILL" and the like.
func signalName(s syscall.Signal) string {
	if name := unix.SignalName(s); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(s))
}

// lineRing keeps the last lines written to it. Safe for concurrent use.
type lineRing struct {
	mu    sync.Mutex
	lines []string // a ring of cap n once full
	next  int      // where the next line goes once full
	n     int
}

func newLineRing(n int) *lineRing { return &lineRing{n: n} }

func (r *lineRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < r.n {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % r.n
}

// snapshot is the kept lines, oldest first.
func (r *lineRing) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}
