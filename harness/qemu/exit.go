package qemu

import (
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

// words are how messages speak of QEMU.
var words = childproc.Words{Name: "QEMU", Ready: "QMP and SPICE were ready"}

// ExitError describes how QEMU ended (see childproc.ExitError). Every
// exit is one, so a caller watching Exited always learns the status and
// QEMU's last words. It is a type of its own, not an alias, so errors.As
// tells a QEMU exit from a ryll one.
type ExitError childproc.ExitError

// Error reads like "QEMU exited mid-run (signal SIGKILL): ...", followed
// by QEMU's last lines (and its pid), which is where QEMU says why.
func (e *ExitError) Error() string { return (*childproc.ExitError)(e).Message(words) }

// exitErr is c's exit as a QEMU ExitError, nil while it runs.
func exitErr(c *childproc.Child) *ExitError {
	return (*ExitError)(c.ExitError())
}
