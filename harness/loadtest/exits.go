package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/measure"
)

// How a measurement ended, said once: a signal is "interrupted", an exit
// of ryll or the console is named by the one watcher, and a lost control
// connection with both still running says so.

// explainEnd names why a measurement that failed ended: a signal is
// "interrupted" (whatever else raced it), an exit of ryll or the console
// is named once (by watchExits), and a lost connection with both still
// running says so. It sets the stop reason to match.
func (r *Session) explainEnd(ctx context.Context, m *Measurement, runErr error, exits <-chan error) error {
	if ctx.Err() != nil {
		// A signal: the pump closing, a key request cut short and the
		// cancel all race; the stop reason is interrupted whichever won.
		if runErr == nil {
			return nil
		}
		m.Result.StopReason = measure.StopInterrupted
		return interrupted(ctx, fmt.Sprintf("after %d of %d samples", len(m.Result.Samples), m.Result.Config.Samples))
	}
	if runErr == nil {
		return nil
	}
	var exit error
	if errors.Is(runErr, measure.ErrSourceClosed) {
		// The connection usually drops a moment before the exit is
		// seen: give it a bounded moment so the error names the cause.
		t := time.NewTimer(exitGrace)
		defer t.Stop()
		select {
		case exit = <-exits:
		case <-t.C:
			return fmt.Errorf("the control connection to ryll was lost while ryll kept running: %w", runErr)
		}
	} else {
		select {
		case exit = <-exits:
		default:
		}
	}
	if exit == nil {
		return runErr
	}
	// ryll or the console exited: that is the failure, not the
	// "interrupted" the measurement saw when the watcher cancelled it.
	if m.Result.StopReason == measure.StopInterrupted {
		m.Result.StopReason = measure.StopError
	}
	if errors.Is(runErr, measure.ErrSourceClosed) {
		return fmt.Errorf("%w (%w)", exit, runErr)
	}
	return exit
}

// interrupted is the error of a run stopped by a signal: it says where,
// matches context.Canceled and quotes the cause ("received terminated").
func interrupted(ctx context.Context, where string) error {
	err := fmt.Errorf("interrupted %s: %w", where, ctx.Err())
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
		err = fmt.Errorf("%w (cause: %w)", err, cause)
	}
	return err
}

// ryllExited fires when the ryll this session started exits; nil (never)
// when it attached to a ryll it does not own (LATENCY_RYLL_SOCKET).
func (r *Session) ryllExited() <-chan struct{} {
	if r.Ryll == nil {
		return nil
	}
	return r.Ryll.Exited()
}

func (r *Session) ryllExitErr() error {
	if r.Ryll == nil {
		return errors.New("the control connection ended")
	}
	return r.Ryll.ExitErr()
}

// watchExits watches ryll and the console for the whole measurement and
// names the first exit once: it cancels the run with it and hands it to
// explainEnd on the channel. It stops when stop is closed.
func (r *Session) watchExits(cancel context.CancelCauseFunc, stop <-chan struct{}) <-chan error {
	out := make(chan error, 1)
	go func() {
		if e, ok := r.exitCause(0, stop); ok {
			err := fmt.Errorf("%s during the run: %w", e.who, e.err)
			cancel(err)
			out <- err
		}
	}()
	return out
}

// exit names who exited (ryll or the console) and how.
type exit struct {
	who string
	err error
}

// exitCause waits for ryll or the console to exit and says which did:
// the console first, since a console that dies (QEMU) takes ryll's
// session with it and ryll's exit is often seen a moment before. ok is
// false when neither exited within wait (0: no limit) or stop is closed.
func (r *Session) exitCause(wait time.Duration, stop <-chan struct{}) (e exit, ok bool) {
	consoleExited := r.Console.Exited()
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-consoleExited:
		return exit{"the console stopped", r.Console.ExitErr()}, true
	case <-r.ryllExited():
		t := time.NewTimer(exitGrace / 4)
		defer t.Stop()
		select {
		case <-consoleExited:
			return exit{"the console stopped", r.Console.ExitErr()}, true
		case <-t.C:
			return exit{"ryll exited", r.ryllExitErr()}, true
		}
	case <-timeout:
	case <-stop:
	}
	return exit{}, false
}
