package ryll

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

// ExitError describes how ryll ended (see childproc.ExitError). Every
// exit of ryll is an *ExitError, even status 0: ryll exits 0 when its
// SPICE session fails or closes, so the status alone never means the run
// went well. Callers that asked for the exit (Stop) can tell by Phase ==
// PhaseStopping. It is a type of its own, not an alias, so errors.As
// tells a ryll exit from a QEMU one.
type ExitError childproc.ExitError

// Error reads like "ryll exited mid-run (status 0): ..." followed by the
// last lines of ryll's output, which is usually where the cause is.
func (e *ExitError) Error() string { return (*childproc.ExitError)(e).Message(words) }

func formatTail(lines []string) string { return childproc.FormatTail("ryll", lines) }
