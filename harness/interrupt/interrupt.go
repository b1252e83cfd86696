// Package interrupt records when a run was stopped from outside (SIGINT,
// SIGTERM, its launcher gone) and in which phase, so that every message
// and the sidecar say "interrupted while <phase>" rather than blaming
// whatever the stop cut short: a Ctrl-C while fakeryll was being built
// once read "build fakeryll: signal: killed … invalid configuration;
// nothing was set up".
//
// A Run is the run's phase, moved on by the one goroutine that runs the
// phases, and read by the one that hears signals. Its Interrupted error
// is the run context's cancel cause: context.Cause then tells the phase,
// and errors.Is(err, context.Canceled) holds for it, which is how the
// sidecar tells an interrupted run from a broken one.
package interrupt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Run tracks a run's phase and its interrupt. The zero value is not
// ready: use New.
type Run struct {
	mu    sync.Mutex
	start time.Time
	phase string
	got   *Interrupted
}

// New starts tracking a run, in phase.
func New(phase string) *Run { return &Run{start: time.Now(), phase: phase} }

// Enter moves the run to phase ("building fakeryll", "measuring").
func (r *Run) Enter(phase string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase = phase
}

// Phase is the phase the run is in.
func (r *Run) Phase() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase
}

// Interrupt records a stop for cause (e.g. "received interrupt") in the
// current phase and returns it. Only the first stop is recorded; later
// calls return it unchanged.
func (r *Run) Interrupt(cause string) *Interrupted {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		now := time.Now()
		r.got = &Interrupted{Cause: cause, Phase: r.phase, After: now.Sub(r.start), At: now}
	}
	return r.got
}

// Err is the recorded interrupt, nil when the run was not interrupted.
func (r *Run) Err() *Interrupted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}

// Explain returns err as cut short by the interrupt, when there was one
// (the interrupt first, err as the detail), else err unchanged.
func (r *Run) Explain(err error) error {
	in := r.Err()
	if err == nil || in == nil {
		return err
	}
	var cs *CutShort
	if errors.As(err, &cs) {
		return err // said once
	}
	return &CutShort{Interrupted: in, Err: err}
}

// Interrupted is a stop from outside the run.
type Interrupted struct {
	// Cause is what stopped it: "received interrupt", "received
	// terminated", "latency-run is gone".
	Cause string
	// Phase is what the run was doing.
	Phase string
	// After is the time from the start of the run to the stop.
	After time.Duration
	At    time.Time
}

func (e *Interrupted) Error() string {
	return fmt.Sprintf("%s while %s, %s into the run", e.Cause, e.Phase, e.After.Round(time.Millisecond))
}

// Unwrap makes an interrupt a cancellation for errors.Is.
func (e *Interrupted) Unwrap() error { return context.Canceled }

// CutShort is an error of something the interrupt stopped.
type CutShort struct {
	Interrupted *Interrupted
	Err         error
}

func (e *CutShort) Error() string {
	return fmt.Sprintf("interrupted: %v (cut short: %v)", e.Interrupted, e.Err)
}

// Unwrap gives both the interrupt and what it cut short.
func (e *CutShort) Unwrap() []error { return []error{e.Interrupted, e.Err} }

// Wrap returns err as cut short by ctx's interrupt when ctx was cancelled
// by one (its cause is an *Interrupted), else err unchanged.
func Wrap(ctx context.Context, err error) error {
	var in *Interrupted
	if err == nil || ctx.Err() == nil || !errors.As(context.Cause(ctx), &in) {
		return err
	}
	var cs *CutShort
	if errors.As(err, &cs) {
		return err
	}
	return &CutShort{Interrupted: in, Err: err}
}
