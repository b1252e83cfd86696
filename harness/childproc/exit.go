package childproc

import (
	"fmt"
	"strings"
	"sync"
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

// FormatTail renders a child's last output lines for an error message,
// one per indented line so a JUnit report stays readable; who names the
// child when it printed nothing.
func FormatTail(who string, lines []string) string {
	if len(lines) == 0 {
		return "no output from " + who
	}
	return fmt.Sprintf("last %d lines of output:\n\t%s", len(lines), strings.Join(lines, "\n\t"))
}

// SignalName is "SIGKILL" and the like.
func SignalName(s syscall.Signal) string {
	if name := unix.SignalName(s); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(s))
}

// Tail keeps the last lines added to it. Safe for concurrent use (a
// child's stdout and stderr may be drained by separate goroutines).
type Tail struct {
	mu    sync.Mutex
	lines []string // a ring of cap n once full
	next  int      // where the next line goes once full
	n     int
}

// NewTail keeps the last n lines.
func NewTail(n int) *Tail { return &Tail{n: n} }

// Add keeps line, forgetting the oldest once n are kept.
func (r *Tail) Add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n <= 0 {
		return
	}
	if len(r.lines) < r.n {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % r.n
}

// Snapshot is the kept lines, oldest first.
func (r *Tail) Snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}
